"""Which servers may carry a mail, in what order, and why.

Plain values in, a :class:`Decision` out. The Odoo side builds :class:`MailFacts`
from a ``mail.mail`` (or from the "Which server?" form), :class:`Route` and
:class:`Server` from records, and passes the health it knows (cooling down,
over a limit) and Odoo's own ``from_filter`` matcher.

Rules, in order:

1. a route forced by the mail (a template's or the composer's "Email Other"
   route) wins, if it exists and may serve the mail's company;
2. otherwise the first route, by sequence, whose conditions all hold: purpose,
   recipient language, company, source model (an empty condition holds for
   every mail);
3. otherwise the default route;
4. with no route at all, None: the caller keeps Odoo's choice (priority and
   From filter), plus failover.

Within the route, servers keep their order (primary, then fallbacks). A personal
mail whose author picked a server in their preferences goes through that server
first (never bulk or transactional mail, never another user's mail; a personal
server listed in a route is skipped for everyone else's mail). Servers of
another company are left out; servers that cover the From come before servers
that do not (those send from the notification address, as Odoo does), and
servers cooling down or over a limit are listed as skipped, with the time they
free up, while still being the fallback of last resort for deferral.
"""

from dataclasses import dataclass, field

PURPOSES = ("transactional", "personal", "bulk")


@dataclass(frozen=True)
class Server:
    id: int
    name: str
    from_filter: str | None = None
    company_id: int | None = None
    user_selectable: bool = False
    owner_id: int | None = None  # a user's personal server: it carries its owner's personal mail only


@dataclass(frozen=True)
class Route:
    id: int
    name: str
    server_ids: tuple  # ordered: primary first
    sequence: int = 10
    purposes: frozenset = frozenset()
    langs: frozenset = frozenset()
    company_id: int | None = None
    models: frozenset = frozenset()
    is_default: bool = False


@dataclass(frozen=True)
class MailFacts:
    purpose: str = "transactional"
    email_from: str = ""
    lang: str | None = None
    company_id: int | None = None
    model: str | None = None
    forced_route_id: int | None = None
    forced_by: str = ""  # "template", "composer"...
    author_server_id: int | None = None  # the author's own server (preferences), personal mail only
    author_email: str | None = None


@dataclass(frozen=True)
class Candidate:
    server_id: int
    reason: str
    covers_from: bool = True


@dataclass(frozen=True)
class Skipped:
    server_id: int
    code: str  # other_company, personal_server, cooling, limited, from_not_covered, not_selectable
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    route_id: int | None
    route_reason: str
    candidates: tuple = ()
    skipped: tuple = ()
    notes: tuple = field(default_factory=tuple)

    @property
    def server_ids(self):
        return [candidate.server_id for candidate in self.candidates]


def _conditions(route, facts):
    """(all hold, [descriptions of the conditions that held])."""
    held = []
    if route.purposes:
        if facts.purpose not in route.purposes:
            return False, []
        held.append(f"purpose {facts.purpose}")
    if route.langs:
        if not facts.lang or facts.lang not in route.langs:
            return False, []
        held.append(f"language {facts.lang}")
    if route.company_id:
        if facts.company_id != route.company_id:
            return False, []
        held.append("company")
    if route.models:
        if not facts.model or facts.model not in route.models:
            return False, []
        held.append(f"model {facts.model}")
    return True, held


def _company_ok(route_or_server, facts):
    return not route_or_server.company_id or route_or_server.company_id == facts.company_id


def match_route(facts, routes):
    """(route or None, reason)."""
    routes = sorted(routes, key=lambda r: (r.sequence, r.id))
    if facts.forced_route_id:
        forced = next((r for r in routes if r.id == facts.forced_route_id), None)
        if forced and _company_ok(forced, facts):
            return forced, f"route {forced.name!r} chosen by the {facts.forced_by or 'mail'}"
    for route in routes:
        if route.is_default:
            continue
        ok, held = _conditions(route, facts)
        if ok and held:
            return route, f"route {route.name!r}: " + ", ".join(held)
    for route in routes:
        if route.is_default and _company_ok(route, facts):
            return route, f"default route {route.name!r}"
    for route in routes:  # a route with no condition at all takes everything
        if not route.is_default and _conditions(route, facts) == (True, []) and _company_ok(route, facts):
            return route, f"route {route.name!r} (no condition)"
    return None, "no route: Odoo's choice (priority and From filter)"


def decide(facts, routes, servers, from_matches, cooling=None, limited=None):
    """The ordered candidate servers for a mail, with reasons.

    :param servers: {id: Server} of the active servers.
    :param from_matches: ``callable(email, from_filter) -> bool`` (Odoo's ``_match_from_filter``).
    :param cooling: {server id: until} of servers cooling down now.
    :param limited: {server id: until} of servers with no room left now.
    """
    cooling, limited = cooling or {}, limited or {}
    route, route_reason = match_route(facts, routes)
    if route is None:
        return Decision(None, route_reason)
    ordered = []
    if facts.purpose == "personal" and facts.author_server_id in servers:
        own = servers[facts.author_server_id]
        ordered.append((own.id, "the author's own server (preferences)"))
    for position, server_id in enumerate(route.server_ids):
        if server_id in servers and server_id not in [sid for sid, _ in ordered]:
            ordered.append(
                (server_id, "primary of the route" if position == 0 else f"fallback {position} of the route")
            )
    candidates, skipped, later = [], [], []
    for server_id, reason in ordered:
        server = servers[server_id]
        if server.owner_id and server_id != facts.author_server_id:
            skipped.append(Skipped(server_id, "personal_server", "another user's personal server"))
            continue
        if not _company_ok(server, facts):
            skipped.append(Skipped(server_id, "other_company", "belongs to another company"))
            continue
        covers = from_matches(facts.email_from, server.from_filter)
        if server_id in cooling:
            skipped.append(Skipped(server_id, "cooling", f"cooling down until {cooling[server_id]}"))
        elif server_id in limited:
            skipped.append(Skipped(server_id, "limited", f"over its limit until {limited[server_id]}"))
        if covers:
            candidates.append(Candidate(server_id, reason, True))
        else:
            later.append(Candidate(server_id, reason + "; From not covered: sent from the notification address", False))
    if candidates and later:
        skipped.extend(Skipped(c.server_id, "from_not_covered", "does not cover the From") for c in later)
        later = []
    return Decision(route.id, route_reason, tuple(candidates + later), tuple(skipped))


def explain(decision, names):
    """A readable account of a decision (English; the UI translates the frame)."""
    lines = [decision.route_reason]
    for index, candidate in enumerate(decision.candidates, 1):
        lines.append(f"{index}. {names.get(candidate.server_id, candidate.server_id)}: {candidate.reason}")
    for skip in decision.skipped:
        lines.append(f"skipped {names.get(skip.server_id, skip.server_id)}: {skip.detail}")
    return "\n".join(lines)


def majority_language(langs):
    """The language of a mail with recipients in several languages: the most common, ties by first seen.

    >>> majority_language(["es_ES", "en_US", "es_ES"])
    'es_ES'
    >>> majority_language(["en_US", "es_ES"])
    'en_US'
    >>> majority_language([None, False]) is None
    True
    """
    counts = {}
    for lang in langs:
        if lang:
            counts[lang] = counts.get(lang, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return next(lang for lang in counts if counts[lang] == best)
