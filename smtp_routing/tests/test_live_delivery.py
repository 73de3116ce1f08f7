# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo really delivers to the loopback SMTP fixture (no mock in the path)."""

from unittest.mock import patch

from odoo import modules
from odoo.tests import tagged

from ..tools import pipelining
from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestLiveDelivery(LiveSmtpCase):
    def test_send_now_delivers_over_starttls_with_auth(self):
        mail = self.create_mail(email_to="bob@example.com, carol@example.com")
        mail.send()
        self.assertTrue(self.smtpd.wait_for(1), "the loopback server received nothing")
        self.assertEqual(mail.state, "sent")
        received = self.smtpd.messages[0]
        self.assertEqual(sorted(received.rcpt_tos), ["bob@example.com", "carol@example.com"])
        self.assertEqual(received.message["Subject"], "Loopback delivery")
        self.assertEqual(received.auth_user, "odoo")
        self.assertTrue(received.tls)

    def test_queue_cron_method_delivers_every_queued_mail(self):
        mails = self.env["mail.mail"]
        for index in range(5):
            mails |= self.create_mail(email_to=f"client{index}@example.com", subject=f"Queued {index}")
        self.env["mail.mail"].process_email_queue(ids=mails.ids)
        self.assertTrue(self.smtpd.wait_for(5))
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(
            sorted(self.smtpd.recipients),
            sorted(f"client{index}@example.com" for index in range(5)),
        )

    def test_wrong_password_delivers_nothing_and_keeps_the_mail(self):
        self.mail_server.smtp_pass = "not-the-password"
        mail = self.create_mail()
        mail.send()
        self.assertEqual(mail.state, "outgoing")
        self.assertIn("cooling down", mail.smtp_routing_deferred_reason)
        self.assertEqual(self.smtpd.messages, [])
        self.assertEqual(self.smtpd.auth_attempts[-1][1:], ("odoo", False))

    def test_recipient_refused_at_rcpt(self):
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 User unknown")
        mail = self.create_mail()
        mail.send()
        self.assertEqual(mail.state, "exception")
        self.assertIn("User unknown", mail.failure_reason or "")
        self.assertEqual(self.smtpd.messages, [])

    def test_odoos_session_sends_pipelined(self):
        """tools.pipelining works on the session Odoo's connect() returns (STARTTLS, AUTH, the wrapper)."""
        smtpd = self.start_smtp_server(credentials=self.smtp_credentials, tls="starttls", pipelining=True)
        server = self.create_mail_server(smtpd, name="Loopback pipelining", sequence=2)
        IrMailServer = self.env["ir.mail_server"]
        session = IrMailServer.connect(mail_server_id=server.id)
        try:
            message = IrMailServer.build_email(
                "alice@example.com", ["bob@example.com", "carol@example.com"], "Pipelined", "<p>Hi</p>", subtype="html"
            )
            smtp_from, smtp_to_list, message = IrMailServer._prepare_email_message(message, session)
            delivery = pipelining.send_message(session, message, smtp_from, smtp_to_list)
        finally:
            session.quit()
        self.assertTrue(delivery.pipelined)
        self.assertEqual(delivery.accepted, ("bob@example.com", "carol@example.com"))
        self.assertEqual(delivery.round_trips, 2)
        self.assertTrue(smtpd.wait_for(1))
        received = smtpd.messages[0]
        self.assertEqual((received.auth_user, received.tls), ("odoo", True))
        self.assertEqual(received.message["Subject"], "Pipelined")

    def test_odoo_test_mode_alone_would_deliver_nothing(self):
        """Guard the harness: without lifting Odoo's flag, nothing reaches the server."""
        with patch.object(modules.module, "current_test", True):
            mail = self.create_mail()
            mail.send()
        self.assertEqual(mail.state, "sent")  # Odoo pretends...
        self.assertFalse(self.smtpd.wait_for(1, timeout=0.5))  # ...but nothing was delivered
        self.assertEqual(self.smtpd.connections, 0)
