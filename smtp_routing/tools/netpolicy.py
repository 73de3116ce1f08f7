"""Where a user's own SMTP server may be: on the internet, not inside the network Odoo runs in.

A user who may enter their own server (host, port, login) and press "Send me a
test" could otherwise make Odoo open connections to loopback services, cloud
metadata endpoints (169.254.169.254) or machines on the private network: request
forgery. Every address a host name resolves to is checked (a name with one public
and one private address is refused), and the connection is then made to a checked
address, so the name cannot resolve elsewhere in between.

Framework-free: plain values in, plain values out; the resolver is a parameter.
"""

import ipaddress
import socket

_KINDS = (
    ("unspecified", "is_unspecified"),
    ("loopback", "is_loopback"),
    ("link-local", "is_link_local"),
    ("multicast", "is_multicast"),
)
# Private networks (RFC 1918, unique local IPv6) and the shared address space of carrier-grade NAT (RFC 6598).
_PRIVATE = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


class HostNotAllowed(ValueError):
    """``code``: ``unresolvable`` (no address) or ``not_public`` (``address`` is of ``kind``)."""

    def __init__(self, code, host, address=None, kind=None):
        super().__init__(f"{code}: {host}" + (f" -> {address} ({kind})" if address else ""))
        self.code = code
        self.host = host
        self.address = address
        self.kind = kind


def is_ip(value):
    """True for an IP address literal (v4 or v6), False for a name.

    >>> is_ip("192.0.2.1"), is_ip("2001:db8::1"), is_ip("smtp.example.com"), is_ip("")
    (True, True, False, False)
    """
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


def address_kind(address):
    """None for a public (global unicast) address, else what it is: loopback, link-local, private..."""
    ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for kind, attribute in _KINDS:
        if getattr(ip, attribute):
            return kind
    if any(ip.version == network.version and ip in network for network in _PRIVATE):
        return "private"
    if not ip.is_global:
        return "reserved"  # documentation, benchmarking, future use...
    return None


def resolve(host, port):
    """Every address ``host`` resolves to (IPv4 and IPv6), in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


def _literal(host):
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%", 1)[0]))
    except ValueError:
        return None


def public_addresses(host, port, resolve=resolve):
    """The addresses to connect to for ``host``, all public; raises ``HostNotAllowed`` otherwise."""
    literal = _literal(host or "")
    if literal:
        addresses = [literal]
    else:
        try:
            addresses = list(resolve(host, port))
        except (OSError, UnicodeError) as error:
            raise HostNotAllowed("unresolvable", host) from error
    unique = tuple(dict.fromkeys(addresses))
    if not unique:
        raise HostNotAllowed("unresolvable", host)
    for address in unique:
        kind = address_kind(address)
        if kind:
            raise HostNotAllowed("not_public", host, address, kind)
    return unique
