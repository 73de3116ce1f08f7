"""The planner, table-driven: which route, which servers in which order, and why (reason codes)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_routing.tools.planning import (
    Health,
    MailFacts,
    OdooChoice,
    Plan,
    Route,
    Server,
    match_route,
    plan_mail,
)


def decide(facts, routes, servers, matches, cooling=None, limited=None, **kwargs):
    return plan_mail(facts, routes, servers, matches, health=Health(cooling or {}, limited or {}), **kwargs)


def from_matches(email, from_filter):
    """Odoo's rule: an empty filter matches everything; each part is an address or a domain."""
    if not from_filter:
        return True
    email = (email or "").lower()
    domain = email.rpartition("@")[2]
    parts = [part.strip().lower() for part in from_filter.split(",")]
    return email in parts or domain in parts


SERVERS = {
    1: Server(1, "Transactional", None),
    2: Server(2, "Consultants", "practice.example"),
    3: Server(3, "Bulk", "news.practice.example"),
    4: Server(4, "Spanish", None),
    5: Server(5, "English", None),
    6: Server(6, "Backup", None),
    7: Server(7, "Ana's mailbox", "ana@practice.example", user_selectable=True),
    8: Server(8, "Company B relay", None, company_id=2),
}

ROUTES = [
    Route(10, "Bulk mailshots", (3, 6), sequence=1, purposes=frozenset({"bulk"})),
    Route(
        11,
        "Spanish clients",
        (4, 6),
        sequence=5,
        purposes=frozenset({"personal", "transactional"}),
        langs=frozenset({"es_ES"}),
    ),
    Route(12, "Consultants", (2, 6), sequence=10, purposes=frozenset({"personal"})),
    Route(13, "Invoices", (5,), sequence=3, models=frozenset({"account.move"})),
    Route(14, "Everything else", (1, 6), is_default=True),
    Route(15, "Email Other", (5, 6), sequence=99, purposes=frozenset({"transactional"}), langs=frozenset({"xx"})),
]


@pytest.mark.parametrize(
    ("facts", "route_id", "servers", "reason_part"),
    [
        (MailFacts("bulk", "letters@news.practice.example"), 10, [3, 6], "['purpose', 'bulk']"),
        (MailFacts("personal", "ana@practice.example", lang="es_ES"), 11, [4, 6], "['lang', 'es_ES']"),
        (MailFacts("personal", "ana@practice.example", lang="en_US"), 12, [2, 6], "['purpose', 'personal']"),
        (MailFacts("transactional", "notifications@practice.example", lang="en_US"), 14, [1, 6], "route_default"),
        (MailFacts("transactional", "x@practice.example", model="account.move"), 13, [5], "['model', 'account.move']"),
        # the template's "Email Other" route wins over every condition
        (
            MailFacts("bulk", "x@practice.example", forced_route_id=15, forced_by="template"),
            15,
            [5, 6],
            "'by': 'template'",
        ),
    ],
    ids=["bulk", "spanish-personal", "english-personal", "default", "by-model", "forced-by-template"],
)
def test_route_and_candidates(facts, route_id, servers, reason_part):
    decision = decide(facts, ROUTES, SERVERS, from_matches)
    assert decision.route_id == route_id
    assert decision.server_ids == servers
    assert reason_part in repr((decision.route_code, decision.route_params))


def test_no_route_and_no_server_is_odoos_command_line():
    decision = decide(MailFacts("personal", "ana@practice.example"), [], SERVERS, from_matches)
    assert decision.route_id is None and decision.route_code == "no_route"
    assert [(line.server_id, line.code) for line in decision.candidates] == [(None, "command_line")]
    assert decision.first_usable.code == "command_line"


def test_authors_own_server_first_for_personal_mail_only():
    facts = MailFacts("personal", "ana@practice.example", lang="en_US", author_server_id=7)
    decision = decide(facts, ROUTES, SERVERS, from_matches)
    assert decision.server_ids == [7, 2, 6]
    assert decision.candidates[0].code == "own_server"
    for purpose in ("bulk", "transactional"):
        other = MailFacts(purpose, "ana@practice.example", lang="en_US", author_server_id=7)
        assert 7 not in decide(other, ROUTES, SERVERS, from_matches).server_ids


def test_servers_covering_the_from_come_first_others_skipped():
    route = Route(20, "Mixed", (1, 2, 3))
    decision = decide(MailFacts("personal", "ana@practice.example"), [route], SERVERS, from_matches)
    assert decision.server_ids == [1, 2]  # 1 has no filter (covers all), 2 covers the domain
    assert [(s.server_id, s.code, s.usable) for s in decision.skipped] == [(3, "from_not_covered", False)]


def test_when_nothing_covers_the_from_odoo_sends_from_the_notification_address():
    route = Route(21, "Only bulk", (3,))
    decision = decide(MailFacts("personal", "ana@practice.example"), [route], SERVERS, from_matches)
    assert decision.server_ids == [3]
    assert decision.candidates[0].params == {"notification_from": True}


def test_other_company_servers_and_routes_are_left_out():
    route = Route(22, "With B", (8, 1))
    decision = decide(MailFacts("transactional", "x@practice.example", company_id=1), [route], SERVERS, from_matches)
    assert decision.server_ids == [1]
    assert decision.skipped[0].code == "other_company"
    company_b_route = Route(23, "B only", (8,), is_default=True, company_id=2)
    decision = decide(MailFacts("transactional", "x@b.example", company_id=1), [company_b_route], SERVERS, from_matches)
    assert decision.route_id is None


def test_health_is_explained():
    facts = MailFacts("personal", "ana@practice.example", lang="en_US")
    decision = decide(facts, ROUTES, SERVERS, from_matches, cooling={2: "10:05"}, limited={6: "11:00"})
    lines = [(line.server_id, line.code, line.status, line.until, line.usable) for line in decision.candidates]
    assert lines == [(2, "route_primary", "cooling", "10:05", False), (6, "route_fallback", "limited", "11:00", False)]
    assert decision.first_usable is None, "nothing usable now: the queue defers to the first free slot"
    assert decision.skipped == ()


def test_route_sequence_decides_between_matching_routes():
    first = Route(30, "First", (1,), sequence=1, purposes=frozenset({"personal"}))
    second = Route(31, "Second", (2,), sequence=2, purposes=frozenset({"personal"}))
    assert match_route(MailFacts("personal"), [second, first])[0] == first


def test_forced_route_of_another_company_is_ignored():
    route = Route(40, "B", (8,), company_id=2, purposes=frozenset({"bulk"}))
    facts = MailFacts("transactional", company_id=1, forced_route_id=40, forced_by="template")
    assert match_route(facts, [route])[0] is None


def test_a_personal_server_in_a_route_carries_its_owners_personal_mail_only():
    servers = {**SERVERS, 9: Server(9, "Ben's mailbox", "practice.example", owner_id=42)}
    everything = Route(20, "Everything", (9, 1), is_default=True)
    ana = MailFacts(purpose="personal", email_from="ana@practice.example")
    others = decide(ana, [everything], servers, from_matches)
    assert others.server_ids == [1]
    assert [(skip.server_id, skip.code) for skip in others.skipped] == [(9, "personal_server")]
    system = decide(MailFacts(email_from="ben@practice.example"), [everything], servers, from_matches)
    assert system.server_ids == [1], "not even mail from its owner's address, when it is not his personal mail"
    own = MailFacts(purpose="personal", email_from="ben@practice.example", author_server_id=9)
    assert decide(own, [everything], servers, from_matches).server_ids == [9, 1]


# -- no route: Odoo's choice, then the servers that may send as the same sender -------------------------
STOCK = [
    Server(1, "Relay", None, sequence=1),
    Server(2, "Consultants", "practice.example", sequence=2),
    Server(3, "Bulk", "news.example", sequence=3),
    Server(4, "Default", None, sequence=4, is_default=True, company_id=1),
    Server(5, "Company B", None, sequence=5, company_id=2),
    Server(6, "Ben's mailbox", "ben@practice.example", sequence=6, owner_id=42),
    Server(7, "Ana's pick", "ana@practice.example", sequence=7, user_selectable=True),
]


def stock(facts, primary, smtp_from="ana@practice.example", **kwargs):
    return plan_mail(facts, [], STOCK, from_matches, odoo=OdooChoice(primary, smtp_from), **kwargs)


def codes(lines):
    return [(line.server_id, line.code) for line in lines]


def test_no_route_odoo_choice_then_the_company_default_then_same_sender():
    plan = stock(MailFacts("transactional", "ana@practice.example", company_id=1), 2)
    assert codes(plan.candidates) == [(2, "odoo_choice"), (4, "same_sender"), (1, "same_sender"), (7, "same_sender")]
    assert codes(plan.skipped) == [(3, "from_not_covered"), (5, "other_company")]
    assert 6 not in [line.server_id for line in plan.lines], "other users' personal servers are not even listed"


def test_no_route_own_server_first_for_personal_mail():
    facts = MailFacts("personal", "ana@practice.example", company_id=1, author_server_id=7)
    assert stock(facts, 2).server_ids == [7, 2, 4, 1]
    assert stock(facts, 2).candidates[0].code == "own_server"
    facts = MailFacts("transactional", "ana@practice.example", company_id=1, author_server_id=7)
    assert stock(facts, 2).server_ids == [2, 4, 1, 7], "not first: only as a server that may send as the sender"


def test_no_route_odoos_pick_of_a_personal_server_only_for_its_owner():
    facts = MailFacts("personal", "ben@practice.example", company_id=1)
    assert codes(stock(facts, 6, "ben@practice.example").skipped)[0] == (6, "personal_server")
    owner = MailFacts("personal", "ben@practice.example", company_id=1, acting_user_id=42)
    assert stock(owner, 6, "ben@practice.example").server_ids[0] == 6


def test_no_route_other_company_primary_and_own_server_are_left_out():
    facts = MailFacts("personal", "ana@practice.example", company_id=1, author_server_id=5)
    plan = stock(facts, 5)
    assert 5 not in plan.server_ids
    assert (5, "other_company") in codes(plan.skipped)


def test_no_route_no_server_may_then_odoos_command_line():
    facts = MailFacts("transactional", "x@news.example", company_id=2)
    plan = plan_mail(facts, [], [STOCK[2]], from_matches, odoo=OdooChoice(3, "x@news.example"))
    assert codes(plan.candidates) == [(3, "odoo_choice")]
    plan = plan_mail(facts, [], [STOCK[3]], from_matches, odoo=OdooChoice(4, "x@news.example"))
    assert codes(plan.candidates) == [(None, "command_line")]


def test_no_route_a_server_the_mail_names_stays_its_candidate_even_archived():
    archived = Server(9, "Archived", None)
    facts = MailFacts("transactional", "ana@practice.example", company_id=1)
    plan = plan_mail(facts, [], STOCK, from_matches, odoo=OdooChoice(9, "ana@practice.example", server=archived))
    assert codes(plan.candidates)[0] == (9, "odoo_choice")


def test_send_as_narrows_to_the_permission_servers():
    facts = MailFacts("transactional", "ana@practice.example", company_id=1)
    plan = stock(facts, 2, send_as_server_ids=frozenset({1}))
    assert codes(plan.candidates) == [(1, "same_sender")]
    assert {code for _sid, code in codes(plan.skipped)} >= {"not_allowed_by_send_as"}
    plan = stock(facts, 2, send_as_server_ids=frozenset({3}))
    assert codes(plan.candidates) == [(3, "send_as_server")], "none of the candidates: the permission's own"


def test_limited_server_stays_in_place_but_is_not_the_first_usable():
    facts = MailFacts("transactional", "ana@practice.example", company_id=1)
    plan = stock(facts, 2, health=Health(limited={2: "2026-01-01 10:00:00"}))
    assert plan.server_ids[0] == 2 and plan.candidates[0].status == "limited"
    assert plan.first_usable.server_id == 4


# -- properties ---------------------------------------------------------------------------------------------
server_ids = st.integers(min_value=1, max_value=8)
facts_strategy = st.builds(
    MailFacts,
    purpose=st.sampled_from(["transactional", "personal", "bulk"]),
    email_from=st.sampled_from(["ana@practice.example", "x@news.practice.example", "y@other.example"]),
    lang=st.sampled_from([None, "es_ES", "en_US"]),
    company_id=st.sampled_from([None, 1, 2]),
    model=st.sampled_from([None, "account.move"]),
    forced_route_id=st.sampled_from([None, 10, 15, 99]),
    author_server_id=st.sampled_from([None, 7, 8]),
    acting_user_id=st.sampled_from([None, 42]),
)


@settings(max_examples=300, deadline=None)
@given(
    facts=facts_strategy,
    with_routes=st.booleans(),
    primary=st.one_of(st.none(), server_ids),
    allowed=st.one_of(st.none(), st.frozensets(server_ids, min_size=1, max_size=3)),
    cooling=st.frozensets(server_ids, max_size=3),
    limited=st.frozensets(server_ids, max_size=3),
)
def test_plan_properties(facts, with_routes, primary, allowed, cooling, limited):
    health = Health({sid: "c" for sid in cooling}, {sid: "l" for sid in limited})
    plan = plan_mail(
        facts,
        ROUTES if with_routes else [],
        SERVERS,
        from_matches,
        odoo=OdooChoice(primary, facts.email_from),
        send_as_server_ids=allowed,
        health=health,
    )
    ids = [line.server_id for line in plan.candidates]
    assert len(ids) == len(set(ids)), "a server is a candidate once"
    assert plan.candidates, "there is always something to try (or Odoo's command line)"
    assert not {line.server_id for line in plan.skipped} & set(ids) or allowed is not None
    if allowed is not None:
        assert set(ids) <= allowed, "a Send-As permission limited to some servers keeps only those"
    else:
        for sid in ids:
            if sid is None:
                continue
            server = SERVERS[sid]
            assert not server.company_id or server.company_id == facts.company_id, "never another company's"
            assert not server.owner_id or sid == facts.author_server_id or server.owner_id == facts.acting_user_id
    for line in plan.candidates:
        assert line.usable == (line.server_id not in cooling | limited or line.server_id is None)
    first = plan.first_usable
    if first is not None:
        assert all(not line.usable for line in plan.candidates[: plan.candidates.index(first)])
    assert Plan.from_json(plan.to_json()) == plan
