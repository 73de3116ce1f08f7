"""SMTP host notation: ``smtp.example.com``, ``smtp.example.com:587``, ``[smtp.example.com]:465``.

The bracket form comes from Postfix and several CRMs (``[host]:port`` means "this
host, no MX lookup"); it is also how an IPv6 address carries a port
(``[2001:db8::1]:25``). Errors carry a stable ``code`` that the Odoo model turns
into a translated message.
"""

import ipaddress
import re
from dataclasses import dataclass

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$", re.IGNORECASE)  # "_" is not RFC 952, but internal relays use it


class HostPortError(ValueError):
    """``code`` is one of: empty, space, bad_port, bad_host, port_conflict."""

    def __init__(self, code, value):
        super().__init__(f"{code}: {value!r}")
        self.code = code
        self.value = value


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int | None  # None: the notation named no port


def _check_port(text, value):
    if not (text.isascii() and text.isdigit()):
        raise HostPortError("bad_port", value)
    port = int(text)
    if not 1 <= port <= 65535:
        raise HostPortError("bad_port", value)
    return port


def _check_host(host, value):
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:  # pylint: disable=except-pass  # not an IP address: checked as a host name below
        pass
    name = host.rstrip(".")
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise HostPortError("bad_host", value) from error
    if not ascii_name or len(ascii_name) > 253 or not all(_LABEL.match(label) for label in ascii_name.split(".")):
        raise HostPortError("bad_host", value)
    return name.lower()


def parse_host(value):
    """Split a host notation into host and port, validating both.

    >>> parse_host("[smtp.example.com]:465")
    HostPort(host='smtp.example.com', port=465)
    >>> parse_host(" SMTP.Example.com:587 ")
    HostPort(host='smtp.example.com', port=587)
    >>> parse_host("smtp.example.com")
    HostPort(host='smtp.example.com', port=None)
    >>> parse_host("[2001:db8::1]:25")
    HostPort(host='2001:db8::1', port=25)
    """
    if value is None or not value.strip():
        raise HostPortError("empty", value)
    text = value.strip()
    if any(char.isspace() for char in text):
        raise HostPortError("space", value)
    port = None
    if text.startswith("["):
        closing = text.find("]")
        if closing < 0:
            raise HostPortError("bad_host", value)
        host, rest = text[1:closing], text[closing + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise HostPortError("bad_host", value)
            port = _check_port(rest[1:], value)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _check_port(port_text, value)
    else:
        host = text  # a bare name, or a bare IPv6 address
    if not host:
        raise HostPortError("empty", value)
    return HostPort(_check_host(host, value), port)


def normalize(host_value, port_value):
    """Host and port to store, from what an admin typed in both fields.

    A port inside the host notation wins over the separate port field; both are
    validated. Returns ``(host, port)``.
    """
    parsed = parse_host(host_value)
    port = parsed.port if parsed.port is not None else port_value
    if port is None or isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise HostPortError("bad_port", port_value)
    return parsed.host, port


def parse_nameserver(value):
    """A DNS server for the deliverability checks: an IP address, optionally with a port (default 53).

    >>> parse_nameserver("192.0.2.53")
    ('192.0.2.53', 53)
    >>> parse_nameserver("[2001:db8::53]:5353")
    ('2001:db8::53', 5353)
    """
    parsed = parse_host(value)
    try:
        ipaddress.ip_address(parsed.host)  # the resolver needs an address, not a name
    except ValueError as error:
        raise HostPortError("bad_host", value) from error
    return parsed.host, parsed.port or 53
