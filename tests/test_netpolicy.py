"""Users' own SMTP servers must be on the internet: no loopback, link-local or private address."""

import socket

import pytest

from smtp_routing.tools import netpolicy
from smtp_routing.tools.netpolicy import HostNotAllowed


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.10", "private"),
        ("fd12:3456::1", "private"),
        ("100.64.0.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("192.0.2.10", "reserved"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_non_public_addresses_are_named(address, kind):
    assert netpolicy.address_kind(address) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "172.32.0.1", "1.1.1.1"])
def test_public_addresses_pass(address):
    assert netpolicy.address_kind(address) is None


def _resolver(table):
    def resolve(host, port):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    return resolve


def test_every_address_of_a_name_is_checked():
    resolve = _resolver({"mixed.example": ["203.0.113.9", "8.8.4.4", "10.0.0.7"], "ok.example": ["8.8.4.4"]})
    with pytest.raises(HostNotAllowed) as caught:
        netpolicy.public_addresses("mixed.example", 587, resolve=resolve)
    assert (caught.value.code, caught.value.address, caught.value.kind) == ("not_public", "203.0.113.9", "reserved")
    assert netpolicy.public_addresses("ok.example", 587, resolve=resolve) == ("8.8.4.4",)


def test_ip_literals_are_checked_without_resolving():
    def never(host, port):
        raise AssertionError("an IP address needs no DNS")

    with pytest.raises(HostNotAllowed) as caught:
        netpolicy.public_addresses("169.254.169.254", 25, resolve=never)
    assert caught.value.kind == "link-local"
    assert netpolicy.public_addresses("[2001:4860:4860::8888]", 25, resolve=never) == ("2001:4860:4860::8888",)


def test_names_that_do_not_resolve_are_refused():
    with pytest.raises(HostNotAllowed) as caught:
        netpolicy.public_addresses("nowhere.invalid", 587, resolve=_resolver({}))
    assert caught.value.code == "unresolvable"
    with pytest.raises(HostNotAllowed) as caught:
        netpolicy.public_addresses("empty.example", 587, resolve=_resolver({"empty.example": []}))
    assert caught.value.code == "unresolvable"


def test_localhost_resolves_to_loopback_for_real():
    with pytest.raises(HostNotAllowed) as caught:
        netpolicy.public_addresses("localhost", 25)
    assert caught.value.kind == "loopback"
