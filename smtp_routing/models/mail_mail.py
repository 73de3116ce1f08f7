# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.tools import email_normalize

from ..tools import routing
from ..tools.unsubscribe import list_unsubscribe_headers
from . import params
from .ir_mail_server import MAIL_ID_HEADER
from .mail_queue import QueueRun

ENFORCE_SEND_AS = "smtp_routing.enforce_send_as"
SEND_AS_COMPANY_EMAIL = "smtp_routing.send_as_company_email"


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
    smtp_routing_deferred_reason = fields.Char(string="Deferred Because", readonly=True, copy=False)
    smtp_routing_explanation = fields.Text(
        string="Routing", readonly=True, copy=False, help="Which route and server carried this mail, and why."
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

    # -- routing facts ------------------------------------------------------------------------
    def _smtp_routing_author_user(self):
        self.ensure_one()
        return self.author_id.user_ids.filtered(lambda u: not u.share)[:1]

    def _smtp_routing_purpose(self):
        """Stamped purpose, else: mass mailing -> bulk; an internal user's comment -> personal; else transactional."""
        self.ensure_one()
        if self.smtp_routing_purpose:
            return self.smtp_routing_purpose
        if "mailing_id" in self._fields and self.mailing_id:
            return "bulk"
        comment = self.env.ref("mail.mt_comment", raise_if_not_found=False)
        if (
            self.message_type == "comment"
            and self._smtp_routing_author_user()
            and (not self.subtype_id or self.subtype_id == comment)
        ):
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

    def _smtp_routing_facts(self):
        self.ensure_one()
        author = self._smtp_routing_author_user()
        purpose = self._smtp_routing_purpose()
        forced_by = "template or composer" if self.smtp_routing_route_id else ""
        return routing.MailFacts(
            purpose=purpose,
            email_from=email_normalize(self.email_from or "") or "",
            lang=self._smtp_routing_lang(),
            company_id=self._smtp_routing_company().id,
            model=self.model or None,
            forced_route_id=self.smtp_routing_route_id.id or None,
            forced_by=forced_by,
            author_server_id=(author.smtp_routing_server_id.id or None) if purpose == "personal" else None,
            author_email=email_normalize(author.email or "") or None,
        )

    @api.model
    def _smtp_routing_send_as_problem(self, user, email_from, alias_domain=False, server=None):
        """None when ``user`` may send as ``email_from``, else the message that says what to do."""
        if not params.flag(self.env, ENFORCE_SEND_AS, default=True):
            return None
        address = email_normalize(email_from or "")
        if not address or not user or user.share:
            return None
        allowed = {email_normalize(user.email or "")}
        IrMailServer = self.env["ir.mail_server"]
        if alias_domain:
            allowed.add(email_normalize(alias_domain.default_from_email or ""))
        allowed.add(email_normalize(IrMailServer._get_default_from_address() or ""))
        if params.flag(self.env, SEND_AS_COMPANY_EMAIL, default=True):
            allowed.update(email_normalize(company.email or "") for company in user.company_ids)
        if address in allowed:
            return None
        granted = self.env["smtp_routing.send_as"]._smtp_routing_granted_servers(user, address)
        if granted is not None and (not granted or server is None or server in granted):
            return None  # granted through any server, or through some and no server named yet
        if granted:
            return self.env._(
                "%(user)s may send as %(address)s only through %(servers)s.",
                user=user.name,
                address=address,
                servers=", ".join(granted.sudo().mapped("name")),
            )
        return self.env._(
            "%(user)s may not send as %(address)s. Send from your own address, or ask an administrator for a "
            "Send-As permission (Settings > Technical > Email > Send-As Permissions).",
            user=user.name,
            address=address,
        )

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
        """Tag each outgoing email with its mail.mail id for the delivery log (removed before sending).

        Bulk mail also gets a one-click unsubscribe link (RFC 8058) when it has none (mass_mailing's is kept).
        """
        emails = super()._prepare_outgoing_list(
            mail_server=mail_server, recipients_follower_status=recipients_follower_status
        )
        bulk = self._smtp_routing_purpose() == "bulk"
        for outgoing in emails:
            outgoing["headers"] = {**(outgoing.get("headers") or {}), MAIL_ID_HEADER: str(self.id)}
            if bulk:
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
