# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models

from . import send_as_trust
from .mail_queue import QueueRun
from .smtp_routing_send_as import Judge


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _get_message_create_valid_field_names(self):
        """Let message_post() (and the composer in comment mode) carry the route and purpose."""
        return super()._get_message_create_valid_field_names() | {"smtp_routing_route_id", "smtp_routing_purpose"}

    def message_post(self, **kwargs):
        """Posted as asked; its emails are judged for the user who posts (not the author the call names)."""
        with self._smtp_routing_named_author(kwargs):
            message = super().message_post(**kwargs)
        self._smtp_routing_judge_emails(message)
        return message

    def message_notify(self, **kwargs):
        with self._smtp_routing_named_author(kwargs):
            message = super().message_notify(**kwargs)
        self._smtp_routing_judge_emails(message)
        return message

    def _smtp_routing_named_author(self, kwargs):
        """An author named without a From: Odoo sends from the author's address ("post on behalf of").
        Noted for this call, so the Send-As check can tell it from a From the caller typed."""
        author_id = kwargs.get("author_id")
        email_from = None
        if author_id and isinstance(author_id, int) and kwargs.get("email_from") is None:
            email_from = self.env["res.partner"].sudo().browse(author_id).exists().email_formatted
        return send_as_trust.named_author(self.env, email_from)

    def _smtp_routing_judge_emails(self, message):
        """Fail at once, with the reason, the emails of a message whose From, server, route or company its
        sender may not use: the message stays in the chatter with its failed notifications, nothing leaves.

        Emails sent during the post were already judged by the queue; this catches those waiting for the
        post-commit send or the queue cron, so the refusal shows now.
        """
        if not message:
            return
        mails = (
            self.env["mail.mail"].sudo().search([("mail_message_id", "in", message.ids), ("state", "=", "outgoing")])
        )
        if not mails:
            return
        judge = Judge(self.env)
        first = mails[0]
        user = first._smtp_routing_acting_user()
        if judge.exempt(user):
            return
        request = first._smtp_routing_send_as_request(judge)
        problem = judge.problem(user, request)
        if problem:
            QueueRun(mails, auto_commit=False).refuse(problem)
