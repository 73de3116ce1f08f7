"""Bulk-sender readiness against a real DNS server on 127.0.0.1, and volumes per big receiver."""

import pytest

from smtp_routing.testing.dnsd import DnsServer
from smtp_routing.tools import dkim
from smtp_routing.tools.dns_checks import resolver_lookup
from smtp_routing.tools.readiness import check, daily_volume, receiver, status

_PEM, RECORD = dkim.generate_key("rsa")
ZONE = {
    ("shop.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
    ("bounces.shop.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
    ("s1._domainkey.shop.example", "TXT"): [RECORD],
    ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=none; rua=mailto:dmarc@shop.example"],
    ("elsewhere.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
    ("nodmarc.example", "TXT"): ["v=spf1 ip4:192.0.2.10 -all"],
}
GOOD = {
    "ips": ["192.0.2.10"],
    "dkim_selectors": ["s1"],
    "unsubscribe_base_url": "https://odoo.shop.example",
    "encryption": "starttls",
}


@pytest.fixture(scope="module")
def lookup():
    with DnsServer(ZONE) as server:
        yield resolver_lookup(server.resolver())


def _statuses(findings):
    return {finding.check: finding.status for finding in findings}


def test_a_ready_domain(lookup):
    findings = check("shop.example", lookup, envelope_domain="bounces.shop.example", **GOOD)
    assert _statuses(findings) == {"spf": "ok", "dkim": "ok", "dmarc": "ok", "one_click": "ok", "tls": "ok"}
    assert status(findings) == "ok"
    assert findings[0].detail == "SPF passes for bounces.shop.example, aligned with shop.example"


@pytest.mark.parametrize(
    ("domain", "changes", "check_name", "expected", "words"),
    [
        ("shop.example", {"envelope_domain": "elsewhere.example"}, "spf", "fail", "not aligned with shop.example"),
        ("shop.example", {"ips": ["198.51.100.7"]}, "spf", "fail", "does not pass"),
        ("shop.example", {"dkim_selectors": []}, "dkim", "fail", "no DKIM key for shop.example"),
        ("shop.example", {"dkim_selectors": [], "provider": "sendgrid"}, "dkim", "warn", "unless the provider"),
        ("shop.example", {"dkim_selectors": ["gone"]}, "dkim", "fail", "no TXT record"),
        ("nodmarc.example", {}, "dmarc", "fail", "no DMARC record"),
        ("shop.example", {"dkim_selectors": [], "ips": ["198.51.100.7"]}, "dmarc", "fail", "neither SPF nor DKIM"),
        ("shop.example", {"unsubscribe_base_url": "http://odoo.shop.example"}, "one_click", "fail", "requires HTTPS"),
        ("shop.example", {"encryption": "none"}, "tls", "fail", "without encryption"),
        ("shop.example", {"verify_certificate": False}, "tls", "warn", "not verified"),
    ],
)
def test_what_is_missing_is_named(lookup, domain, changes, check_name, expected, words):
    findings = check(domain, lookup, **{**GOOD, **changes})
    (finding,) = [f for f in findings if f.check == check_name]
    assert finding.status == expected
    assert words in finding.detail
    assert status(findings) != "ok"


@pytest.mark.parametrize(
    ("address", "name"),
    [
        ("x@gmail.com", "gmail"),
        ("x@googlemail.com", "gmail"),
        ("x@yahoo.com", "yahoo"),
        ("x@yahoo.fr", "yahoo"),
        ("x@ymail.com", "yahoo"),
        ("x@outlook.com", "microsoft"),
        ("x@hotmail.co.uk", "microsoft"),
        ("x@live.com", "microsoft"),
        ("x@msn.com", "microsoft"),
        ("x@yahoo.co.jp", "yahoo"),
        ("x@hotmail.com.br", "microsoft"),
        ("x@outlook.example.com", None),  # a company's own server named outlook: not Microsoft's consumer mail
        ("x@gmail.example", None),
        ("x@example.com", None),
        ("", None),
    ],
)
def test_big_receivers(address, name):
    assert receiver(address) == name


def test_volume_counts_recipients_not_rows():
    assert daily_volume(["a@gmail.com, B@GMAIL.COM, c@yahoo.com", "d@live.fr", None, "e@example.org"]) == {
        "gmail": 2,
        "yahoo": 1,
        "microsoft": 1,
    }
