# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models

from .ir_mail_server import MAIL_ID_HEADER
from .mail_queue import QueueRun


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
    smtp_routing_lease_until = fields.Datetime(
        string="Claimed Until",
        readonly=True,
        copy=False,
        help="A sending worker holds this mail until then; after a crash it becomes due again.",
    )

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
        """Tag each outgoing email with its mail.mail id for the delivery log (removed before sending)."""
        emails = super()._prepare_outgoing_list(
            mail_server=mail_server, recipients_follower_status=recipients_follower_status
        )
        for outgoing in emails:
            outgoing["headers"] = {**(outgoing.get("headers") or {}), MAIL_ID_HEADER: str(self.id)}
        return emails
