# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from datetime import timedelta

from odoo import api, fields, models

from ..tools.smtp_errors import CATEGORIES, classify
from . import params

CATEGORY_SELECTION = [
    ("auth", "Authentication failed"),
    ("oauth_revoked", "Sign-in revoked or expired (OAuth)"),
    ("connection_refused", "Connection refused"),
    ("dns", "DNS failure"),
    ("timeout", "Timeout"),
    ("tls", "TLS failure"),
    ("sender_rejected", "Sender rejected"),
    ("send_as_denied", "Send-As denied"),
    ("recipient_rejected", "Recipient rejected"),
    ("too_large", "Message too large"),
    ("temporary", "Temporary or rate-limited"),
    ("config", "Configuration error"),
    ("invalid_message", "Invalid message"),
    ("other", "Other"),
]
assert [code for code, _label in CATEGORY_SELECTION] == list(CATEGORIES)

SOURCE_SELECTION = [
    ("queue", "Queue"),
    ("send_now", "Send now"),
    ("test", "Test email"),
    ("direct", "Direct"),
]
RETENTION_PARAM = "smtp_routing.log_retention_days"
DEFAULT_RETENTION_DAYS = 90
BUFFER_KEY = "smtp_routing.delivery.log"
MAX_RECIPIENTS_TEXT = 500


class SmtpRoutingDeliveryLog(models.Model):
    _name = "smtp_routing.delivery.log"
    _description = "SMTP Delivery Attempt"
    _order = "date desc, id desc"
    _rec_name = "summary"

    date = fields.Datetime(required=True, default=fields.Datetime.now, index=True, readonly=True)
    server_id = fields.Many2one("ir.mail_server", string="Server", index=True, ondelete="set null", readonly=True)
    server_name = fields.Char(string="Server Name", readonly=True, help="Kept when the server is deleted.")
    mail_id = fields.Many2one("mail.mail", string="Mail", index="btree_not_null", ondelete="set null", readonly=True)
    message_id = fields.Char(string="Message-Id", readonly=True, index="btree_not_null")
    subject = fields.Char(readonly=True)
    email_from = fields.Char(string="From", readonly=True)
    recipients = fields.Char(readonly=True)
    recipient_count = fields.Integer(string="Recipient Count", readonly=True, aggregator="sum")
    source = fields.Selection(SOURCE_SELECTION, required=True, default="direct", readonly=True)
    stage = fields.Selection(
        [("policy", "Checked before sending"), ("connect", "Connect"), ("send", "Send")],
        required=True,
        default="send",
        readonly=True,
        help="Checked before sending: refused by a rule (Send-As). Connect: the connection or login failed before "
        "any message. Send: one message's SMTP transaction.",
    )
    outcome = fields.Selection([("sent", "Sent"), ("failed", "Failed")], required=True, readonly=True, index=True)
    category = fields.Selection(CATEGORY_SELECTION, readonly=True, index=True)
    smtp_code = fields.Integer(string="SMTP Code", readonly=True, aggregator=None)
    enhanced_status = fields.Char(string="Enhanced Status", readonly=True)
    reply = fields.Text(string="Server Reply", readonly=True)
    duration_ms = fields.Integer(string="Duration (ms)", readonly=True, aggregator="avg")
    summary = fields.Char(compute="_compute_summary")

    @api.depends("outcome", "category", "smtp_code", "enhanced_status", "reply", "server_name")
    def _compute_summary(self):
        labels = dict(self._fields["category"]._description_selection(self.env))
        for log in self:
            if log.outcome == "sent":
                log.summary = self.env._("Sent via %(server)s", server=log.server_name or "?")
                continue
            code = " ".join(str(part) for part in (log.smtp_code or "", log.enhanced_status or "") if part)
            log.summary = " - ".join(
                part for part in (labels.get(log.category, log.category or ""), code, log.reply or "") if part
            )

    # -- recording (called while sending; buffered, written in one INSERT) -------------------
    @api.model
    def _smtp_routing_record(
        self,
        *,
        server_id=None,
        error=None,
        duration=0.0,
        stage="send",
        mail_id=False,
        message_id=None,
        subject=None,
        email_from=None,
        recipients=(),
        category=None,
        reply=None,
    ):
        """Buffer one attempt; rows are inserted together before the transaction commits.

        Also flushed explicitly at the end of a ``mail.mail.send()`` run (see
        ``_smtp_routing_flush``) so a batch costs one INSERT, not one per mail.
        """
        recipients = list(recipients or ())
        vals = {
            "date": fields.Datetime.now(),
            "server_id": server_id or False,
            "mail_id": mail_id or False,
            "message_id": message_id or False,
            "subject": (str(subject)[:250] if subject else False),
            "email_from": (str(email_from)[:250] if email_from else False),
            "recipients": ", ".join(recipients)[:MAX_RECIPIENTS_TEXT] or False,
            "recipient_count": len(recipients),
            "source": self.env.context.get("smtp_routing_source") or "direct",
            "stage": stage,
            "duration_ms": int(duration * 1000),
            "outcome": "sent" if error is None and not category else "failed",
        }
        if category:  # refused by a rule before any SMTP attempt
            vals.update(category=category, reply=reply or False)
        if error is not None:
            outcome = classify(error)
            vals.update(
                category=outcome.category,
                smtp_code=outcome.smtp_code or False,
                enhanced_status=outcome.enhanced_status or False,
                reply=outcome.text or False,
            )
        cr = self.env.cr
        buffer = cr.precommit.data.setdefault(BUFFER_KEY, [])
        if not buffer:
            cr.precommit.add(self._smtp_routing_flush)
        buffer.append(vals)

    @api.model
    def _smtp_routing_flush(self):
        """Insert the buffered attempts (one INSERT), dropping links to rows deleted meanwhile."""
        buffer = self.env.cr.precommit.data.pop(BUFFER_KEY, [])
        if not buffer:
            return self.browse()
        Server = self.env["ir.mail_server"].sudo().with_context(active_test=False)
        servers = Server.browse({vals["server_id"] for vals in buffer if vals["server_id"]}).exists()
        names = {server.id: server.name for server in servers}
        mail_ids = {vals["mail_id"] for vals in buffer if vals["mail_id"]}
        existing_mails = set(self.env["mail.mail"].sudo().browse(mail_ids).exists().ids) if mail_ids else set()
        for vals in buffer:
            vals["server_name"] = names.get(vals["server_id"], False)
            if vals["server_id"] not in names:
                vals["server_id"] = False
            if vals["mail_id"] not in existing_mails:
                vals["mail_id"] = False
        return self.sudo().create(buffer)

    # -- housekeeping ---------------------------------------------------------------------
    @api.autovacuum
    def _gc_delivery_log(self):
        """Remove attempts older than ``smtp_routing.log_retention_days`` (90; 0 or less keeps all)."""
        days = params.integer(self.env, RETENTION_PARAM, DEFAULT_RETENTION_DAYS)
        if days <= 0:
            return 0
        cutoff = fields.Datetime.now() - timedelta(days=days)
        self.env.cr.execute("DELETE FROM smtp_routing_delivery_log WHERE date < %s", [cutoff])
        return self.env.cr.rowcount
