# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Every attempt leaves a classified delivery-log row; each category provoked for real."""

import socket
import time
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.tests import tagged

from ..testing.smtpd import closed_port
from ..testing.tlscert import make_self_signed
from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestDeliveryLog(LiveSmtpCase):
    def _logs(self, server=None):
        return self.env["smtp_routing.delivery.log"].search([("server_id", "=", (server or self.mail_server).id)])

    def _send_and_get_log(self, **mail_values):
        mail = self.create_mail(**mail_values)
        mail.send()
        logs = self._logs()
        self.assertEqual(len(logs), 1, "one attempt, one row")
        return mail, logs

    def test_success_is_logged_with_mail_and_message_id(self):
        mail, log = self._send_and_get_log(email_to="bob@example.com, carol@example.com")
        self.assertTrue(self.smtpd.wait_for(1))
        self.assertEqual(log.outcome, "sent")
        self.assertEqual(log.mail_id, mail)
        self.assertEqual(log.message_id, mail.message_id)
        self.assertEqual(log.recipient_count, 2)
        self.assertEqual(log.source, "send_now")
        self.assertEqual(log.server_name, "Loopback primary")
        self.assertFalse(log.category)
        # the private correlation header never leaves Odoo
        self.assertNotIn("X-Smtp-Routing-Mail-Id", self.smtpd.messages[0].message)

    def test_queue_source(self):
        mail = self.create_mail()
        self.env["mail.mail"].process_email_queue(ids=mail.ids)
        self.assertEqual(self._logs().source, "queue")

    def test_log_survives_auto_delete(self):
        mail = self.create_mail(auto_delete=True)
        mail.send()
        self.assertFalse(mail.exists())
        log = self._logs()
        self.assertEqual(log.outcome, "sent")
        self.assertFalse(log.mail_id)
        self.assertTrue(log.message_id)
        self.assertEqual(log.subject, "Loopback delivery")

    def test_wrong_password_is_auth(self):
        self.mail_server.smtp_pass = "wrong"
        mail = self.create_mail()
        mail.send()
        log = self._logs()
        self.assertEqual((log.outcome, log.stage, log.category), ("failed", "connect", "auth"))
        self.assertEqual((log.smtp_code, log.enhanced_status), (535, "5.7.8"))
        self.assertNotIn("wrong", log.reply or "")
        # a server problem never fails the mail: it waits for the server (or another one)
        self.assertEqual(mail.state, "outgoing")
        self.assertTrue(mail.scheduled_date)

    def test_closed_port_is_connection_refused(self):
        self.mail_server.smtp_port = closed_port()
        self.create_mail().send()
        self.assertEqual(self._logs().category, "connection_refused")

    def test_history_rows_say_what_to_do_and_show_no_code_without_a_reply(self):
        """Issue 19: the problem was cut, a code 0 showed where no reply came, and only the test dialog hinted."""
        port = closed_port()
        self.mail_server.smtp_port = port
        self.create_mail().send()
        log = self._logs()
        self.assertEqual((log.category, log.smtp_code), ("connection_refused", 0))
        self.assertIn(f"127.0.0.1:{port}", log.hint)
        self.mail_server.smtp_port = self.smtpd.port
        self.env["smtp_routing.server.state"]._smtp_routing_succeeded(self.mail_server)  # end its cooldown
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 No such user", times=1)
        self.create_mail(email_to="ghost@example.com").send()
        rejected = self._logs()[0]  # the latest
        self.assertEqual(rejected.hint, "The server refused the recipient: check the address.")
        for ref in ("smtp_routing.smtp_routing_delivery_log_view_list", "smtp_routing.ir_mail_server_view_form"):
            arch = self.env[self.env.ref(ref).model].get_views([(self.env.ref(ref).id, ref.split("_")[-1])])
            arch = next(iter(arch["views"].values()))["arch"]
            with self.subTest(view=ref):
                self.assertIn('name="hint"', arch)
                self.assertRegex(arch, r'name="smtp_code"[^>]*invisible="not smtp_code"')
                self.assertRegex(arch, r'name="category"[^>]*width="190px"', "room for the whole problem")

    def test_tls_against_plain_port(self):
        plain = self.start_smtp_server()
        server = self.create_mail_server(plain, name="Plain", smtp_encryption="ssl", sequence=0)
        self.create_mail(mail_server_id=server.id).send()
        self.assertEqual(self._logs(server).category, "tls")
        self.assertEqual(plain.messages, [])

    def test_dns_failure(self):
        # Name resolution would leave loopback: this one lookup is the only thing patched.
        real_getaddrinfo = socket.getaddrinfo

        def getaddrinfo(host, *args, **kwargs):
            if host == "smtp.no-such-domain.invalid":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return real_getaddrinfo(host, *args, **kwargs)

        self.mail_server.smtp_host = "smtp.no-such-domain.invalid"
        with patch("socket.getaddrinfo", getaddrinfo):
            self.create_mail().send()
        log = self._logs()
        self.assertEqual((log.stage, log.category), ("connect", "dns"))

    def test_timeout_uses_the_server_time_out(self):
        self.smtpd.add_fault("CONNECT", action="hang", seconds=5)
        self.mail_server.smtp_routing_timeout = 1
        started = time.monotonic()
        mail = self.create_mail()
        mail.send()
        self.assertLess(time.monotonic() - started, 4, "Odoo's 60 s constant was not used")
        log = self._logs()
        self.assertEqual(log.category, "timeout")
        self.assertGreaterEqual(log.duration_ms, 900)
        self.assertEqual(mail.state, "outgoing")

    def _reset(self):
        self.env["smtp_routing.delivery.log"].search([]).unlink()
        self.env["smtp_routing.server.state"].search([]).unlink()
        self.smtpd.clear_faults()

    def test_permanent_reply_categories_fail_the_mail(self):
        send_as = "554 5.2.0 STOREDRV.Submission.Exception:SendAsDeniedException"
        send_as_60 = "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
        cases = [
            ("RCPT", "550 5.1.1 User unknown", "recipient_rejected", 550, "5.1.1", "mail_email_invalid"),
            ("MESSAGE", "552 5.3.4 Message size exceeds fixed limit", "too_large", 552, "5.3.4", "unknown"),
            ("MESSAGE", send_as, "send_as_denied", 554, "5.2.0", "mail_from_invalid"),
            ("MESSAGE", send_as_60, "send_as_denied", 550, "5.7.60", "mail_from_invalid"),
        ]
        for point, reply, category, code, status, failure_type in cases:
            with self.subTest(reply=reply):
                self._reset()
                self.smtpd.add_fault(point, reply=reply)
                mail, log = self._send_and_get_log()
                self.assertEqual((log.outcome, log.stage, log.category), ("failed", "send", category))
                self.assertEqual((log.smtp_code, log.enhanced_status), (code, status))
                self.assertEqual(log.reply, reply[4:])
                self.assertEqual(log.mail_id, mail)
                self.assertEqual(mail.state, "exception")
                self.assertIn(reply[4:], mail.failure_reason)
                self.assertEqual(mail.failure_type, failure_type)

    def test_temporary_replies_defer_the_mail(self):
        for point, reply, why in [
            ("MAIL", "421 4.7.0 Too many messages, try later", "cooling down"),
            ("RCPT", "452 4.5.3 Too many recipients", "refused for now"),  # that recipient only
        ]:
            with self.subTest(reply=reply):
                self._reset()
                self.smtpd.add_fault(point, reply=reply)
                mail, log = self._send_and_get_log()
                self.assertEqual((log.outcome, log.category, log.smtp_code), ("failed", "temporary", int(reply[:3])))
                self.assertEqual(mail.state, "outgoing")
                self.assertGreater(mail.scheduled_date, fields.Datetime.now())
                self.assertIn(why, mail.smtp_routing_deferred_reason)

    def test_history_counts_and_last_error(self):
        self.create_mail().send()
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 User unknown")
        self.create_mail().send()
        self.mail_server.invalidate_recordset()
        self.assertEqual(self.mail_server.smtp_routing_sent_24h, 1)
        self.assertEqual(self.mail_server.smtp_routing_failed_24h, 1)
        self.assertIn("Recipient rejected", self.mail_server.smtp_routing_last_error)
        self.assertIn("5.1.1 User unknown", self.mail_server.smtp_routing_last_error)

    def test_batch_is_written_in_one_insert(self):
        mails = self.env["mail.mail"]
        for index in range(5):
            mails |= self.create_mail(email_to=f"c{index}@example.com")
        Log = type(self.env["smtp_routing.delivery.log"])
        with patch.object(Log, "create", autospec=True, side_effect=Log.create) as create:
            mails.send()
        self.assertEqual(create.call_count, 1)
        self.assertEqual(len(create.call_args.args[1]), 5)
        self.assertEqual(len(self._logs()), 5)

    def test_retention(self):
        Log = self.env["smtp_routing.delivery.log"]
        self.create_mail().send()
        old = self._logs()
        old.write({"date": fields.Datetime.now() - timedelta(days=91)})
        self.create_mail().send()
        self.assertEqual(len(self._logs()), 2)
        Log._gc_delivery_log()
        self.assertEqual(len(self._logs()), 1)
        self.assertFalse(old.exists())
        self.env["ir.config_parameter"].set_param("smtp_routing.log_retention_days", "0")
        self._logs().write({"date": fields.Datetime.now() - timedelta(days=1000)})
        Log._gc_delivery_log()
        self.assertEqual(len(self._logs()), 1, "0 keeps everything")


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestCertificateVerification(LiveSmtpCase):
    """STARTTLS and SSL/TLS certificates are checked by default (stock Odoo never checks them)."""

    def test_untrusted_certificate_is_refused(self):
        self.env["ir.config_parameter"].set_param("smtp_routing.tls_ca_file", "")
        for tls, encryption in (("starttls", "starttls"), ("implicit", "ssl")):
            with self.subTest(tls=tls):
                self.env["smtp_routing.server.state"].search([]).unlink()
                sink = self.start_smtp_server(tls=tls, cert=make_self_signed())
                server = self.create_mail_server(
                    sink, name=f"Self-signed {tls}", smtp_encryption=encryption, sequence=0
                )
                mail = self.create_mail(mail_server_id=server.id)
                mail.send()
                log = self.env["smtp_routing.delivery.log"].search([("server_id", "=", server.id)])
                self.assertEqual((log.stage, log.category), ("connect", "tls"))
                self.assertIn("certificate", log.reply.lower())
                self.assertEqual(sink.messages, [], "nothing, not even the password, went to the impostor")
                self.assertEqual(sink.auth_attempts, [])

    def test_trusted_ca_file_and_explicit_opt_out(self):
        mail = self.create_mail()
        mail.send()
        self.assertTrue(self.smtpd.wait_for(1), "the fixture's CA is trusted through smtp_routing.tls_ca_file")
        self.env["ir.config_parameter"].set_param("smtp_routing.tls_ca_file", "")
        self.mail_server.smtp_routing_tls_verify = False
        self.create_mail(subject="Unverified, as configured").send()
        self.assertTrue(self.smtpd.wait_for(2))

    def test_unreadable_ca_file_says_so(self):
        self.env["ir.config_parameter"].set_param("smtp_routing.tls_ca_file", "/nonexistent/ca.pem")
        self.create_mail().send()
        log = self.env["smtp_routing.delivery.log"].search([("server_id", "=", self.mail_server.id)])
        self.assertEqual(log.category, "config")
        self.assertIn("/nonexistent/ca.pem", log.reply)
