import pytest

from smtp_routing.tools import hostport
from smtp_routing.tools.hostport import HostPort, HostPortError, normalize, parse_host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("smtp.example.com", HostPort("smtp.example.com", None)),
        ("  SMTP.Example.COM  ", HostPort("smtp.example.com", None)),
        ("smtp.example.com:587", HostPort("smtp.example.com", 587)),
        ("[smtp.example.com]:465", HostPort("smtp.example.com", 465)),
        ("[smtp.example.com]", HostPort("smtp.example.com", None)),
        ("127.0.0.1:2525", HostPort("127.0.0.1", 2525)),
        ("[2001:db8::1]:25", HostPort("2001:db8::1", 25)),
        ("2001:db8::1", HostPort("2001:db8::1", None)),
        ("smtp.example.com.", HostPort("smtp.example.com", None)),
        ("smtp.exämple.de", HostPort("smtp.exämple.de", None)),
        ("localhost:1", HostPort("localhost", 1)),
        ("mail:65535", HostPort("mail", 65535)),
        ("smtp_host", HostPort("smtp_host", None)),
    ],
)
def test_parse_host_accepts(value, expected):
    assert parse_host(value) == expected


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("smtp example.com", "space"),
        ("smtp.exa\tmple.com", "space"),
        ("smtp.example.com:0", "bad_port"),
        ("smtp.example.com:65536", "bad_port"),
        ("smtp.example.com:abc", "bad_port"),
        ("smtp.example.com:", "bad_port"),
        ("[smtp.example.com]:", "bad_port"),
        ("[smtp.example.com", "bad_host"),
        ("[smtp.example.com]465", "bad_host"),
        ("[]:25", "empty"),
        ("-bad-.example.com", "bad_host"),
        ("smtp..example.com", "bad_host"),
        ("smtp!example.com", "bad_host"),
        ("a" * 64 + ".example.com", "bad_host"),
        ("smtp.example.com\r\nRCPT TO:<x>", "space"),
    ],
)
def test_parse_host_rejects(value, code):
    with pytest.raises(HostPortError) as caught:
        parse_host(value)
    assert caught.value.code == code


def test_normalize_port_in_host_wins():
    assert normalize("[smtp.example.com]:465", 25) == ("smtp.example.com", 465)
    assert normalize("smtp.example.com", 587) == ("smtp.example.com", 587)


@pytest.mark.parametrize("port", [0, 70000, -1, None, True])
def test_normalize_rejects_bad_separate_port(port):
    with pytest.raises(HostPortError) as caught:
        normalize("smtp.example.com", port)
    assert caught.value.code == "bad_port"


def test_non_ascii_digits_are_not_a_port():
    """Found by hypothesis: '²'.isdigit() is True, int('²') raises."""
    with pytest.raises(HostPortError) as caught:
        parse_host("smtp.example.com:²")
    assert caught.value.code == "bad_port"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        (" 127.0.0.1:5353 ", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_nameserver_accepts_addresses(value, expected):
    assert hostport.parse_nameserver(value) == expected


@pytest.mark.parametrize("value", ["dns.example.com", "127.0.0.1:0", "127.0.0.1:99999", "", "1.2.3.4 5"])
def test_parse_nameserver_refuses_names_and_bad_ports(value):
    with pytest.raises(hostport.HostPortError):
        hostport.parse_nameserver(value)
