# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging

from odoo import api, models

from ..sending.run import QueueRun
from ..tools import bounces
from . import send_as_trust
from .smtp_routing_send_as import Judge

_logger = logging.getLogger(__name__)

# Context key set while Odoo handles a bounce: the class that decides whether it counts (see tools.bounces).
BOUNCE_CLASS_KEY = "smtp_routing_bounce_class"
# headers only delivery reports carry
BOUNCE_HEADERS = ("X-Failed-Recipients", "X-MS-Exchange-Message-Is-Ndr")


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _get_message_create_valid_field_names(self):
        """Let message_post() (and the composer in comment mode) carry the route and purpose."""
        return super()._get_message_create_valid_field_names() | {"smtp_routing_route_id", "smtp_routing_purpose"}

    @api.model
    def _detect_is_bounce(self, message, message_dict):
        """Also a bounce: a report that says so in its headers, whatever address it was sent to (the catch-all).

        ``X-Failed-Recipients`` (Exim, Gmail) and ``X-MS-Exchange-Message-Is-Ndr`` (Exchange, Microsoft 365).
        """
        if super()._detect_is_bounce(message, message_dict):
            return True
        return any(message.get(header) is not None for header in BOUNCE_HEADERS)

    @api.model
    def message_route(self, message, message_dict, model=None, thread_id=None, custom_values=None):
        """Bounces: record them in the delivery history, and let Odoo count only those against the address.

        Odoo's own handling runs as before (bounce counter, failed notification, mass mailing's traces and
        blacklist) with the bounce's class in the context: a soft or policy bounce leaves the counters that lead
        to the blacklist unchanged (``mail.thread.blacklist``, ``mail.blacklist`` and the traces below).
        """
        if not message_dict.get("is_bounce"):
            return super().message_route(
                message, message_dict, model=model, thread_id=thread_id, custom_values=custom_values
            )
        report = bounces.parse(message)
        Log = self.env["smtp_routing.delivery.log"].sudo()
        self._smtp_routing_guarded(Log._smtp_routing_record_bounces, report, message_dict)
        bounce_class = bounces.decisive_class(report, message_dict.get("bounced_email"))
        routes = super(MailThread, self.with_context(**{BOUNCE_CLASS_KEY: bounce_class})).message_route(
            message, message_dict, model=model, thread_id=thread_id, custom_values=custom_values
        )
        self._smtp_routing_guarded(self._smtp_routing_after_bounce, report, message_dict, bounce_class)
        return routes

    @api.model
    def _smtp_routing_guarded(self, method, *args):
        """Run one of smtp_routing's bounce steps in a savepoint: whatever happens there, Odoo's handling goes on."""
        try:
            with self.env.cr.savepoint():
                method(*args)
        except Exception:
            _logger.exception("smtp_routing: %s failed for a bounce", getattr(method, "__name__", method))

    @api.model
    def _smtp_routing_after_bounce(self, report, message_dict, bounce_class):
        """Hook after Odoo handled a bounce: say why in the failed notification; uncount soft mailing bounces."""
        bounced_message, partners = message_dict.get("bounced_message"), message_dict.get("bounced_partner")
        entry = next(
            (
                r
                for r in report.recipients
                if r.recipient and r.recipient.lower() == (message_dict.get("bounced_email") or "").lower()
            ),
            report.recipients[0] if len(report.recipients) == 1 else None,
        )
        if entry and bounced_message and partners:
            notifications = (
                self.env["mail.notification"]
                .sudo()
                .search(
                    [
                        ("mail_message_id", "=", bounced_message.id),
                        ("res_partner_id", "in", partners.ids),
                        ("failure_type", "=", "mail_bounce"),
                    ]
                )
            )
            summary = self.env["smtp_routing.delivery.log"]._smtp_routing_bounce_summary(entry)
            for notification in notifications:
                notification.failure_reason = "\n\n".join(filter(None, [summary, notification.failure_reason]))
        msg_ids = message_dict.get("bounced_msg_ids")
        if not bounces.counts_towards_blacklist(bounce_class) and msg_ids and "mailing.trace" in self.env:
            # mass_mailing blacklists an address after 5 bounced traces: a soft bounce is a failed delivery instead
            traces = (
                self.env["mailing.trace"]
                .sudo()
                .search([("message_id", "in", msg_ids), ("trace_status", "=", "bounce")])
            )
            traces.write({"trace_status": "error", "failure_type": "mail_bounce"})

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
