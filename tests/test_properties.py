"""Property tests (hypothesis): the parsers never crash on any input, and what they accept is sound."""

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtp_routing.tools.dns_checks import check_spf
from smtp_routing.tools.hostport import HostPortError, parse_host
from smtp_routing.tools.routing import majority_language
from smtp_routing.tools.smtp_errors import CATEGORIES, classify_reply

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
HOSTNAME = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
PORT = st.integers(min_value=1, max_value=65535)


@given(st.text(max_size=300))
def test_parse_host_accepts_or_refuses_cleanly(text):
    try:
        parsed = parse_host(text)
    except HostPortError as error:
        assert error.code in {"empty", "space", "bad_port", "bad_host"}
        return
    assert parsed.host and not any(c.isspace() for c in parsed.host)
    assert parsed.port is None or 1 <= parsed.port <= 65535


@given(HOSTNAME, PORT, st.booleans())
def test_host_notations_round_trip(host, port, brackets):
    typed = f"[{host}]:{port}" if brackets else f"{host}:{port}"
    parsed = parse_host(typed)
    assert (parsed.host, parsed.port) == (host, port)


@given(st.ip_addresses(v=6), PORT)
def test_ipv6_with_port(address, port):
    parsed = parse_host(f"[{address}]:{port}")
    assert ipaddress.ip_address(parsed.host) == address and parsed.port == port


@given(
    st.integers(min_value=-5, max_value=999),
    st.text(max_size=200),
    st.sampled_from([None, "auth", "mail", "rcpt", "data"]),
)
def test_every_reply_gets_a_known_category(code, text, stage):
    outcome = classify_reply(code, text, stage)
    assert outcome.category in CATEGORIES
    assert "\n" not in outcome.text and len(outcome.text) <= 1000


@given(st.lists(st.sampled_from(["es_ES", "en_US", "fr_FR", None, False]), max_size=20))
def test_majority_language_is_one_of_the_inputs(langs):
    result = majority_language(langs)
    present = [lang for lang in langs if lang]
    assert (result is None) == (not present)
    if present:
        assert present.count(result) == max(present.count(lang) for lang in present)


SPF_TERM = st.one_of(
    st.sampled_from(
        [
            "all",
            "-all",
            "~all",
            "?all",
            "+all",
            "a",
            "mx",
            "ptr",
            "exists:x.example",
            "include:x.example",
            "redirect=x.example",
            "ip4:192.0.2.0/24",
            "ip6:2001:db8::/32",
        ]
    ),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:/.=%{}-+~?", min_size=1, max_size=30),
)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(st.lists(SPF_TERM, max_size=12), st.ip_addresses(v=4))
def test_spf_evaluation_never_crashes_and_stays_bounded(terms, ip):
    record = "v=spf1 " + " ".join(terms)
    calls = []

    def lookup(name, rdtype):
        calls.append((name, rdtype))
        if rdtype == "TXT" and name in ("example.test", "x.example"):
            return [record]
        return []

    result = check_spf("example.test", str(ip), lookup)
    assert result.result in {"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"}
    assert result.lookups <= 11 and len(calls) < 200


ADDRESS = st.builds(
    lambda local, domain: f"{local}@{domain}.example", st.from_regex(r"[a-z0-9._+-]{1,20}", fullmatch=True), LABEL
)


@given(st.lists(ADDRESS, max_size=10), st.sampled_from([", ", ",", "; ", " , "]))
def test_address_lists_round_trip(addresses, separator):
    from smtp_routing.tools.addresses import split_addresses

    expected = list(dict.fromkeys(addresses))
    assert split_addresses(separator.join(addresses)) == expected
    named = separator.join(f'"Name {i}, Jr" <{a}>' for i, a in enumerate(addresses))
    assert split_addresses(named) == expected


@given(st.text(max_size=300))
def test_address_lists_never_crash_and_never_span_lines(text):
    from smtp_routing.tools.addresses import split_addresses

    for address in split_addresses(text):
        assert "@" in address and not any(char in address for char in "\r\n <>,;")
