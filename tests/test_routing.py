"""Routing decisions, table-driven: which route, which servers in which order, and why."""

import pytest

from smtp_routing.tools.routing import MailFacts, Route, Server, decide, explain, match_route


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
        (MailFacts("bulk", "letters@news.practice.example"), 10, [3, 6], "purpose bulk"),
        (MailFacts("personal", "ana@practice.example", lang="es_ES"), 11, [4, 6], "language es_ES"),
        (MailFacts("personal", "ana@practice.example", lang="en_US"), 12, [2, 6], "purpose personal"),
        (MailFacts("transactional", "notifications@practice.example", lang="en_US"), 14, [1, 6], "default route"),
        (MailFacts("transactional", "x@practice.example", model="account.move"), 13, [5], "model account.move"),
        # the template's "Email Other" route wins over every condition
        (
            MailFacts("bulk", "x@practice.example", forced_route_id=15, forced_by="template"),
            15,
            [5, 6],
            "chosen by the template",
        ),
    ],
    ids=["bulk", "spanish-personal", "english-personal", "default", "by-model", "forced-by-template"],
)
def test_route_and_candidates(facts, route_id, servers, reason_part):
    decision = decide(facts, ROUTES, SERVERS, from_matches)
    assert decision.route_id == route_id
    assert decision.server_ids == servers
    assert reason_part in decision.route_reason


def test_no_route_keeps_odoos_choice():
    decision = decide(MailFacts("personal", "ana@practice.example"), [], SERVERS, from_matches)
    assert decision.route_id is None and decision.candidates == ()
    assert "Odoo's choice" in decision.route_reason


def test_authors_own_server_first_for_personal_mail_only():
    facts = MailFacts("personal", "ana@practice.example", lang="en_US", author_server_id=7)
    decision = decide(facts, ROUTES, SERVERS, from_matches)
    assert decision.server_ids == [7, 2, 6]
    assert "own server" in decision.candidates[0].reason
    for purpose in ("bulk", "transactional"):
        other = MailFacts(purpose, "ana@practice.example", lang="en_US", author_server_id=7)
        assert 7 not in decide(other, ROUTES, SERVERS, from_matches).server_ids


def test_servers_covering_the_from_come_first_others_skipped():
    route = Route(20, "Mixed", (1, 2, 3))
    decision = decide(MailFacts("personal", "ana@practice.example"), [route], SERVERS, from_matches)
    assert decision.server_ids == [1, 2]  # 1 has no filter (covers all), 2 covers the domain
    assert [(s.server_id, s.code) for s in decision.skipped] == [(3, "from_not_covered")]


def test_when_nothing_covers_the_from_odoo_sends_from_the_notification_address():
    route = Route(21, "Only bulk", (3,))
    decision = decide(MailFacts("personal", "ana@practice.example"), [route], SERVERS, from_matches)
    assert decision.server_ids == [3]
    assert not decision.candidates[0].covers_from
    assert "notification address" in decision.candidates[0].reason


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
    codes = {(s.server_id, s.code) for s in decision.skipped}
    assert codes == {(2, "cooling"), (6, "limited")}
    text = explain(decision, {sid: s.name for sid, s in SERVERS.items()})
    assert "route 'Consultants': purpose personal" in text
    assert "skipped Consultants: cooling down until 10:05" in text
    assert "skipped Backup: over its limit until 11:00" in text


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
