# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Send-As permissions, and the adapter that feeds Odoo records to ``tools.send_as``.

Every caller (the queue, the composer, message_post, "Which Server?") asks one
:class:`Judge`, which turns records into plain values, asks
:func:`..tools.send_as.check_mail` and words the refusal.
"""

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import email_normalize

from ..tools import send_as
from . import params

ENFORCE_SEND_AS = "smtp_routing.enforce_send_as"
SEND_AS_COMPANY_EMAIL = "smtp_routing.send_as_company_email"
SEND_AS_STRICT = "smtp_routing.send_as_strict"
MAILING_GROUP = "mass_mailing.group_mass_mailing_user"


class SmtpRoutingSendAs(models.Model):
    """A user may send as an address (a shared mailbox like support@) or a whole domain."""

    _name = "smtp_routing.send_as"
    _description = "Send-As Permission"
    _order = "address"

    address = fields.Char(required=True, help="An address (support@practice.example) or a domain (practice.example).")
    user_ids = fields.Many2many("res.users", string="Users", domain=[("share", "=", False)])
    server_id = fields.Many2one(
        "ir.mail_server", string="Only Through", ondelete="cascade", help="Leave empty to allow it through any server."
    )
    active = fields.Boolean(default=True)
    note = fields.Char()

    @api.constrains("address")
    def _check_address(self):
        for grant in self:
            value = (grant.address or "").strip().lower()
            is_domain = "@" not in value and "." in value and " " not in value
            if not (email_normalize(value, strict=True) or is_domain) or any(c in value for c in "\r\n"):
                raise ValidationError(
                    self.env._(
                        "%(value)s is neither an email address nor a domain (e.g. support@practice.example or "
                        "practice.example).",
                        value=grant.address,
                    )
                )


class Judge:
    """Send-As decisions for one run (a queue run, a composer, a post): facts are read once per user."""

    def __init__(self, env):
        self.env = env
        self.sudo_env = env(su=True)
        self._policy = None
        self._actors = {}
        self._grants = {}

    # -- facts ------------------------------------------------------------------------------------
    def policy(self):
        if self._policy is None:
            env = self.sudo_env
            addresses = {env["ir.mail_server"]._get_default_from_address()}
            # alias domains are configuration (one per mail domain the database serves): unbounded on purpose
            addresses.update(env["mail.alias.domain"].search([]).mapped("default_from_email"))
            self._policy = send_as.Policy(
                enforce=params.flag(env, ENFORCE_SEND_AS, default=True),
                company_email=params.flag(env, SEND_AS_COMPANY_EMAIL, default=True),
                strict=params.flag(env, SEND_AS_STRICT, default=False),
                system_addresses=frozenset(filter(None, map(send_as.normalize, addresses))),
            )
        return self._policy

    def actor(self, user):
        """The acting user as plain facts; no user (a creator unknown to Odoo) keeps Odoo's behaviour."""
        user = user.sudo() if user else user
        key = user.id if user else None
        if key not in self._actors:
            if not user or user.id == SUPERUSER_ID:
                self._actors[key] = send_as.Actor(user_id=key, name=user.name if user else "", system=True)
            else:
                companies = user.company_ids
                own = self.sudo_env["ir.mail_server"].with_context(active_test=False)
                self._actors[key] = send_as.Actor(
                    user_id=user.id,
                    name=user.name,
                    share=user.share,
                    admin=user.has_group("base.group_system"),
                    approved_email=send_as.normalize(user.smtp_routing_approved_email),
                    current_email=send_as.normalize(user.email),
                    company_ids=frozenset(companies.ids),
                    company_emails=frozenset(filter(None, map(send_as.normalize, companies.mapped("email")))),
                    own_server_ids=frozenset(own.search([("smtp_routing_owner_id", "=", user.id)]).ids),
                )
        return self._actors[key]

    def exempt(self, user):
        """Code running as the superuser, and portal or public users, keep Odoo's behaviour."""
        actor = self.actor(user)
        return actor.system or actor.share

    def grants(self, user):
        if not user:
            return ()
        if user.id not in self._grants:
            records = self.sudo_env["smtp_routing.send_as"].search([("user_ids", "in", user.ids)])
            self._grants[user.id] = tuple(
                send_as.Grant(grant.address.strip().lower(), frozenset(grant.server_id.ids)) for grant in records
            )
        return self._grants[user.id]

    def is_claimed(self, user):
        """Does an address belong to someone or something else than ``user``?"""

        def claimed(address):
            env = self.sudo_env
            domain = address.rpartition("@")[2]
            users = env["res.users"].with_context(active_test=False)
            if users.search_count(
                [
                    ("id", "!=", user.id),
                    "|",
                    ("smtp_routing_approved_email", "=", address),
                    ("email_normalized", "=", address),
                ],
                limit=1,
            ):
                return True
            # companies, alias domains and mail servers are configuration (a handful of rows, not data that grows
            # with use): read whole, as their addresses are compared normalized, which SQL cannot do here
            if address in filter(None, map(send_as.normalize, env["res.company"].search([]).mapped("email"))):
                return True
            # grants can grow: only those whose address contains the domain can equal the address or the domain
            grants = env["smtp_routing.send_as"].with_context(active_test=False).search([("address", "ilike", domain)])
            if any(grant.address.strip().lower() in (address, domain) for grant in grants):
                return True
            alias_domains = env["mail.alias.domain"].search([])
            system = alias_domains.mapped("default_from_email") + alias_domains.mapped("catchall_email")
            system += alias_domains.mapped("bounce_email")
            system += env["ir.mail_server"].with_context(active_test=False).search([]).mapped("smtp_routing_from_email")
            if address in filter(None, map(send_as.normalize, system)):
                return True
            return bool(env["mail.alias"].search_count([("alias_full_name", "=", address)], limit=1))

        return claimed

    @staticmethod
    def server_facts(server):
        if not server:
            return None
        server = server.sudo()
        return send_as.ServerFacts(
            id=server.id,
            name=server.name,
            owner_id=server.smtp_routing_owner_id.id or None,
            offered=server.smtp_routing_user_selectable,
            company_id=server.company_id.id or None,
        )

    @staticmethod
    def route_facts(route):
        if not route:
            return None
        route = route.sudo()
        return send_as.RouteFacts(
            id=route.id, name=route.name, selectable=route.allow_in_composer, company_id=route.company_id.id or None
        )

    def mailing_trusted(self, user, mailing, email_from, server):
        """(From trusted, server trusted): outside strict mode, Email Marketing users choose their mailings'
        From and server, as in Odoo."""
        if not mailing or not user or self.policy().strict:
            return False, False
        group = self.env.ref(MAILING_GROUP, raise_if_not_found=False)
        if not group or group not in user.sudo().groups_id:
            return False, False
        mailing = mailing.sudo()
        same_from = send_as.normalize(email_from) == send_as.normalize(mailing.email_from) or (
            (email_from or "").strip() == (mailing.email_from or "").strip()
        )
        return same_from, bool(server) and server == mailing.mail_server_id

    # -- decisions ---------------------------------------------------------------------------------
    def check(self, user, request):
        """The verdict for ``user`` asking for ``request`` (a ``send_as.MailRequest``)."""
        return send_as.check_mail(
            self.actor(user), request, self.policy(), self.grants(user), self.is_claimed(user) if user else None
        )

    def problem(self, user, request):
        """None when allowed, else the sentence that says who may not send as what, and what to do."""
        verdict = self.check(user, request)
        return None if verdict.allowed else self.refusal(user, verdict, request)

    def refusal(self, user, verdict, request=None):
        _ = self.env._
        name = user.sudo().name if user else "?"
        code = verdict.code
        if code == "multiple":
            return _(
                "%(user)s may send from one address only, not “%(value)s”: put a single address in From.",
                user=name,
                value=verdict.address,
            )
        if code == "unparsable":
            return _(
                "“%(value)s” is not an address %(user)s can send from: put one address like name@example.com in From.",
                user=name,
                value=verdict.address,
            )
        if code == "unapproved":
            approved = user.sudo().smtp_routing_approved_email if user else False
            if approved:
                return _(
                    "%(address)s is not the address an administrator approved for %(user)s (%(approved)s). Send "
                    "from %(approved)s, or ask an administrator to approve the new address (in your user, field "
                    "Approved Sending Address).",
                    address=verdict.address,
                    user=name,
                    approved=approved,
                )
            return _(
                "%(address)s is not the address an administrator approved for %(user)s, who has none yet: ask an "
                "administrator to approve it (in your user, field Approved Sending Address).",
                address=verdict.address,
                user=name,
            )
        if code == "wrong_server":
            servers = self.sudo_env["ir.mail_server"].browse(sorted(verdict.server_ids))
            return _(
                "%(user)s may send as %(address)s only through %(servers)s.",
                user=name,
                address=verdict.address,
                servers=", ".join(servers.mapped("name")),
            )
        if code == "personal_server":
            return _(
                "%(user)s may not send through %(server)s: it is another user's personal server. Leave the server "
                "empty to let the routing decide.",
                user=name,
                server=verdict.subject,
            )
        if code == "personal_server_from":
            approved = user.sudo().smtp_routing_approved_email if user else False
            return _(
                "%(server)s, %(user)s's personal server, sends from %(approved)s only, not %(address)s. Leave the "
                "server empty to let the routing decide.",
                server=verdict.subject,
                user=name,
                approved=approved or "?",
                address=verdict.address,
            )
        if code == "not_offered":
            return _(
                "%(user)s may not send through %(server)s: it is not offered to users. Leave the server empty to let "
                "the routing decide, or ask an administrator to offer it (Available to Users).",
                user=name,
                server=verdict.subject,
            )
        if code == "server_other_company":
            return _(
                "%(user)s may not send through %(server)s: it belongs to another company. Leave the server empty to "
                "let the routing decide.",
                user=name,
                server=verdict.subject,
            )
        if code == "route_not_selectable":
            return _(
                "%(user)s may not choose the route %(route)s: it is not selectable when writing. Leave the route "
                "empty to let the routing rules decide, or ask an administrator to mark it Selectable When Writing.",
                user=name,
                route=verdict.subject,
            )
        if code == "route_other_company":
            return _(
                "%(user)s may not choose the route %(route)s: it belongs to another company. Leave the route empty to "
                "let the routing rules decide.",
                user=name,
                route=verdict.subject,
            )
        if code == "other_company":
            company = self.sudo_env["res.company"].browse(request.company_id) if request else None
            return _(
                "%(user)s may not send mail for %(company)s: it is not one of their companies. Send it from a "
                "document of one of their companies, or ask an administrator for access to %(company)s.",
                user=name,
                company=company.name if company else "?",
            )
        if user and user.sudo().has_group("base.group_system"):
            # a path an administrator can follow without developer mode (the Technical menu needs it)
            return _(
                "%(user)s may not send as %(address)s. Send from your own address, or grant a Send-As permission: "
                "Settings, section Outgoing Mail Routing, Send-As Permissions.",
                user=name,
                address=verdict.address,
            )
        return _(
            "%(user)s may not send as %(address)s. Send from your own address, or ask an administrator to give "
            "you a Send-As permission for %(address)s.",
            user=name,
            address=verdict.address,
        )
