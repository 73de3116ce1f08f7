# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import UserError
from odoo.tools import email_normalize

from ..sending import explain
from ..sending.run import QueueRun
from ..tools import planning, routing, send_as
from ..tools.unsubscribe import list_unsubscribe_headers
from .smtp_routing_send_as import Judge


class MailMail(models.Model):
    _inherit = "mail.mail"

    smtp_routing_server_id = fields.Many2one(
        "ir.mail_server",
        string="Sent Through",
        readonly=True,
        index="btree_not_null",
        copy=False,
        help="The server that carried this mail, or, while it waits, the server it is planned for.",
    )
    smtp_routing_deferred_reason = fields.Char(
        string="Deferred Because",
        compute="_compute_smtp_routing_deferred_reason",
        search="_search_smtp_routing_deferred_reason",
        help="Until when this mail waits, and why, in your language.",
    )
    smtp_routing_deferral = fields.Json(
        string="Deferral",
        readonly=True,
        copy=False,
        help='Until when the queue put this mail off and why, as codes: {"slot": UTC, "reason": [code, params]}.',
    )
    smtp_routing_deferred_reason_text = fields.Char(
        string="Deferred Because (as written)",
        readonly=True,
        copy=False,
        help="Why mails deferred before deferrals were stored as codes wait, as it was written then.",
    )
    smtp_routing_plan = fields.Json(
        string="Routing Plan",
        readonly=True,
        copy=False,
        help="The planner's decision for this mail and what happened after, as codes (tools/planning).",
    )
    smtp_routing_explanation = fields.Text(
        string="Routing",
        compute="_compute_smtp_routing_explanation",
        help="Which route and server carried this mail, and why, in your language.",
    )
    smtp_routing_explanation_text = fields.Text(
        string="Routing (as written)",
        readonly=True,
        copy=False,
        help="The routing text of mails sent before routing plans were stored as codes.",
    )
    smtp_routing_lease_until = fields.Datetime(
        string="Claimed Until",
        readonly=True,
        copy=False,
        help="A sending worker holds this mail until then; after a crash it becomes due again.",
    )
    smtp_routing_lease_pid = fields.Integer(
        string="Claimed By Backend",
        readonly=True,
        copy=False,
        help="PostgreSQL backend of the worker that holds this mail: once that backend is gone, the claim is free.",
    )
    smtp_routing_progress = fields.Json(
        string="Delivery Progress",
        readonly=True,
        copy=False,
        help="Which recipient messages went, failed, or wait for a retry (and when), so none goes twice.",
    )

    @api.depends("smtp_routing_plan", "smtp_routing_explanation_text")
    @api.depends_context("lang", "uid")  # dates in the reader's time zone
    def _compute_smtp_routing_explanation(self):
        """The stored plan's codes in the reader's language; older mails keep the text they were given."""
        for mail in self:
            plan = mail.smtp_routing_plan
            mail.smtp_routing_explanation = (
                explain.stored_text(self.env, plan) if plan else mail.smtp_routing_explanation_text or False
            )

    @api.depends("smtp_routing_deferral", "smtp_routing_deferred_reason_text")
    @api.depends_context("lang", "uid")  # dates in the reader's time zone
    def _compute_smtp_routing_deferred_reason(self):
        """The stored deferral's codes in the reader's language and time zone; older mails keep their text."""
        for mail in self:
            deferral = mail.smtp_routing_deferral
            written = mail.smtp_routing_deferred_reason_text or False
            mail.smtp_routing_deferred_reason = explain.deferral_text(self.env, deferral) if deferral else written

    def _search_smtp_routing_deferred_reason(self, operator, value):
        if operator not in ("=", "!=") or value not in (False, None):
            raise UserError(self.env._("Deferred Because can only be searched for being set or not."))
        deferred = ["|", ("smtp_routing_deferral", "!=", False), ("smtp_routing_deferred_reason_text", "!=", False)]
        return deferred if operator == "!=" else ["!", *deferred]

    # -- routing facts ------------------------------------------------------------------------
    def _smtp_routing_author_user(self):
        self.ensure_one()
        return self.author_id.user_ids.filtered(lambda u: not u.share)[:1]

    def _smtp_routing_acting_user(self):
        """The user who created the message (or chose its From, server, route or company): Send-As is theirs.

        Stamped from env.uid when the message was written (see mail.message); mail queued before
        smtp_routing knew it falls back on the message's creator.
        """
        self.ensure_one()
        message = self.mail_message_id.sudo()
        return message.smtp_routing_acting_uid or message.create_uid

    def _smtp_routing_writer(self):
        """The internal user who wrote the message: who posted it, or, for code posting as the superuser,
        the internal user it names as author."""
        self.ensure_one()
        user = self._smtp_routing_acting_user()
        if user and user.id != SUPERUSER_ID:
            return user if not user.share else self.env["res.users"]
        return self._smtp_routing_author_user()

    def _smtp_routing_own_server(self):
        """The acting user's server from their preferences, for their personal mail."""
        self.ensure_one()
        return self._smtp_routing_own_server_of(
            self._smtp_routing_acting_user(), self._smtp_routing_purpose(), self.email_from
        )

    @api.model
    def _smtp_routing_own_server_of(self, user, purpose, email_from):
        """A fact for the planner: ``user``'s server from their preferences, for their personal mail; a
        personal server (their own login) only for mail from the address an administrator approved for them.
        Used by the queue and by *Which Server?*."""
        user = user.sudo()
        server = user.smtp_routing_server_id
        if not server or user.share or purpose != "personal":
            return self.env["ir.mail_server"]
        if server.smtp_routing_owner_id:
            approved = send_as.normalize(user.smtp_routing_approved_email)
            if server.smtp_routing_owner_id != user or not approved or send_as.normalize(email_from) != approved:
                return self.env["ir.mail_server"]
        return server

    def _smtp_routing_send_as_request(self, judge):
        """What this mail asks for (From, forced server, route, company) and what a template or mailing chose."""
        self.ensure_one()
        user = self._smtp_routing_acting_user()
        from_trusted, server_trusted = self.smtp_routing_from_trusted, self.smtp_routing_server_trusted
        if "mailing_id" in self._fields and self.mailing_id:
            mailing_from, mailing_server = judge.mailing_trusted(
                user, self.mailing_id, self.email_from, self.mail_server_id
            )
            from_trusted, server_trusted = from_trusted or mailing_from, server_trusted or mailing_server
        actor = judge.actor(user)
        author_users = self.author_id.sudo().user_ids.filtered(lambda u: not u.share)
        named_author = bool(
            self.smtp_routing_from_author
            and any(set(author.company_ids.ids) & actor.company_ids for author in author_users)
            and send_as.normalize(self.email_from) == send_as.normalize(self.author_id.sudo().email)
        )
        company = self.record_company_id
        document_company = None
        if company and company.id not in actor.company_ids and self.model and self.res_id:
            record = self.env[self.model].sudo().browse(self.res_id).exists()
            if record and hasattr(record, "_mail_get_companies"):
                document_company = record._mail_get_companies()[record.id].id
        return send_as.MailRequest(
            email_from=self.email_from,
            from_trusted=from_trusted,
            from_named_author=named_author,
            server=judge.server_facts(self.mail_server_id),
            server_trusted=server_trusted,
            route=judge.route_facts(self.smtp_routing_route_id),
            route_trusted=self.smtp_routing_route_trusted,
            company_id=company.id or None,
            document_company_id=document_company,
        )

    def _smtp_routing_purpose(self):
        """Stamped purpose, else: mass mailing -> bulk; an internal user's comment -> personal; else transactional."""
        self.ensure_one()
        if self.smtp_routing_purpose:
            return self.smtp_routing_purpose
        if "mailing_id" in self._fields and self.mailing_id:
            return "bulk"
        if self.message_type != "comment":
            return "transactional"
        # the id from the cached xmlid table: env.ref() would query the subtype's existence for every mail
        comment_id = self.env["ir.model.data"]._xmlid_to_res_id("mail.mt_comment", raise_if_not_found=False)
        if self._smtp_routing_writer() and (not self.subtype_id or self.subtype_id.id == comment_id):
            return "personal"
        return "transactional"

    def _smtp_routing_lang(self):
        """The recipients' language; with several, the most common (ties: the first recipient's)."""
        self.ensure_one()
        langs = self.recipient_ids.mapped("lang")
        if not langs:
            emails = [email_normalize(e) for e in (self.email_to or "").split(",") + (self.email_cc or "").split(",")]
            emails = [e for e in emails if e]
            if emails:
                partners = self.env["res.partner"].sudo().search([("email_normalized", "in", emails)], limit=20)
                langs = partners.mapped("lang")
        return routing.majority_language(langs)

    def _smtp_routing_company(self):
        """The company the mail is sent for: its document's, else its author's, else the current one."""
        self.ensure_one()
        return self.record_company_id or self._smtp_routing_author_user().company_id or self.env.company

    def _smtp_routing_facts(self, lang=True):
        """The facts the planner decides on (``lang=False``: no route looks at the language, skip it)."""
        self.ensure_one()
        user = self._smtp_routing_acting_user().sudo()
        forced_by = "template or composer" if self.smtp_routing_route_id else ""
        return planning.MailFacts(
            purpose=self._smtp_routing_purpose(),
            email_from=email_normalize(self.email_from or "") or "",
            lang=self._smtp_routing_lang() if lang else None,
            company_id=self._smtp_routing_company().id,
            model=self.model or None,
            forced_route_id=self.smtp_routing_route_id.id or None,
            forced_by=forced_by,
            author_server_id=self._smtp_routing_own_server().id or None,
            author_email=send_as.normalize(user.smtp_routing_approved_email) or None,
            acting_user_id=user.id or None,
        )

    @api.model
    def _smtp_routing_send_as_problem(self, user, email_from, alias_domain=False, server=None):
        """None when ``user`` may send as ``email_from`` (through ``server``, when named), else what to do."""
        return self._smtp_routing_send_as_verdict(user, email_from, server=server)[1]

    @api.model
    def _smtp_routing_send_as_verdict(self, user, email_from, server=None):
        """(verdict, None or what to do): the verdict names the servers a limited permission allows."""
        judge = Judge(self.env)
        verdict = send_as.check_from(
            judge.actor(user),
            email_from,
            judge.policy(),
            judge.grants(user),
            server_id=server.id if server else None,
            is_claimed=judge.is_claimed(user) if user else None,
        )
        return verdict, None if verdict.allowed else judge.refusal(user, verdict)

    def write(self, vals):
        if vals.get("state") == "outgoing" and "smtp_routing_progress" not in vals:
            self._smtp_routing_restart_progress()
        return super().write(vals)

    def _smtp_routing_restart_progress(self):
        """A mail queued again after it ended: a retry after a failure keeps only the recipients that got it
        (never sent twice); sending again a sent mail starts from scratch, as stock Odoo does."""
        for mail in self.filtered(lambda m: m.state != "outgoing" and m.smtp_routing_progress):
            kept = [key for key in mail.smtp_routing_progress.get("sent") or [] if mail.state == "exception"]
            mail.smtp_routing_progress = {"sent": kept} if kept else False

    @api.model
    def process_email_queue(self, ids=None, batch_size=1000):
        return super(MailMail, self.with_context(smtp_routing_source="queue")).process_email_queue(
            ids=ids, batch_size=batch_size
        )

    def send(self, auto_commit=False, raise_exception=False, post_send_callback=None):
        source = self.env.context.get("smtp_routing_source") or "send_now"
        mails = self.with_context(smtp_routing_source=source)
        result = QueueRun(
            mails, auto_commit=auto_commit, raise_exception=raise_exception, post_send_callback=post_send_callback
        ).execute()
        # One INSERT for the attempts of this run; after an exception the buffer waits
        # for the commit (or goes with the rollback, like the mail states it describes).
        self.env["smtp_routing.delivery.log"]._smtp_routing_flush()
        return result

    def _prepare_outgoing_list(self, mail_server=False, recipients_follower_status=None):
        """Bulk mail gets a one-click unsubscribe link (RFC 8058) when it has none (mass_mailing's is kept)."""
        emails = super()._prepare_outgoing_list(
            mail_server=mail_server, recipients_follower_status=recipients_follower_status
        )
        if self._smtp_routing_purpose() == "bulk":
            for outgoing in emails:
                outgoing["headers"] = dict(outgoing.get("headers") or {})  # each email its own (Odoo shares one)
                self._smtp_routing_add_unsubscribe(outgoing)
        return emails

    def _smtp_routing_add_unsubscribe(self, outgoing):
        """List-Unsubscribe and List-Unsubscribe-Post for an email to one address, unless it has them."""
        headers = outgoing["headers"]
        if any(name.lower() == "list-unsubscribe" for name in headers):
            return
        addresses = {email_normalize(address) for address in outgoing.get("email_to") or []}
        if len(addresses) != 1 or None in addresses:
            return  # a link must name the one person who clicks it
        url = self.env["mail.blacklist"]._smtp_routing_unsubscribe_url(addresses.pop(), self.get_base_url())
        headers.update(list_unsubscribe_headers(url))
