"""Who may send as which address, through which server, route and company.

Plain values in, a :class:`Verdict` out (a yes or no and a reason code). The
Odoo side describes the **acting user** as an :class:`Actor`: the user who
created the message or mail (the RPC caller, the composer's user), stamped from
``env.uid`` when the message is created. Never the message's ``author_id``:
callers choose that one.

The From check, in order:

1. mail created by code as the superuser (cron, automated actions run by
   OdooBot) keeps Odoo's behaviour; so does mail of portal and public users,
   whom Odoo's own rules already restrict;
2. a From rendered by an administrator's template (or, outside strict mode,
   the From an Email Marketing user set on a mailing) is trusted, as in Odoo;
3. with the check switched off, everything passes;
4. an empty From is Odoo's default sender; a From with several addresses, or
   one that is not an address, is refused;
5. the user's **approved** address (the one an administrator set or
   approved), the notification addresses and, where allowed, the addresses of
   the user's companies pass;
6. a Send-As permission for the address or its domain passes, possibly only
   through some servers;
7. outside strict mode, Odoo's "post on behalf of" passes: a From that Odoo
   took from the author a caller named (no From given), when that author is an
   internal user of one of the sender's companies;
8. the user's current address, when it differs from the approved one (they
   changed it themselves), passes only outside strict mode and only if it
   belongs to nobody else (another user, a company, a shared mailbox, an
   alias);
9. everything else is refused.

Forced servers, routes and companies (set on a message by its sender) are
checked separately: :func:`check_server`, :func:`check_route`,
:func:`check_company`. :func:`check_mail` runs all of them and returns the
first refusal, or the From's verdict.

Strict mode (``Policy.strict``) is Send-As without Odoo's conveniences: no
"post on behalf of", no self-written own address, mailings checked like any
mail, templates written by template editors give no server. Outside it, Odoo's
own test suites pass unchanged (they post on behalf of colleagues, change a
user's address and send from it, let marketing users choose a mailing's From and
server, and template editors a template's server).

>>> ana = Actor(user_id=7, name="Ana", approved_email="ana@practice.example", company_ids=frozenset({1}))
>>> check_from(ana, '"Ana" <Ana@Practice.Example>').code
'own'
>>> check_from(ana, "ceo@practice.example").code
'not_granted'
>>> check_from(ana, "ceo@practice.example, ana@practice.example").code
'multiple'
>>> check_from(Actor(system=True), "anyone@anywhere.example").code
'system'
"""

import email.utils
import re
from dataclasses import dataclass

# One addr-spec: a local part and a domain, no spaces, brackets, quotes or separators.
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\\\"]+@[^@\s<>()\[\],;:\\\"]+$")

# Verdict codes that let the mail go.
ALLOWED_CODES = frozenset(
    {
        "system",  # created by code as the superuser: Odoo's behaviour
        "shared",  # portal or public user: Odoo's own rules
        "trusted",  # rendered by an administrator's template, or set on a mailing
        "off",  # the Send-As check is switched off
        "default",  # no From: Odoo's default sender
        "own",  # the user's own address
        "system_address",  # a notification address
        "company",  # one of the user's companies' addresses
        "granted",  # a Send-As permission
        "granted_through",  # a Send-As permission through some servers only (see server_ids)
        "named_author",  # outside strict mode: Odoo's "post on behalf of" an internal colleague
        "not_forced",  # no server, route or company forced on the mail
        "own_server",  # the user's own personal server
        "offered",  # a server offered to users / a route selectable when writing
        "admin",  # a Settings administrator's choice of server or route
        "own_company",  # one of the user's companies, or the document's own company
    }
)


@dataclass(frozen=True)
class Actor:
    """The user who created the message or mail."""

    user_id: int | None = None
    name: str = ""
    system: bool = False  # the superuser (OdooBot): code acting on its own
    share: bool = False  # portal or public user
    admin: bool = False  # Settings administrator: may pick any server or route of their companies
    approved_email: str | None = None  # normalized; set or approved by an administrator
    current_email: str | None = None  # normalized; the address in the user's profile now
    company_ids: frozenset = frozenset()
    company_emails: frozenset = frozenset()  # normalized addresses of the user's companies
    own_server_ids: frozenset = frozenset()  # the user's personal server(s)


@dataclass(frozen=True)
class Grant:
    """A Send-As permission: an address (support@x.example) or a whole domain (x.example)."""

    address: str
    server_ids: frozenset = frozenset()  # empty: through any server


@dataclass(frozen=True)
class Policy:
    enforce: bool = True  # smtp_routing.enforce_send_as
    company_email: bool = True  # smtp_routing.send_as_company_email
    strict: bool = False  # smtp_routing.send_as_strict: only approved addresses; mailings are checked too
    system_addresses: frozenset = frozenset()  # normalized notification / default From addresses


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class ServerFacts:
    id: int
    name: str = ""
    owner_id: int | None = None  # a user's personal server
    offered: bool = False  # "Available to Users"
    company_id: int | None = None


@dataclass(frozen=True)
class RouteFacts:
    id: int
    name: str = ""
    selectable: bool = False  # "Selectable When Writing"
    company_id: int | None = None


@dataclass(frozen=True)
class MailRequest:
    """What a message or mail asks for, and which parts an administrator's template chose."""

    email_from: str | None = None
    from_trusted: bool = False
    from_named_author: bool = False  # Odoo took the From from the author the caller named, an internal colleague
    server: ServerFacts | None = None
    server_trusted: bool = False
    route: RouteFacts | None = None
    route_trusted: bool = False
    company_id: int | None = None
    document_company_id: int | None = None  # the company of the document the message is about


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    code: str
    address: str = ""  # the From address in question (normalized when it parsed)
    subject: str = ""  # the server, route or company in question
    server_ids: frozenset = frozenset()  # granted_through / wrong_server: the servers the grant names

    def __bool__(self):
        return self.allowed


def _allow(code, **values):
    return Verdict(True, code, **values)


def _deny(code, **values):
    return Verdict(False, code, **values)


def parse_from(value):
    """(address, problem): the one address of a From, lower-cased, else None and why.

    >>> parse_from('"Ana" <Ana@Practice.Example>')
    ('ana@practice.example', None)
    >>> parse_from('"Doe, Jane" <jane@x.example>')
    ('jane@x.example', None)
    >>> parse_from("ceo@x.example, me@x.example")
    (None, 'multiple')
    >>> parse_from("a@x.example; b@x.example")
    (None, 'multiple')
    >>> parse_from("ceo@x.example <me@x.example>")
    (None, 'multiple')
    >>> parse_from("not an address")
    (None, 'unparsable')
    >>> parse_from("ceo@x.example me@x.example")
    (None, 'unparsable')
    >>> parse_from("Ana <ana@x.example>\\r\\nBcc: victim@y.example")
    (None, 'unparsable')
    >>> parse_from(""), parse_from(None), parse_from("  ")
    ((None, 'empty'), (None, 'empty'), (None, 'empty'))
    """
    if not value or not value.strip():
        return None, "empty"
    if "\r" in value or "\n" in value:
        return None, "unparsable"  # never read a folded or injected header as an address
    entries = [(name, addr) for name, addr in email.utils.getaddresses([value.replace(";", ",")]) if name or addr]
    valid = [addr.strip() for _name, addr in entries if _ADDRESS.match(addr.strip())]
    if len(entries) > 1:
        return None, ("multiple" if len(valid) > 1 else "unparsable")
    if len(valid) != 1:
        return None, "unparsable"
    return valid[0].lower(), None


def normalize(value):
    """The lower-cased address of a single-address value, else None.

    >>> normalize("Ana <ANA@x.example>"), normalize("a@x.example, b@x.example"), normalize(False)
    ('ana@x.example', None, None)
    """
    return parse_from(value or "")[0]


def _domain(address):
    return address.rpartition("@")[2]


def matching_grants(address, grants):
    """The grants that cover ``address``: the address itself, or its domain.

    >>> grants = [Grant("support@x.example"), Grant("x.example", frozenset({3})), Grant("y.example")]
    >>> [g.address for g in matching_grants("support@x.example", grants)]
    ['support@x.example', 'x.example']
    """
    domain = _domain(address)
    return [grant for grant in grants if grant.address.strip().lower() in (address, domain)]


def check_from(
    actor,
    email_from,
    policy=DEFAULT_POLICY,
    grants=(),
    trusted=False,
    server_id=None,
    is_claimed=None,
    named_author=False,
):
    """May ``actor`` send as ``email_from`` (through ``server_id``, when known)?

    ``is_claimed(address)`` says whether an address belongs to someone else
    (another user, a company, a shared mailbox, an alias); it is asked only
    about a user's own changed address.

    >>> ana = Actor(7, "Ana", approved_email="ana@x.example", current_email="ana@x.example",
    ...             company_ids=frozenset({1}), company_emails=frozenset({"info@x.example"}))
    >>> policy = Policy(system_addresses=frozenset({"notifications@x.example"}))
    >>> [check_from(ana, f, policy).code for f in ("Ana <ana@x.example>", "info@x.example",
    ...                                          "notifications@x.example", "", "boss@x.example")]
    ['own', 'company', 'system_address', 'default', 'not_granted']
    >>> check_from(ana, "info@x.example", Policy(company_email=False)).code
    'not_granted'

    Bad From values are refused, whoever the user:

    >>> check_from(ana, "boss@x.example, ana@x.example", policy).code
    'multiple'
    >>> check_from(ana, "boss", policy).allowed
    False

    The superuser, portal users, trusted templates and a switched-off check keep Odoo's behaviour:

    >>> check_from(Actor(system=True), "boss@x.example").code, check_from(Actor(share=True), "boss@x.example").code
    ('system', 'shared')
    >>> check_from(ana, "boss@x.example", policy, trusted=True).code
    'trusted'
    >>> check_from(ana, "boss@x.example", Policy(enforce=False)).code
    'off'

    Send-As permissions, for an address or a whole domain, possibly through some servers only:

    >>> check_from(ana, "support@x.example", policy, [Grant("support@x.example")]).code
    'granted'
    >>> check_from(ana, "anything@x.example", policy, [Grant("x.example")]).code
    'granted'
    >>> limited = [Grant("support@x.example", frozenset({3}))]
    >>> verdict = check_from(ana, "support@x.example", policy, limited)
    >>> verdict.code, sorted(verdict.server_ids)
    ('granted_through', [3])
    >>> check_from(ana, "support@x.example", policy, limited, server_id=3).code
    'granted'
    >>> check_from(ana, "support@x.example", policy, limited, server_id=4).code
    'wrong_server'

    Odoo's "post on behalf of" an internal colleague (the From Odoo took from the named author)
    passes outside strict mode only:

    >>> check_from(ana, "carla@x.example", policy, named_author=True).code
    'named_author'
    >>> check_from(ana, "carla@x.example", Policy(strict=True), named_author=True).code
    'not_granted'

    An address the user wrote into their own profile is not approved. Outside strict mode it
    passes unless it belongs to someone else; in strict mode it never does:

    >>> moved = Actor(7, "Ana", approved_email="ana@x.example", current_email="ceo@x.example")
    >>> check_from(moved, "ceo@x.example", policy, is_claimed={"ceo@x.example"}.__contains__).code
    'unapproved'
    >>> moved = Actor(7, "Ana", approved_email="ana@x.example", current_email="ana.new@x.example")
    >>> check_from(moved, "ana.new@x.example", policy, is_claimed=set().__contains__).code
    'own'
    >>> check_from(moved, "ana.new@x.example", Policy(strict=True)).code
    'unapproved'
    >>> check_from(moved, "ana@x.example", Policy(strict=True)).code
    'own'
    """
    if actor.system:
        return _allow("system")
    if actor.share:
        return _allow("shared")
    if trusted:
        return _allow("trusted")
    if not policy.enforce:
        return _allow("off")
    address, problem = parse_from(email_from)
    if problem == "empty":
        return _allow("default")
    if problem:
        return _deny(problem, address=(email_from or "").strip())
    if address == actor.approved_email:
        return _allow("own", address=address)
    if address in policy.system_addresses:
        return _allow("system_address", address=address)
    if policy.company_email and address in actor.company_emails:
        return _allow("company", address=address)
    granted = _grant_verdict(address, grants, server_id)
    if granted is not None:
        return granted
    if named_author and not policy.strict:
        return _allow("named_author", address=address)
    if address == actor.current_email:
        if policy.strict or (is_claimed is not None and is_claimed(address)):
            return _deny("unapproved", address=address)
        return _allow("own", address=address)
    return _deny("not_granted", address=address)


def _grant_verdict(address, grants, server_id):
    """The verdict of the Send-As permissions for ``address``, or None when none covers it."""
    grants = matching_grants(address, grants)
    if not grants:
        return None
    if any(not grant.server_ids for grant in grants):
        return _allow("granted", address=address)
    through = frozenset().union(*(grant.server_ids for grant in grants))
    if server_id is None:
        return _allow("granted_through", address=address, server_ids=through)
    if server_id in through:
        return _allow("granted", address=address)
    return _deny("wrong_server", address=address, server_ids=through)


def check_server(actor, server, trusted=False):
    """May ``actor`` force ``server`` (a :class:`ServerFacts`, or None) on a mail?

    The servers offered to users and the user's own; a server a trusted template or mailing chose;
    never another user's personal server, never another company's.

    >>> ana = Actor(7, "Ana", company_ids=frozenset({1}), own_server_ids=frozenset({9}))
    >>> offered, relay = ServerFacts(2, "Offered", offered=True), ServerFacts(3, "Relay")
    >>> [check_server(ana, s).code for s in (None, offered, relay, ServerFacts(9, "Mine", owner_id=7))]
    ['not_forced', 'offered', 'not_offered', 'own_server']
    >>> check_server(ana, ServerFacts(8, "Ben's", owner_id=8, offered=True)).code
    'personal_server'
    >>> check_server(ana, ServerFacts(4, "B relay", offered=True, company_id=2)).code
    'server_other_company'
    >>> check_server(ana, relay, trusted=True).code, check_server(Actor(system=True), relay).code
    ('trusted', 'system')

    Administrators choose among their companies' servers, never another user's personal one:

    >>> boss = Actor(1, "Boss", admin=True, company_ids=frozenset({1}))
    >>> [check_server(boss, s).code for s in (relay, ServerFacts(8, "Ben's", owner_id=8))]
    ['admin', 'personal_server']
    """
    if server is None:
        return _allow("not_forced")
    if actor.system or actor.share:
        return _allow("system" if actor.system else "shared", subject=server.name)
    if trusted:
        return _allow("trusted", subject=server.name)
    if server.owner_id:
        if server.owner_id == actor.user_id or server.id in actor.own_server_ids:
            return _allow("own_server", subject=server.name)
        return _deny("personal_server", subject=server.name)
    if server.company_id and server.company_id not in actor.company_ids:
        return _deny("server_other_company", subject=server.name)
    if actor.admin:
        return _allow("admin", subject=server.name)
    if server.offered:
        return _allow("offered", subject=server.name)
    return _deny("not_offered", subject=server.name)


def check_route(actor, route, trusted=False):
    """May ``actor`` choose ``route`` (a :class:`RouteFacts`, or None) for a mail?

    >>> ana = Actor(7, "Ana", company_ids=frozenset({1}))
    >>> [check_route(ana, r).code for r in (None, RouteFacts(1, "Mailshots", selectable=True), RouteFacts(2, "VIP"))]
    ['not_forced', 'offered', 'route_not_selectable']
    >>> check_route(ana, RouteFacts(3, "B", selectable=True, company_id=2)).code
    'route_other_company'
    >>> check_route(ana, RouteFacts(2, "VIP"), trusted=True).code
    'trusted'
    """
    if route is None:
        return _allow("not_forced")
    if actor.system or actor.share:
        return _allow("system" if actor.system else "shared", subject=route.name)
    if trusted:
        return _allow("trusted", subject=route.name)
    if route.company_id and route.company_id not in actor.company_ids:
        return _deny("route_other_company", subject=route.name)
    if actor.admin:
        return _allow("admin", subject=route.name)
    if route.selectable:
        return _allow("offered", subject=route.name)
    return _deny("route_not_selectable", subject=route.name)


def check_company(actor, company_id, document_company_id=None):
    """May ``actor`` send mail for ``company_id``: one of their companies, or the document's own?

    >>> ana = Actor(7, "Ana", company_ids=frozenset({1}))
    >>> check_company(ana, None).code, check_company(ana, 1).code, check_company(ana, 2, document_company_id=2).code
    ('not_forced', 'own_company', 'own_company')
    >>> check_company(ana, 2, document_company_id=1).code
    'other_company'
    """
    if not company_id:
        return _allow("not_forced")
    if actor.system or actor.share:
        return _allow("system" if actor.system else "shared")
    if company_id in actor.company_ids or company_id == document_company_id:
        return _allow("own_company")
    return _deny("other_company")


def check_mail(actor, request, policy=DEFAULT_POLICY, grants=(), is_claimed=None):
    """The first refusal among the forced server, route, company and the From; else the From's verdict.

    >>> ana = Actor(7, "Ana", approved_email="ana@x.example", company_ids=frozenset({1}))
    >>> check_mail(ana, MailRequest("ana@x.example")).code
    'own'
    >>> check_mail(ana, MailRequest("ana@x.example", server=ServerFacts(3, "Relay"))).code
    'not_offered'
    >>> check_mail(ana, MailRequest("ana@x.example", server=ServerFacts(3, "Relay", owner_id=8))).code
    'personal_server'
    >>> check_mail(ana, MailRequest("ana@x.example", company_id=2)).code
    'other_company'
    >>> check_mail(ana, MailRequest("ceo@x.example", route=RouteFacts(1, "Mailshots", selectable=True))).code
    'not_granted'

    A user's own personal server carries mail from their approved address only:

    >>> mine = ServerFacts(9, "Ana's mailbox", owner_id=7)
    >>> check_mail(ana, MailRequest("ana@x.example", server=mine)).code
    'own'
    >>> check_mail(ana, MailRequest("info@x.example", server=mine)).code
    'personal_server_from'

    A grant limited to one server refuses another forced server:

    >>> grant = Grant("support@x.example", frozenset({2}))
    >>> request = MailRequest("support@x.example", server=ServerFacts(5, "Other", offered=True))
    >>> check_mail(ana, request, grants=[grant]).code
    'wrong_server'
    """
    server_verdict = check_server(actor, request.server, request.server_trusted)
    if not server_verdict:
        return server_verdict
    if server_verdict.code == "own_server" and normalize(request.email_from) != actor.approved_email:
        address = normalize(request.email_from) or (request.email_from or "")
        return _deny("personal_server_from", address=address, subject=server_verdict.subject)
    route_verdict = check_route(actor, request.route, request.route_trusted)
    if not route_verdict:
        return route_verdict
    company_verdict = check_company(actor, request.company_id, request.document_company_id)
    if not company_verdict:
        return company_verdict
    server_id = request.server.id if request.server else None
    return check_from(
        actor,
        request.email_from,
        policy,
        grants,
        request.from_trusted,
        server_id,
        is_claimed,
        request.from_named_author,
    )
