"""The Send-As policy (tools/send_as.py) beyond its doctests: properties over any From a caller may type."""

from hypothesis import given
from hypothesis import strategies as st

from smtp_routing.tools.send_as import (
    Actor,
    Grant,
    MailRequest,
    Policy,
    ServerFacts,
    check_from,
    check_mail,
    parse_from,
)

LOCAL = st.from_regex(r"[a-z0-9]([a-z0-9._-]{0,12}[a-z0-9])?", fullmatch=True)
DOMAIN = st.from_regex(r"[a-z0-9]{1,10}\.(example|test)", fullmatch=True)
ADDRESS = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN)
ANA = Actor(
    user_id=7,
    name="Ana",
    approved_email="ana@practice.example",
    current_email="ana@practice.example",
    company_ids=frozenset({1}),
    company_emails=frozenset({"info@practice.example"}),
)
BOTH_MODES = (Policy(), Policy(strict=True))


@given(st.text(max_size=200))
def test_parse_from_never_crashes_and_returns_one_lowercase_address(text):
    address, problem = parse_from(text)
    assert (address is None) != (problem is None)
    if address is not None:
        assert address == address.lower() and address.count("@") == 1 and not any(c.isspace() for c in address)
    else:
        assert problem in {"empty", "multiple", "unparsable"}


@given(ADDRESS, ADDRESS, st.sampled_from([", ", "; ", " , ", ","]))
def test_a_from_with_two_addresses_is_never_allowed(first, second, separator):
    for policy in BOTH_MODES:
        verdict = check_from(ANA, f"{first}{separator}{second}", policy, [Grant(first), Grant(second)])
        assert not verdict.allowed and verdict.code in {"multiple", "unparsable"}


@given(ADDRESS, st.sampled_from(["\r\n", "\n", "\r"]), ADDRESS)
def test_a_from_with_a_line_break_is_never_allowed(address, newline, other):
    verdict = check_from(ANA, f"Ana <{address}>{newline}Bcc: {other}", grants=[Grant(address)])
    assert not verdict.allowed and verdict.code == "unparsable"


@given(ADDRESS)
def test_an_address_is_allowed_only_for_a_reason(address):
    verdict = check_from(ANA, address)
    if address in ("ana@practice.example", "info@practice.example"):
        assert verdict.allowed
    else:
        assert (verdict.allowed, verdict.code) == (False, "not_granted")


@given(ADDRESS, st.booleans())
def test_naming_an_author_never_passes_strict_mode(address, claimed):
    verdict = check_from(ANA, address, Policy(strict=True), named_author=True, is_claimed=lambda _a: claimed)
    assert verdict.allowed == (address in ("ana@practice.example", "info@practice.example"))


@given(st.integers(min_value=1, max_value=50), st.booleans(), st.booleans())
def test_another_users_personal_server_is_never_allowed(owner, offered, admin):
    actor = Actor(**{**ANA.__dict__, "admin": admin})
    server = ServerFacts(id=90, name="Theirs", owner_id=owner + 100, offered=offered)
    for policy in BOTH_MODES:
        verdict = check_mail(actor, MailRequest("ana@practice.example", server=server), policy)
        assert (verdict.allowed, verdict.code) == (False, "personal_server")
