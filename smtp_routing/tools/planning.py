"""The routing planner: which servers may carry a mail, in what order, and why.

This is the one place that decides routing. The queue (``sending/run.py``) sends
through the candidates of a :class:`Plan` in their order; *Which Server?* shows
the same plan as lines; a mail stores the plan's codes and renders them in its
reader's language. No Odoo here: plain values in, a :class:`Plan` out.

Facts in:

- :class:`MailFacts`: purpose, From, recipient language, company, source model,
  a route forced by a template or the composer, the acting user, the author's
  own server (from their preferences, already checked for personal mail);
- the active servers (:class:`Server`, in Odoo's sequence order) and the
  routes (:class:`Route`);
- Odoo's own choice for the no-route case (:class:`OdooChoice`: the server
  ``_find_mail_server`` picked and the envelope sender it would use);
- the servers a Send-As permission limits the mail to, when it does;
- health (:class:`Health`): servers cooling down, servers over a limit, and until when;
- ``from_matches(email, from_filter)``: Odoo's ``_match_from_filter``.

A plan out: the route (or none) with a reason code, the candidate servers in
the order the queue tries them (each a :class:`Line` with a role code and a
status), and the servers left out (each a :class:`Line` with a skip code).

Rules, in order:

1. a route forced by the mail wins, if it exists and may serve the mail's company;
2. otherwise the first route, by sequence, whose conditions all hold (purpose,
   recipient language, company, source model; an empty condition holds for all);
3. otherwise the default route of the company (or of every company);
4. otherwise a route with no condition at all;
5. no route: Odoo's choice first, then the company's default server, then the
   other servers, in sequence order, that may send as the same envelope sender;
   nothing at all: Odoo's command-line settings.

Whatever the route, a personal mail whose author picked a server in their
preferences goes through that server first. A user's personal server carries
its owner's personal mail only; a server of another company never carries the
mail. In a route, servers that may send from the From come before those that
may not, which are used only when none may (Odoo then sends from the
notification address). A Send-As permission limited to some servers keeps only
those (when none of the candidates is one, the permission's servers themselves).
A server cooling down or over a limit stays a candidate in its place (the queue
defers to it when nothing else takes the mail) but is not *usable* now: the
first usable candidate is the server that carries the mail.

>>> servers = [Server(1, "Relay"), Server(2, "Consultants", "practice.example"), Server(3, "Bulk", sequence=20)]
>>> routes = [Route(10, "Personal", (2, 1), purposes=frozenset({"personal"}))]
>>> plan = plan_mail(MailFacts("personal", "ana@practice.example"), routes, servers, from_matches=_demo_match)
>>> plan.route_code, plan.server_ids, [line.code for line in plan.candidates]
('route_matched', [2, 1], ['route_primary', 'route_fallback'])
>>> plan.route_params["held"]
[['purpose', 'personal']]

A cooling primary stays in place, but the first usable server is its stand-in:

>>> health = Health(cooling={2: "10:05"})
>>> plan = plan_mail(MailFacts("personal", "ana@practice.example"), routes, servers, health=health,
...                  from_matches=_demo_match)
>>> [(line.server_id, line.status, line.usable) for line in plan.candidates]
[(2, 'cooling', False), (1, '', True)]
>>> plan.first_usable.server_id
1

No route: Odoo's choice, then the others that may send as the same sender:

>>> odoo = OdooChoice(server_id=2, smtp_from="ana@practice.example")
>>> plan = plan_mail(MailFacts("personal", "ana@practice.example"), [], servers, odoo=odoo,
...                  from_matches=_demo_match)
>>> plan.route_code, [(line.server_id, line.code) for line in plan.candidates]
('no_route', [(2, 'odoo_choice'), (1, 'same_sender'), (3, 'same_sender')])

A Send-As permission through one server keeps that server only:

>>> plan = plan_mail(MailFacts("personal", "ana@practice.example"), [], servers, odoo=odoo,
...                  send_as_server_ids=frozenset({3}), from_matches=_demo_match)
>>> plan.server_ids, [(line.server_id, line.code) for line in plan.skipped]
([3], [(2, 'not_allowed_by_send_as'), (1, 'not_allowed_by_send_as')])

A plan is stored as plain JSON and read back:

>>> Plan.from_json(plan.to_json()) == plan
True
"""

from dataclasses import asdict, dataclass, field

PURPOSES = ("transactional", "personal", "bulk")

# candidate roles
OWN_SERVER = "own_server"  # the author's own server (preferences)
ROUTE_PRIMARY = "route_primary"
ROUTE_FALLBACK = "route_fallback"  # params: position
ODOO_CHOICE = "odoo_choice"  # no route: the server Odoo's _find_mail_server picked
SAME_SENDER = "same_sender"  # no route: another server that may send as the same envelope sender
COMMAND_LINE = "command_line"  # no server at all: Odoo's command-line settings (server_id None)
SEND_AS_SERVER = "send_as_server"  # named by a Send-As permission limited to some servers
# skip codes
OTHER_COMPANY = "other_company"
PERSONAL_SERVER = "personal_server"
FROM_NOT_COVERED = "from_not_covered"
NOT_ALLOWED_BY_SEND_AS = "not_allowed_by_send_as"
# statuses of a candidate (not usable now, still tried in its place after the others)
COOLING = "cooling"
LIMITED = "limited"


@dataclass(frozen=True)
class Server:
    id: int
    name: str
    from_filter: str | None = None
    company_id: int | None = None
    user_selectable: bool = False
    owner_id: int | None = None  # a user's personal server: it carries its owner's personal mail only
    sequence: int = 10
    is_default: bool = False  # the company's default server (company_id None: every company's)


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
    forced_by: str = ""  # "template", "composer", "template or composer"
    author_server_id: int | None = None  # the author's own server (preferences), personal mail only
    author_email: str | None = None
    acting_user_id: int | None = None  # the user who wrote the mail (a personal server's owner may use it)


@dataclass(frozen=True)
class OdooChoice:
    """What stock Odoo picked for the mail when no route applies (``_find_mail_server``)."""

    server_id: int | None = None  # None: no server at all, Odoo's command-line settings
    smtp_from: str = ""  # the envelope sender Odoo would use through it
    server: Server | None = None  # the server itself when it is not among the active ones (a mail names an
    # archived server: it stays the candidate, so the queue fails the mail saying what to fix)


@dataclass(frozen=True)
class Health:
    cooling: dict = field(default_factory=dict)  # server id -> until
    limited: dict = field(default_factory=dict)  # server id -> until


@dataclass(frozen=True)
class Line:
    """One server of a plan: a candidate (role code) or a server left out (skip code)."""

    server_id: int | None
    name: str
    code: str
    params: dict = field(default_factory=dict)
    status: str = ""  # candidates: "", COOLING or LIMITED
    until: str | None = None  # when the status ends (as given in the health snapshot)
    candidate: bool = True

    @property
    def usable(self):
        return self.candidate and not self.status


@dataclass(frozen=True)
class Plan:
    route_id: int | None
    route_code: str  # route_forced, route_matched, route_default, route_any, no_route
    route_params: dict = field(default_factory=dict)
    candidates: tuple = ()
    skipped: tuple = ()

    @property
    def server_ids(self):
        return [line.server_id for line in self.candidates]

    @property
    def first_usable(self):
        """The candidate that carries the mail when nothing fails: the first one not cooling or limited."""
        return next((line for line in self.candidates if line.usable), None)

    @property
    def lines(self):
        return self.candidates + self.skipped

    def to_json(self):
        return {
            "route": {"id": self.route_id, "code": self.route_code, "params": self.route_params},
            "lines": [{k: v for k, v in asdict(line).items() if v not in (None, "", {})} for line in self.lines],
        }

    @classmethod
    def from_json(cls, value):
        route = value.get("route") or {}
        lines = [
            Line(
                line.get("server_id"),
                line.get("name", ""),
                line["code"],
                dict(line.get("params") or {}),
                line.get("status", ""),
                line.get("until"),
                line.get("candidate", False),
            )
            for line in value.get("lines") or []
        ]
        return cls(
            route.get("id"),
            route.get("code", "no_route"),
            dict(route.get("params") or {}),
            tuple(line for line in lines if line.candidate),
            tuple(line for line in lines if not line.candidate),
        )


# -- the route ---------------------------------------------------------------------------------------
def _conditions(route, facts):
    """(all hold, [[condition, value] of the conditions that held])."""
    held = []
    if route.purposes:
        if facts.purpose not in route.purposes:
            return False, []
        held.append(["purpose", facts.purpose])
    if route.langs:
        if not facts.lang or facts.lang not in route.langs:
            return False, []
        held.append(["lang", facts.lang])
    if route.company_id:
        if facts.company_id != route.company_id:
            return False, []
        held.append(["company", route.company_id])
    if route.models:
        if not facts.model or facts.model not in route.models:
            return False, []
        held.append(["model", facts.model])
    return True, held


def _company_ok(route_or_server, facts):
    return not route_or_server.company_id or route_or_server.company_id == facts.company_id


def match_route(facts, routes):
    """(route or None, reason code, params).

    >>> routes = [Route(1, "Any", (1,), sequence=5), Route(2, "Default", (2,), is_default=True)]
    >>> match_route(MailFacts(), routes)[:2] == (routes[1], "route_default")
    True
    >>> match_route(MailFacts(), routes[:1])[1:]
    ('route_any', {'route': 'Any'})
    >>> match_route(MailFacts(), [])
    (None, 'no_route', {})
    """
    routes = sorted(routes, key=lambda r: (r.sequence, r.id))
    if facts.forced_route_id:
        forced = next((r for r in routes if r.id == facts.forced_route_id), None)
        if forced and _company_ok(forced, facts):
            return forced, "route_forced", {"route": forced.name, "by": facts.forced_by or "mail"}
    for route in routes:
        if route.is_default:
            continue
        ok, held = _conditions(route, facts)
        if ok and held:
            return route, "route_matched", {"route": route.name, "held": held}
    for route in routes:
        if route.is_default and _company_ok(route, facts):
            return route, "route_default", {"route": route.name}
    for route in routes:  # a route with no condition at all takes everything
        if not route.is_default and _conditions(route, facts) == (True, []) and _company_ok(route, facts):
            return route, "route_any", {"route": route.name}
    return None, "no_route", {}


# -- server orders -------------------------------------------------------------------------------------
def default_first(servers, company_id):
    """Servers in the order Odoo takes "the first server": the company's default server(s) first (a
    company's own before one for every company), then the others in their given order.

    Used for Odoo's own ``_find_mail_server`` too, so its choice and the planner's fallbacks agree.

    >>> servers = [Server(1, "A"), Server(2, "B", is_default=True, company_id=7), Server(3, "C", is_default=True)]
    >>> [s.id for s in default_first(servers, 7)], [s.id for s in default_first(servers, 8)]
    ([2, 3, 1], [3, 1, 2])
    """
    servers = list(servers)
    defaults = [s for s in servers if s.is_default and s.company_id in (company_id, None)]
    defaults.sort(key=lambda s: (s.company_id is None, s.sequence, s.id))
    return defaults + [s for s in servers if s not in defaults]


# -- the plan ------------------------------------------------------------------------------------------
def plan_mail(
    facts,
    routes,
    servers,
    from_matches,
    odoo=None,
    send_as_server_ids=None,
    health=None,
):
    """The plan for one mail (see the module's docstring).

    :param servers: the active servers, in Odoo's order (sequence, id): Server values, or a {id: Server}.
    :param odoo: :class:`OdooChoice`, Odoo's own pick, used when no route applies.
    :param send_as_server_ids: the servers a Send-As permission limits the mail to (None: not limited).
    """
    health = health or Health()
    if isinstance(servers, dict):
        servers = list(servers.values())
    by_id = {server.id: server for server in servers}
    route, route_code, route_params = match_route(facts, routes)
    if route is None:
        candidates, skipped = _stock_candidates(facts, servers, by_id, odoo or OdooChoice(), from_matches)
    else:
        candidates, skipped = _route_candidates(facts, route, by_id, from_matches)
    if send_as_server_ids is not None:
        allowed = set(send_as_server_ids)
        kept = [line for line in candidates if line.server_id in allowed]
        skipped += [_skip(line, NOT_ALLOWED_BY_SEND_AS) for line in candidates if line.server_id not in allowed]
        if not kept:
            kept = [_line(by_id.get(sid), SEND_AS_SERVER, server_id=sid) for sid in sorted(allowed)]
        candidates = kept
    candidates = [_with_health(line, health) for line in candidates]
    return Plan(route.id if route else None, route_code, route_params, tuple(candidates), tuple(skipped))


def _line(server, code, server_id=None, **params):
    return Line(server.id if server else server_id, server.name if server else "", code, params)


def _skip(line_or_server, code):
    if isinstance(line_or_server, Line):
        return Line(line_or_server.server_id, line_or_server.name, code, {}, candidate=False)
    return Line(line_or_server.id, line_or_server.name, code, {}, candidate=False)


def _with_health(line, health):
    for status, untils in ((COOLING, health.cooling), (LIMITED, health.limited)):
        if line.server_id is not None and line.server_id in untils:
            until = untils[line.server_id]
            return Line(line.server_id, line.name, line.code, line.params, status, until)
    return line


def _personal_ok(server, facts):
    """Odoo's pick may be a personal server (the only server, or one the mail names): only its owner's mail."""
    return not server.owner_id or facts.acting_user_id == server.owner_id


def _own_server(facts, by_id):
    if facts.purpose == "personal" and facts.author_server_id in by_id:
        return by_id[facts.author_server_id]
    return None


def _route_candidates(facts, route, by_id, from_matches):
    ordered = []
    own = _own_server(facts, by_id)
    if own:
        ordered.append(_line(own, OWN_SERVER))
    for position, server_id in enumerate(route.server_ids):
        if server_id in by_id and server_id not in [line.server_id for line in ordered]:
            server = by_id[server_id]
            ordered.append(
                _line(server, ROUTE_PRIMARY) if position == 0 else _line(server, ROUTE_FALLBACK, position=position)
            )
    covering, later, skipped = [], [], []
    for line in ordered:
        server = by_id[line.server_id]
        if server.owner_id and server.id != facts.author_server_id:
            skipped.append(_skip(server, PERSONAL_SERVER))
        elif not _company_ok(server, facts):
            skipped.append(_skip(server, OTHER_COMPANY))
        elif from_matches(facts.email_from, server.from_filter):
            covering.append(line)
        else:
            later.append(Line(line.server_id, line.name, line.code, {**line.params, "notification_from": True}))
    if covering and later:
        skipped += [_skip(line, FROM_NOT_COVERED) for line in later]
        later = []
    return covering + later, skipped


def _stock_candidates(facts, servers, by_id, odoo, from_matches):
    """No route: Odoo's choice, then the servers that may send as the same envelope sender."""
    primary = by_id.get(odoo.server_id) or (odoo.server if odoo.server and odoo.server.id == odoo.server_id else None)
    if primary is None:
        return [Line(None, "", COMMAND_LINE)], []
    candidates, skipped = [], []
    own = _own_server(facts, by_id)
    if own:
        if _company_ok(own, facts):
            candidates.append(_line(own, OWN_SERVER))
        else:
            skipped.append(_skip(own, OTHER_COMPANY))
    if primary is not own:
        if not _personal_ok(primary, facts):
            skipped.append(_skip(primary, PERSONAL_SERVER))
        elif not _company_ok(primary, facts):
            skipped.append(_skip(primary, OTHER_COMPANY))
        else:
            candidates.append(_line(primary, ODOO_CHOICE))
    for server in default_first([s for s in servers if s is not primary and s is not own], facts.company_id):
        if server.owner_id:
            continue  # another user's personal server is nobody else's fallback (not even listed)
        if not from_matches(odoo.smtp_from, server.from_filter):
            skipped.append(_skip(server, FROM_NOT_COVERED))
        elif not _company_ok(server, facts):
            skipped.append(_skip(server, OTHER_COMPANY))
        else:
            candidates.append(_line(server, SAME_SENDER))
    if all(line.code == OWN_SERVER for line in candidates):
        candidates.append(Line(None, "", COMMAND_LINE))  # nothing else may: Odoo's command-line settings
    return candidates, skipped


def _demo_match(email, from_filter):
    """Odoo's rule, for the examples: an empty filter matches all; each part is an address or a domain."""
    if not from_filter:
        return True
    email = (email or "").lower()
    parts = [part.strip().lower() for part in from_filter.split(",")]
    return email in parts or email.rpartition("@")[2] in parts
