# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Mail really sent through a loopback server, then bounced back through Odoo's mail gateway (message_process)."""

import email
import email.policy
from email.message import EmailMessage, MIMEPart
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import LiveSmtpCase

GATEWAY_LOGGER = "odoo.addons.mail.models.mail_thread"


def make_bounce(
    recipient,
    status,
    diagnostic,
    original=None,
    bounce_id="<bounce-1@mx.example.com>",
    sender="MAILER-DAEMON@mx.example.com",
):
    """A Postfix-style RFC 3464 bounce (bytes): human text, the delivery-status report, the returned message.

    ``original`` is the returned message as bytes (what the receiving server got) or a Message-Id to quote in
    ``text/rfc822-headers``; None returns nothing.
    """
    report = EmailMessage()
    report["From"] = f"Mail Delivery System <{sender}>"
    report["To"] = "bounce@practice.example"
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Message-Id"] = bounce_id
    report["Auto-Submitted"] = "auto-replied"
    report.set_content(
        "This is the mail system at host mx.example.com.\n\nI'm sorry to have to inform you that your message could "
        f"not be delivered.\n\n<{recipient}>: host mx.example.com[192.0.2.5] said: {diagnostic} (in reply to RCPT "
        "TO command)\n"
    )
    report.make_mixed()
    report.set_type("multipart/report")
    report.set_param("report-type", "delivery-status")
    status_text = (
        "Reporting-MTA: dns; mx.example.com\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: failed\nStatus: {status}\n"
        f"Remote-MTA: dns; mx.example.com\nDiagnostic-Code: smtp; {diagnostic}\n"
    )
    report.attach(email.message_from_string("Content-Type: message/delivery-status\n\n" + status_text))
    if isinstance(original, bytes):
        part = MIMEPart()
        part.set_content(email.message_from_bytes(original, policy=email.policy.SMTP))
        report.attach(part)
    elif original:
        part = MIMEPart()
        part.set_content(f"Message-Id: {original}\nSubject: Your appointment\n", subtype="rfc822-headers")
        report.attach(part)
    return report.as_bytes(policy=email.policy.SMTP)


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestBounceGateway(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ghost = cls.env["res.partner"].create({"name": "Ghost", "email": "ghost@example.com"})
        cls.document = cls.env["res.partner"].create({"name": "Appointments", "email": "desk@example.org"})
        cls.Log = cls.env["smtp_routing.delivery.log"]
        # bounces come back to Odoo's bounce address, bounce@practice.example
        cls.env["mail.alias.domain"].create({"name": "practice.example"})

    def _post_and_send(self, partner=None):
        """A chatter message to ``partner``, delivered for real to the loopback server; (message, bytes received)."""
        self.smtpd.clear()
        message = self.document.message_post(
            body="<p>See you on Monday</p>",
            subject="Your appointment",
            partner_ids=(partner or self.ghost).ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
        )
        self.assertTrue(self.smtpd.wait_for(1), "the notification was not delivered to the loopback server")
        return message, self.smtpd.messages[-1].content

    def _process(self, raw):
        with mute_logger(GATEWAY_LOGGER):
            return self.env["mail.thread"].message_process(None, raw)

    def _bounced_rows(self, server=None):
        return self.Log.search([("server_id", "=", (server or self.mail_server).id), ("outcome", "=", "bounced")])

    def test_hard_bounce_reaches_the_server_history_and_counts(self):
        message, received = self._post_and_send()
        sent = self.Log.search([("server_id", "=", self.mail_server.id), ("outcome", "=", "sent")])
        self.assertEqual(len(sent), 1)
        self.assertFalse(
            self._process(
                make_bounce(
                    "ghost@example.com",
                    "5.1.1",
                    "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown",
                    received,
                )
            )
        )
        row = self._bounced_rows()
        self.assertEqual(len(row), 1, "one bounced row in the history of the server that carried the mail")
        self.assertEqual(
            (row.bounce_class, row.enhanced_status, row.smtp_code, row.recipients, row.message_id, row.source),
            ("hard", "5.1.1", 550, "ghost@example.com", message.message_id, "bounce"),
        )
        self.assertEqual(row.reply, "550 5.1.1 <ghost@example.com>: Recipient address rejected: User unknown")
        self.assertEqual(row.subject, sent.subject)
        self.assertEqual(row.bounce_message_id, "<bounce-1@mx.example.com>")
        self.assertIn("Hard bounce - 550 5.1.1 - ", row.summary)
        self.assertEqual(self.mail_server.smtp_routing_bounced_24h, 1)
        # Odoo's own handling: the bounce counter, and the failed notification in the chatter says why
        self.assertEqual(self.ghost.message_bounce, 1)
        notification = message.notification_ids.filtered(lambda n: n.res_partner_id == self.ghost)
        self.assertEqual(notification.notification_status, "bounce")
        self.assertEqual(notification.failure_type, "mail_bounce")
        self.assertTrue(
            notification.failure_reason.startswith("Hard bounce (5.1.1): 550 5.1.1 <ghost@example.com>"),
            notification.failure_reason,
        )
        self.assertIn("This is the mail system at host mx.example.com.", notification.failure_reason)

    def test_soft_and_policy_bounces_do_not_count(self):
        cases = [
            ("5.2.2", "552 5.2.2 <ghost@example.com>: Mailbox full", "soft"),
            ("4.4.7", "Delivery time expired: the mailbox was temporarily unavailable", "soft"),
            ("5.7.26", "550 5.7.26 Unauthenticated email from practice.example is not accepted due to DMARC", "policy"),
            ("5.7.515", "550 5.7.515 Access denied, sending domain doesn't meet the required authentication", "policy"),
        ]
        for index, (status, diagnostic, bounce_class) in enumerate(cases):
            with self.subTest(status=status):
                message, received = self._post_and_send()
                self._process(
                    make_bounce("ghost@example.com", status, diagnostic, received, bounce_id=f"<soft-{index}@mx>")
                )
                row = self.Log.search([("bounce_message_id", "=", f"<soft-{index}@mx>")])
                self.assertEqual((row.bounce_class, row.server_id), (bounce_class, self.mail_server))
                self.assertEqual(row.reply, diagnostic)
                self.assertEqual(self.ghost.message_bounce, 0, "a soft or policy bounce must not count")
                self.assertEqual(self.document.message_bounce, 0)
                notification = message.notification_ids.filtered(lambda n: n.res_partner_id == self.ghost)
                self.assertEqual(notification.notification_status, "bounce", "the mail was not delivered all the same")
        # and a hard one still does
        _message, received = self._post_and_send()
        self._process(make_bounce("ghost@example.com", "5.1.1", "550 5.1.1 User unknown", received, "<hard@mx>"))
        self.assertEqual(self.ghost.message_bounce, 1)

    def test_bounce_lands_on_the_server_that_carried_the_mail(self):
        other_smtpd = self.start_smtp_server(credentials={}, tls=None)
        other = self.create_mail_server(other_smtpd, name="Loopback other", sequence=50)
        mail = self.create_mail(email_to="ghost@example.com", mail_server_id=other.id, auto_delete=False)
        mail.send()
        self.assertTrue(other_smtpd.wait_for(1))
        self.assertEqual(mail.smtp_routing_server_id, other)
        # the attempt's row is gone (retention): the mail itself still says which server carried it
        self.Log.search([("mail_id", "=", mail.id)]).unlink()
        self._process(make_bounce("ghost@example.com", "5.1.1", "550 5.1.1 User unknown", mail.message_id))
        row = self._bounced_rows(other)
        self.assertEqual((row.mail_id, row.message_id, row.server_name), (mail, mail.message_id, "Loopback other"))
        self.assertFalse(self._bounced_rows())

    def _ndr(self, message, to="bounce@practice.example", ndr_id="<ndr-1@contoso.example>"):
        """An Exchange NDR as text only (no report, nothing returned): only In-Reply-To names the mail."""
        ndr = EmailMessage()
        ndr["From"] = "Microsoft Outlook <postmaster@contoso.example>"
        ndr["To"] = to
        ndr["Subject"] = "Undeliverable: Your appointment"
        ndr["Message-Id"] = ndr_id
        ndr["In-Reply-To"] = message.message_id
        ndr["X-MS-Exchange-Message-Is-Ndr"] = ""
        ndr.set_content(
            "Your message to ghost@example.com couldn't be delivered.\n\nghost@example.com\nRemote Server returned "
            "'550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'\n"
        )
        return ndr.as_bytes()

    def test_exchange_text_only_ndr_is_linked_by_in_reply_to(self):
        message, _received = self._post_and_send()
        self._process(self._ndr(message))
        row = self._bounced_rows()
        self.assertEqual(
            (row.bounce_class, row.enhanced_status, row.recipients), ("hard", "5.1.10", "ghost@example.com")
        )
        self.assertIn("RecipientNotFound", row.reply)

    def test_ndr_sent_to_the_catchall_is_still_a_bounce(self):
        """Stock Odoo only knows the bounce alias, MAILER-DAEMON and multipart/report; NDR headers count too."""
        message, _received = self._post_and_send()
        self.assertTrue(
            self.env["mail.thread"]._detect_is_bounce(
                email.message_from_bytes(self._ndr(message, to="info@practice.example"), policy=email.policy.SMTP),
                {"to": "info@practice.example", "email_from": "postmaster@contoso.example"},
            )
        )
        self._process(self._ndr(message, to="info@practice.example"))
        self.assertEqual(self._bounced_rows().bounce_class, "hard")

    def test_garbled_bounce_never_breaks_the_gateway_and_is_kept(self):
        garbled = (
            b"From: MAILER-DAEMON@mx.example.com\r\nTo: bounce@practice.example\r\nMessage-Id: <garbled@mx>\r\n"
            b"Subject: Undelivered Mail\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=zz\r\n"
            b"\r\n--zz\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822;\r\nStatus: 9.9\r\n"
            b"\xff\xfe\x00 truncated"
        )
        self.assertFalse(self._process(garbled))
        row = self.Log.search([("bounce_message_id", "=", "<garbled@mx>")])
        self.assertEqual((row.outcome, row.bounce_class, row.reply), ("bounced", "other", "Undelivered Mail"))

    def test_recording_failure_leaves_odoo_handling_intact(self):
        _message, received = self._post_and_send()
        Log = type(self.env["smtp_routing.delivery.log"])
        with (
            patch.object(Log, "_smtp_routing_record_bounces", side_effect=ValueError("boom")),
            patch.object(type(self.env["mail.thread"]), "_smtp_routing_after_bounce", side_effect=KeyError("boom")),
            mute_logger("odoo.addons.smtp_routing.models.mail_thread"),
        ):
            self._process(make_bounce("ghost@example.com", "5.1.1", "550 5.1.1 User unknown", received))
        self.assertEqual(self.ghost.message_bounce, 1)
        self.assertFalse(self._bounced_rows())

    def test_same_bounce_twice_is_recorded_once(self):
        _message, received = self._post_and_send()
        bounce = make_bounce("ghost@example.com", "5.2.2", "552 5.2.2 Mailbox full", received)
        self._process(bounce)
        self._process(bounce)
        self.assertEqual(len(self._bounced_rows()), 1)

    def test_blacklist_refuses_an_address_only_for_counting_bounces(self):
        Blacklist = self.env["mail.blacklist"]
        self.assertFalse(Blacklist.with_context(smtp_routing_bounce_class="soft")._add("full@example.com"))
        self.assertFalse(Blacklist.with_context(smtp_routing_bounce_class="policy")._add("spam@example.com"))
        self.assertTrue(Blacklist.with_context(smtp_routing_bounce_class="hard")._add("gone@example.com"))
        self.assertTrue(Blacklist._add("manual@example.com"))
        self.assertEqual(
            set(Blacklist.search([]).mapped("email")) & {"full@example.com", "spam@example.com", "gone@example.com"},
            {"gone@example.com"},
        )
