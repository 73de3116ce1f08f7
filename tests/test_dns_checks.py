"""SPF, DKIM and DMARC diagnostics against a real DNS server on 127.0.0.1."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from smtp_routing.testing.dnsd import SERVFAIL, DnsServer
from smtp_routing.tools.dns_checks import check_dkim, check_dmarc, check_spf, diagnose, mx_hosts, resolver_lookup


def _rsa_record(bits):
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def _ed25519_record():
    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()


ZONE = {
    ("pass.example", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all", "some-verification=123"],
    ("softfail.example", "TXT"): ["v=spf1 ip4:192.0.2.1 ~all"],
    ("neutral.example", "TXT"): ["v=spf1 ?all"],
    ("include.example", "TXT"): ["v=spf1 include:_spf.provider.example -all"],
    ("_spf.provider.example", "TXT"): ["v=spf1 ip4:203.0.113.0/24 -all"],
    ("amx.example", "TXT"): ["v=spf1 a mx -all"],
    ("amx.example", "A"): ["192.0.2.10"],
    ("amx.example", "MX"): ["10 mail.amx.example"],
    ("mail.amx.example", "A"): ["192.0.2.20"],
    ("v6.example", "TXT"): ["v=spf1 ip6:2001:db8::/32 -all"],
    ("exists.example", "TXT"): ["v=spf1 exists:%{i}.allow.exists.example -all"],
    ("192.0.2.7.allow.exists.example", "A"): ["127.0.0.2"],
    ("redirect.example", "TXT"): ["v=spf1 redirect=pass.example"],
    ("void.example", "TXT"): ["v=spf1 a:nx1.void.example a:nx2.void.example a:nx3.void.example -all"],
    ("loop1.example", "TXT"): ["v=spf1 include:loop2.example -all"],
    ("loop2.example", "TXT"): ["v=spf1 include:loop1.example -all"],
    ("multi.example", "TXT"): ["v=spf1 ip4:192.0.2.1 -all", "v=spf1 -all"],
    ("syntax.example", "TXT"): ["v=spf1 ip4:192.0.2.1 foo:bar -all"],
    ("nospf.example", "A"): ["192.0.2.1"],
    ("servfail.example", "TXT"): [SERVFAIL],
    ("_dmarc.pass.example", "TXT"): ["v=DMARC1; p=reject; rua=mailto:dmarc@pass.example; adkim=s"],
    ("_dmarc.amx.example", "TXT"): ["v=DMARC1; p=none"],
    ("_dmarc.org.example", "TXT"): ["v=DMARC1; p=quarantine; pct=50; rua=mailto:r@org.example"],
    ("_dmarc.badpolicy.example", "TXT"): ["v=DMARC1; p=maybe"],
    ("pass.example", "MX"): ["20 mx2.pass.example", "10 mx1.pass.example"],
}
# an include chain one longer than the 10 lookups SPF allows
for index in range(1, 12):
    ZONE[(f"l{index}.many.example", "TXT")] = [f"v=spf1 include:l{index + 1}.many.example -all"]
ZONE[("l12.many.example", "TXT")] = ["v=spf1 -all"]
ZONE[("many.example", "TXT")] = ["v=spf1 include:l1.many.example -all"]


@pytest.fixture(scope="module")
def lookup():
    zone = dict(ZONE)
    zone[("good._domainkey.pass.example", "TXT")] = [_rsa_record(2048)]
    zone[("weak._domainkey.pass.example", "TXT")] = zone[("weak._domainkey.amx.example", "TXT")] = [_rsa_record(1024)]
    zone[("ed._domainkey.pass.example", "TXT")] = [_ed25519_record()]
    zone[("broken._domainkey.pass.example", "TXT")] = ["v=DKIM1; k=rsa; p=bm90IGEga2V5"]
    zone[("revoked._domainkey.pass.example", "TXT")] = ["v=DKIM1; p="]
    with DnsServer(zone) as server:
        yield resolver_lookup(server.resolver())


@pytest.mark.parametrize(
    ("domain", "ip", "result"),
    [
        ("pass.example", "192.0.2.55", "pass"),
        ("pass.example", "198.51.100.1", "fail"),
        ("softfail.example", "198.51.100.1", "softfail"),
        ("neutral.example", "198.51.100.1", "neutral"),
        ("include.example", "203.0.113.9", "pass"),
        ("include.example", "192.0.2.1", "fail"),
        ("amx.example", "192.0.2.10", "pass"),
        ("amx.example", "192.0.2.20", "pass"),
        ("amx.example", "192.0.2.30", "fail"),
        ("v6.example", "2001:db8::25", "pass"),
        ("v6.example", "192.0.2.1", "fail"),
        ("exists.example", "192.0.2.7", "pass"),
        ("exists.example", "192.0.2.8", "fail"),
        ("redirect.example", "192.0.2.1", "pass"),
        ("nospf.example", "192.0.2.1", "none"),
        ("nothing-at-all.example", "192.0.2.1", "none"),
    ],
)
def test_spf_results(lookup, domain, ip, result):
    assert check_spf(domain, ip, lookup).result == result


@pytest.mark.parametrize(
    ("domain", "result", "problem"),
    [
        ("many.example", "permerror", "more than 10 DNS lookups"),
        ("void.example", "permerror", "more than 2 void lookups"),
        ("loop1.example", "permerror", "include loop: loop1.example -> loop2.example -> loop1.example"),
        ("multi.example", "permerror", "publishes 2 SPF records"),
        ("syntax.example", "permerror", "syntax error"),
        ("servfail.example", "temperror", "servfail.example"),
    ],
)
def test_spf_errors(lookup, domain, result, problem):
    outcome = check_spf(domain, "192.0.2.1", lookup)
    assert outcome.result == result
    assert any(problem in p for p in outcome.problems), outcome.problems


def test_spf_counts_lookups_and_reports_includes(lookup):
    outcome = check_spf("include.example", "203.0.113.9", lookup)
    assert (outcome.lookups, outcome.includes, outcome.matched) == (
        1,
        ["_spf.provider.example"],
        "include:_spf.provider.example",
    )


@pytest.mark.parametrize(
    ("selector", "status", "bits"),
    [
        ("good", "ok", 2048),
        ("weak", "weak", 1024),
        ("ed", "ok", 256),
        ("broken", "broken", None),
        ("revoked", "revoked", None),
        ("absent", "missing", None),
    ],
)
def test_dkim_keys(lookup, selector, status, bits):
    key = check_dkim("pass.example", selector, lookup)
    assert (key.status, key.bits) == (status, bits)


def test_dmarc(lookup):
    strict = check_dmarc("pass.example", lookup)
    assert (strict.status, strict.policy, strict.adkim, strict.rua) == (
        "ok",
        "reject",
        "s",
        ["mailto:dmarc@pass.example"],
    )
    monitoring = check_dmarc("amx.example", lookup)
    assert monitoring.status == "monitoring" and "no rua" in " ".join(monitoring.problems)
    inherited = check_dmarc("sub.org.example", lookup)  # falls back to the organizational domain
    assert (inherited.policy, inherited.pct) == ("quarantine", 50)
    assert check_dmarc("nospf.example", lookup).status == "missing"
    assert check_dmarc("badpolicy.example", lookup).status == "invalid"


def test_mx_order(lookup):
    assert mx_hosts("pass.example", lookup) == ["mx1.pass.example", "mx2.pass.example"]


def test_diagnosis_of_a_good_domain(lookup):
    diagnosis = diagnose("pass.example", lookup, ips=["192.0.2.9"], selectors=["good"], starttls=lambda host: True)
    statuses = {f.check: f.status for f in diagnosis.findings}
    assert statuses == {"spf": "ok", "dkim": "ok", "dmarc": "ok", "mx": "ok"}
    assert diagnosis.status == "ok"


def test_diagnosis_says_exactly_what_to_publish(lookup):
    diagnosis = diagnose("nospf.example", lookup, ips=["192.0.2.9"])
    spf = next(f for f in diagnosis.findings if f.check == "spf")
    assert spf.status == "fail"
    assert spf.fix == 'nospf.example TXT "v=spf1 ip4:192.0.2.9 ~all"'
    dmarc = next(f for f in diagnosis.findings if f.check == "dmarc")
    assert dmarc.fix.startswith('_dmarc.nospf.example TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@nospf.example')
    # a provider's include missing from an existing record is added before the all mechanism
    diagnosis = diagnose("pass.example", lookup, provider="google_workspace")
    spf = next(f for f in diagnosis.findings if f.check == "spf")
    assert spf.fix == 'pass.example TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.google.com -all"'
    # p=none: advice to tighten; weak key: warned
    diagnosis = diagnose("amx.example", lookup, ips=["192.0.2.10"], selectors=["weak"])
    assert {f.check: f.status for f in diagnosis.findings}["dmarc"] == "warn"
    assert diagnosis.status == "warn"


def test_diagnosis_starttls(lookup):
    diagnosis = diagnose("pass.example", lookup, ips=["192.0.2.9"], starttls=lambda host: host == "mx1.pass.example")
    mx = next(f for f in diagnosis.findings if f.check == "mx")
    assert mx.status == "warn" and "no STARTTLS on mx2.pass.example" in mx.summary
