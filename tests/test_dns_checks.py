"""SPF, DKIM and DMARC diagnostics against a real DNS server on 127.0.0.1."""

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from smtp_routing.testing.dnsd import SERVFAIL, DnsServer
from smtp_routing.tools.dns_checks import (
    aligned,
    check_dkim,
    check_dmarc,
    check_spf,
    diagnose,
    mx_hosts,
    organizational_domain,
    resolver_lookup,
)


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


# -- DMARC as RFC 9989 defines it: DNS tree walk, psd, np, t; pct gone ----------------------------------------
UK_ZONE = {
    ("_dmarc.example.co.uk", "TXT"): ["v=DMARC1; p=reject; sp=quarantine; np=reject; rua=mailto:dmarc@example.co.uk"],
    ("_dmarc.co.uk", "TXT"): ["v=DMARC1; p=none; psd=y"],  # the public suffix operator's own record
    ("_dmarc.other.co.uk", "TXT"): ["v=DMARC1; p=reject; rua=mailto:d@other.co.uk"],
    ("_dmarc.legacy.example", "TXT"): ["v=DMARC1; p=quarantine; pct=25; rua=mailto:d@legacy.example"],
    ("_dmarc.full.example", "TXT"): ["v=DMARC1; p=reject; pct=100; rua=mailto:d@full.example"],
    ("_dmarc.testing.example", "TXT"): ["v=DMARC1; p=reject; t=y; rua=mailto:d@testing.example"],
    ("_dmarc.twice.example", "TXT"): ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
    ("_dmarc.deep.example", "TXT"): ["v=DMARC1; p=quarantine; rua=mailto:d@deep.example"],
}


@pytest.fixture(scope="module")
def uk_dns():
    with DnsServer(UK_ZONE) as server:
        yield server


@pytest.fixture
def uk(uk_dns):
    uk_dns.queries.clear()
    return resolver_lookup(uk_dns.resolver())


def test_subdomain_whose_organizational_domain_is_not_the_last_two_labels(uk):
    dmarc = check_dmarc("mail.example.co.uk", uk)
    assert dmarc.walk == ["_dmarc.mail.example.co.uk", "_dmarc.example.co.uk", "_dmarc.co.uk", "_dmarc.uk"]
    assert (dmarc.record_domain, dmarc.org_domain) == ("example.co.uk", "example.co.uk")
    # a subdomain without its own record gets the parent's sp (the last-two-labels guess read co.uk's p=none)
    assert (dmarc.policy_tag, dmarc.policy, dmarc.nonexistent_policy, dmarc.status) == (
        "sp",
        "quarantine",
        "reject",
        "ok",
    )
    own = check_dmarc("example.co.uk", uk)
    assert (own.policy_tag, own.policy, own.org_domain) == ("p", "reject", "example.co.uk")


def test_organizational_domain_by_the_tree_walk(uk):
    assert organizational_domain("mail.example.co.uk", uk) == "example.co.uk"  # psd=y at co.uk: one label below
    assert organizational_domain("a.b.other.co.uk", uk) == "other.co.uk"
    assert organizational_domain("nothing.example", uk) == "nothing.example"  # no record anywhere: itself
    zone = {("_dmarc.example.co.uk", "TXT"): ["v=DMARC1; p=reject"], ("_dmarc.co.uk", "TXT"): ["v=DMARC1; p=none"]}
    with DnsServer(zone) as server:
        lookup = resolver_lookup(server.resolver())
        # without psd=y, the record with the fewest labels wins: co.uk
        assert organizational_domain("mail.example.co.uk", lookup) == "co.uk"
        server.records[("_dmarc.example.co.uk", "TXT")] = ["v=DMARC1; p=reject; psd=n"]
        assert organizational_domain("mail.example.co.uk", lookup) == "example.co.uk"


def test_alignment_uses_the_organizational_domain(uk):
    assert aligned("mail.example.co.uk", "example.co.uk", "r", uk)
    assert not aligned("mail.example.co.uk", "example.co.uk", "s", uk)
    assert not aligned("example.co.uk", "other.co.uk", "r", uk)


def test_tree_walk_asks_at_most_eight_names(uk_dns, uk):
    domain = "a.b.c.d.e.f.g.h.i.deep.example"
    dmarc = check_dmarc(domain, uk)
    asked = [name for name, rdtype in uk_dns.queries if name.startswith("_dmarc.")]
    assert len(set(asked)) == 8 and "_dmarc.a.b.c.d.e.f.g.h.i.deep.example" in asked
    assert (dmarc.record_domain, dmarc.org_domain, dmarc.policy) == ("deep.example", "deep.example", "quarantine")


def test_pct_is_gone_and_t_tests(uk):
    legacy = check_dmarc("legacy.example", uk)
    assert legacy.pct == 25 and any("RFC 9989 removed pct" in problem for problem in legacy.problems)
    full = check_dmarc("full.example", uk)
    assert full.status == "ok" and full.problems == [] and "pct=100 can go: RFC 9989 removed pct" in full.notes
    testing = check_dmarc("testing.example", uk)
    assert (testing.status, testing.testing) == ("testing", True)
    twice = check_dmarc("twice.example", uk)
    assert twice.status == "missing" and "_dmarc.twice.example has 2 DMARC records" in twice.problems[1]


def test_dmarc_findings_say_what_receivers_apply_and_what_to_publish(uk):
    (finding,) = [f for f in diagnose("mail.example.co.uk", uk).findings if f.check == "dmarc"]
    assert finding.status == "ok"
    assert finding.summary.startswith(
        "DMARC sp=quarantine for mail.example.co.uk (from _dmarc.example.co.uk); np=reject, adkim=r, aspf=r; "
        "organizational domain example.co.uk (RFC 9989 DNS tree walk)"
    )
    (legacy,) = [f for f in diagnose("legacy.example", uk).findings if f.check == "dmarc"]
    assert legacy.status == "warn"
    assert legacy.fix == (
        '_dmarc.legacy.example TXT "v=DMARC1; p=quarantine; rua=mailto:d@legacy.example; t=y" while you test, '
        'then "v=DMARC1; p=quarantine; rua=mailto:d@legacy.example"'
    )
    (testing,) = [f for f in diagnose("testing.example", uk).findings if f.check == "dmarc"]
    assert testing.status == "warn" and "t=y (testing)" in testing.summary
    assert (
        testing.fix
        == '_dmarc.testing.example TXT "v=DMARC1; p=reject; rua=mailto:d@testing.example" once testing is over'
    )
    (missing,) = [f for f in diagnose("nothing.example", uk).findings if f.check == "dmarc"]
    assert missing.summary == "no DMARC record (RFC 9989 DNS tree walk: _dmarc.nothing.example, _dmarc.example)"


def test_dmarc_walk_stops_when_the_dns_does_not_answer():
    zone = {("_dmarc.mail.example.co.uk", "TXT"): [SERVFAIL], ("_dmarc.example.co.uk", "TXT"): ["v=DMARC1; p=reject"]}
    with DnsServer(zone) as server:
        dmarc = check_dmarc("mail.example.co.uk", resolver_lookup(server.resolver(lifetime=0.5)))
        asked = [name for name, _rdtype in server.queries]
    assert dmarc.status == "temperror"
    assert dmarc.problems == ["the DNS did not answer for _dmarc.mail.example.co.uk"]
    assert "_dmarc.example.co.uk" not in asked, "nothing above an unanswered name is asked"
