"""A real DNS server on 127.0.0.1 for tests (UDP), answering from a table.

::

    with DnsServer({("example.com", "TXT"): ["v=spf1 ip4:192.0.2.1 -all"],
                    ("example.com", "A"): ["192.0.2.1"]}) as dns_server:
        resolver = dns_server.resolver()

Names not in the table get NXDOMAIN; a known name asked for another type gets
an empty NOERROR answer (NODATA). A value ``SERVFAIL`` makes the server fail for
that name and type. TXT values are given unquoted and split into 255-byte
strings as DNS requires. Framework-free: never imports odoo.
"""

import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.rrset

LOOPBACK = "127.0.0.1"
SERVFAIL = "SERVFAIL"


def _absolute(value):
    """Name-valued records (MX, CNAME, NS, PTR) end with the root dot."""
    head, _, last = value.rpartition(" ")
    last = last if last.endswith(".") else last + "."
    return f"{head} {last}" if head else last


def _txt(value):
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [""]
    return " ".join('"' + chunk.replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)


class DnsServer:
    def __init__(self, records=None, ttl=60):
        self.records = {}
        self.ttl = ttl
        self.queries = []
        for (name, rdtype), values in (records or {}).items():
            self.add(name, rdtype, *values)
        self._sock = None
        self._thread = None
        self._stop = threading.Event()
        self.port = None

    def add(self, name, rdtype, *values):
        key = (name.lower().rstrip("."), rdtype.upper())
        self.records.setdefault(key, []).extend(values)
        return self

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.settimeout(0.1)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._sock:
            self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def resolver(self, lifetime=2.0):
        """A dnspython resolver that asks this server only."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [LOOPBACK]
        resolver.port = self.port
        resolver.lifetime = lifetime
        resolver.timeout = lifetime
        resolver.use_edns(0, 0, 4096)
        return resolver

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                response = self._answer(dns.message.from_wire(data))
                self._sock.sendto(response.to_wire(max_size=65535), peer)
            except Exception:  # noqa: BLE001, S112 - a malformed query gets no answer, as from a real server
                continue

    def _answer(self, query):
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        values = self.records.get((name, rdtype))
        if values == [SERVFAIL]:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif values:
            if rdtype in ("TXT", "SPF"):
                texts = [_txt(value) for value in values]
            elif rdtype in ("MX", "CNAME", "NS", "PTR"):
                texts = [_absolute(value) for value in values]
            else:
                texts = list(values)
            response.answer.append(dns.rrset.from_text_list(question.name, self.ttl, "IN", rdtype, texts))
        elif not any(known == name for known, _type in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response
