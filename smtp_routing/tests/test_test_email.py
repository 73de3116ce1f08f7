# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The test button sends a real email and records the outcome."""

import contextlib
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from ..models.smtp_routing_delivery_log import CATEGORY_SELECTION
from ..tools import smtp_errors
from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestTestEmail(LiveSmtpCase):
    def _wizard(self, **values):
        action = self.mail_server.action_smtp_routing_test_email()
        return self.env["smtp_routing.test.email"].with_context(**action["context"]).create(values)

    def test_real_test_email_from_server_identity(self):
        self.mail_server.write(
            {
                "smtp_routing_from_email": "office@practice.example",
                "smtp_routing_from_name": "Practice Office",
            }
        )
        wizard = self._wizard(email_to="admin-check@example.com")
        wizard.action_send()
        self.assertEqual(wizard.state, "sent", wizard.result_reply)
        self.assertTrue(self.smtpd.wait_for(1))
        received = self.smtpd.messages[0]
        self.assertEqual(received.rcpt_tos, ("admin-check@example.com",))
        self.assertEqual(received.message["From"], "Practice Office <office@practice.example>")
        self.assertIn(self.mail_server.name, received.message["Subject"])
        log = self.env["smtp_routing.delivery.log"].search([("server_id", "=", self.mail_server.id)])
        self.assertEqual((log.source, log.outcome), ("test", "sent"))
        self.assertEqual(log.message_id, wizard.result_message_id)

    def test_default_recipient_is_the_admin(self):
        self.env.user.email = "the-admin@example.com"
        self.assertEqual(self._wizard().email_to, "the-admin@example.com")

    def test_admin_without_email_is_told(self):
        self.env.user.email = False
        wizard = self._wizard()
        self.assertFalse(wizard.email_to)
        with self.assertRaisesRegex(UserError, "no email address"):
            wizard.action_send()

    def test_invalid_recipient(self):
        with self.assertRaisesRegex(UserError, "not a valid email address"):
            self._wizard(email_to="not an address").action_send()

    def test_failure_is_shown_and_recorded_not_raised(self):
        self.mail_server.smtp_pass = "wrong"
        wizard = self._wizard(email_to="x@example.com")
        wizard.action_send()  # no exception: the transaction commits and keeps the history row
        self.assertEqual(wizard.state, "failed")
        self.assertEqual(wizard.result_category, "auth")
        self.assertIn("535", wizard.result_code)
        self.assertIn("password", wizard.result_hint)
        log = self.env["smtp_routing.delivery.log"].search([("server_id", "=", self.mail_server.id)])
        self.assertEqual((log.source, log.outcome, log.category), ("test", "failed", "auth"))

    def test_failed_test_emails_make_the_server_failing_not_healthy(self):
        """Issue 19: four 535s showed a green "Healthy" beside "4 failed today"."""
        Server = self.env["ir.mail_server"]
        self.assertEqual(self.mail_server.smtp_routing_health, "never", "nothing went through it yet")
        self.mail_server.smtp_pass = "wrong"
        for _attempt in range(4):
            self._wizard(email_to="x@example.com").action_send()
        self.mail_server.invalidate_recordset()
        server = self.mail_server
        self.assertEqual(server.smtp_routing_failed_today, 4)
        self.assertEqual(server.smtp_routing_health, "failing")
        self.assertEqual((server.smtp_routing_failing_category, server.smtp_routing_failing_count), ("auth", 4))
        first = self.env["smtp_routing.delivery.log"].search([("server_id", "=", server.id)], order="id")[0]
        self.assertEqual(server.smtp_routing_failing_since, first.date)
        self.assertEqual(Server.search([("smtp_routing_health", "=", "failing")]), server)
        self.assertNotIn(server, Server.search([("smtp_routing_health", "=", "healthy")]))
        # A refused recipient says nothing about the server: it does not end (or start) the failing streak.
        self.mail_server.smtp_pass = "odoo-pass"
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 No such mailbox", times=1)
        self._wizard(email_to="ghost@example.com").action_send()
        server.invalidate_recordset()
        self.assertEqual(server.smtp_routing_health, "failing")
        # One that goes through makes it healthy again.
        self._wizard(email_to="x@example.com").action_send()
        server.invalidate_recordset()
        self.assertEqual(server.smtp_routing_health, "healthy")
        self.assertFalse(server.smtp_routing_failing_since)
        self.assertEqual(Server.search([("smtp_routing_health", "=", "healthy")]), server)
        # The dashboard, the list and the form load with the new fields.
        for view, kind in (("kanban", "kanban"), ("form", "form"), ("list", "list")):
            ref = self.env.ref(f"smtp_routing.ir_mail_server_view_{view}")
            arch = Server.get_views([(ref.id if view == "kanban" else False, kind)])["views"][kind]["arch"]
            self.assertIn("smtp_routing_health", arch)

    def test_recipient_refused_during_test(self):
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 No such mailbox")
        wizard = self._wizard(email_to="ghost@example.com")
        wizard.action_send()
        self.assertEqual((wizard.state, wizard.result_category), ("failed", "recipient_rejected"))
        self.assertEqual(wizard.result_reply, "5.1.1 No such mailbox")

    def test_one_failure_reads_the_same_in_the_queue_the_history_and_the_test_dialog(self):
        """Classified once, worded once: the mail's reason, its history row and the test dialog agree."""
        Log = self.env["smtp_routing.delivery.log"]
        faults = {
            "sender_rejected": ("MAIL", "550 5.7.1 Sender address not allowed here"),
            "recipient_rejected": ("RCPT", "550 5.1.1 No such mailbox"),
        }
        for category, (point, reply) in faults.items():
            with self.subTest(category=category):
                self.smtpd.clear_faults()
                self.smtpd.add_fault(point, reply=reply)
                mail = self.create_mail(email_to="ghost@example.com")
                mail.send()
                self.assertEqual(mail.state, "exception")
                queued = Log.search([("mail_id", "=", mail.id)])
                wizard = self._wizard(email_to="ghost@example.com")
                wizard.action_send()
                tested = Log.search([("source", "=", "test")], limit=1)
                self.assertEqual((queued.category, tested.category, wizard.result_category), (category,) * 3)
                self.assertEqual(mail.failure_reason, queued.summary)
                self.assertEqual(tested.summary, queued.summary)
                code = " ".join(str(part) for part in (queued.smtp_code, queued.enhanced_status))
                self.assertEqual((wizard.result_code, wizard.result_reply), (code, queued.reply))
                self.assertEqual(wizard.result_hint, queued.hint)
                self.assertEqual(queued.summary, f"{dict(CATEGORY_SELECTION)[category]} - {code} - {reply[4:]}")

    def test_a_failure_is_classified_once(self):
        """Where it happens (send_email() records it); the queue run reads that Outcome, never classifies again."""
        self.smtpd.add_fault("MAIL", reply="550 5.7.1 Sender address not allowed here")
        mail = self.create_mail()
        with patch.object(smtp_errors, "classify", wraps=smtp_errors.classify) as classify:
            mail.send()
        self.assertEqual(mail.state, "exception")
        self.assertEqual(classify.call_count, 1)

    # -- issue 14: test emails are mail too ------------------------------------------------------------
    def test_test_emails_count_against_the_server_limits(self):
        self.mail_server.smtp_routing_hourly_max = 1
        self._wizard(email_to="first@example.com").action_send()
        state = self.env["smtp_routing.server.state"].search([("server_id", "=", self.mail_server.id)])
        self.assertEqual(state.hour_count, 1, "the test email used the hour's only slot")
        with self.assertRaisesRegex(UserError, "hourly"):
            self._wizard(email_to="second@example.com").action_send()
        self.assertEqual(len(self.smtpd.messages), 1)

    def test_failed_test_email_gives_its_slot_back(self):
        self.mail_server.write({"smtp_routing_hourly_max": 1, "smtp_pass": "wrong"})
        self._wizard(email_to="x@example.com").action_send()
        state = self.env["smtp_routing.server.state"].search([("server_id", "=", self.mail_server.id)])
        self.assertEqual(state.hour_count, 0)

    # -- issue 14: a test email's slot is in the reservation ledger, like a queue run's ------------------
    def _ledger(self):
        """(units, units at risk) of the open reservations of the test server."""
        self.env.cr.execute(
            "SELECT units, units_at_risk FROM smtp_routing_reservation WHERE server_id = %s ORDER BY id",
            [self.mail_server.id],
        )
        return self.env.cr.fetchall()

    @contextlib.contextmanager
    def _ledger_when_called(self, method):
        """The test server's ledger rows as they are each time ``ir.mail_server.<method>`` is called."""
        Server = type(self.env["ir.mail_server"])
        original = getattr(Server, method)
        seen = []

        def watched(server, *args, **kwargs):
            seen.append(self._ledger())
            return original(server, *args, **kwargs)

        with patch.object(Server, method, watched):
            yield seen

    def _hour_count(self):
        return self.env["smtp_routing.server.state"].search([("server_id", "=", self.mail_server.id)]).hour_count

    def test_a_sent_test_email_holds_a_ledger_row_until_it_ends_and_stays_counted(self):
        self.mail_server.smtp_routing_hourly_max = 5
        with self._ledger_when_called("connect") as at_connect, self._ledger_when_called("send_email") as at_send:
            wizard = self._wizard(email_to="x@example.com")
            wizard.action_send()
        self.assertEqual(wizard.state, "sent", wizard.result_reply)
        self.assertEqual(at_connect, [[(1, 0)]], "reserved in the ledger before connecting, nothing at risk yet")
        self.assertEqual(at_send, [[(1, 1)]], "at risk once connected, before the message goes")
        self.assertEqual(self._hour_count(), 1, "the test email went: it stays counted")
        self.assertEqual(self._ledger(), [], "the row is closed when the test ends")

    def test_a_test_email_failing_to_connect_gives_back_its_slot_and_closes_its_row(self):
        self.mail_server.write({"smtp_routing_hourly_max": 5, "smtp_pass": "wrong"})
        with self._ledger_when_called("connect") as at_connect, self._ledger_when_called("send_email") as at_send:
            wizard = self._wizard(email_to="x@example.com")
            wizard.action_send()
        self.assertEqual((wizard.state, wizard.result_category), ("failed", "auth"))
        self.assertEqual((at_connect, at_send), ([[(1, 0)]], []), "never at risk: nothing was sent")
        self.assertEqual(self._hour_count(), 0, "given back")
        self.assertEqual(self._ledger(), [], "the row is closed with the give-back")

    def test_a_test_email_refused_after_connecting_gives_back_its_slot_and_closes_its_row(self):
        self.mail_server.smtp_routing_hourly_max = 5
        self.smtpd.add_fault("MAIL", reply="550 5.7.1 Sender not allowed")
        with self._ledger_when_called("send_email") as at_send:
            wizard = self._wizard(email_to="x@example.com")
            wizard.action_send()
        self.assertEqual(wizard.state, "failed")
        self.assertEqual(at_send, [[(1, 1)]])
        self.assertEqual(self._hour_count(), 0, "a failed test gives its slot back")
        self.assertEqual(self._ledger(), [], "the row is closed with the give-back")
        self.assertEqual(len(self.smtpd.messages), 0)

    def test_archived_server_is_refused(self):
        self.mail_server.active = False
        with self.assertRaisesRegex(UserError, "archived"):
            self._wizard(email_to="x@example.com").action_send()
        self.assertEqual(self.smtpd.connections, 0)

    def test_test_emails_are_rate_limited_per_user(self):
        self.env["ir.config_parameter"].set_param("smtp_routing.test_email_hourly_max", "2")
        for index in range(2):
            self._wizard(email_to=f"t{index}@example.com").action_send()
        with self.assertRaisesRegex(UserError, "2 test emails"):
            self._wizard(email_to="t3@example.com").action_send()
        self.assertEqual(len(self.smtpd.messages), 2)


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestPasswordDoorClosing(LiveSmtpCase):
    """Microsoft 365 and Google close the password door: the history says so, and the form offers OAuth."""

    def test_a_retired_password_is_its_own_problem_with_the_way_out(self):
        self.smtpd.add_fault("AUTH", reply="535 5.7.139 Authentication unsuccessful, basic authentication is disabled.")
        action = self.mail_server.action_smtp_routing_test_email()
        wizard = (
            self.env["smtp_routing.test.email"]
            .with_context(**action["context"])
            .create({"email_to": "check@example.com"})
        )
        wizard.action_send()
        self.assertEqual(wizard.state, "failed")
        self.assertEqual(wizard.result_category, "password_retired")
        self.assertIn("Switch to OAuth", wizard.result_hint)
        log = self.env["smtp_routing.delivery.log"].search([("server_id", "=", self.mail_server.id)], limit=1)
        self.assertEqual(log.category, "password_retired")

    def test_a_microsoft_365_server_with_a_password_is_warned_and_switched_in_one_click(self):
        self.mail_server.write(
            {"smtp_routing_provider": "microsoft365", "smtp_user": "office@practice.example", "smtp_pass": "s3cret"}
        )
        self.assertEqual(self.mail_server.smtp_authentication, "login")
        self.assertIn("December 2026", self.mail_server.smtp_routing_warning)
        self.mail_server.action_smtp_routing_switch_to_oauth()
        self.assertEqual(self.mail_server.smtp_authentication, "outlook")
        self.assertFalse(self.mail_server.sudo().smtp_routing_pass_encrypted)
        self.assertEqual(self.mail_server.from_filter, "office@practice.example")
        self.assertFalse(self.mail_server.smtp_routing_warning)

    def test_a_google_server_is_warned_with_googles_date(self):
        self.mail_server.write({"smtp_routing_provider": "google_workspace", "smtp_pass": "app-password"})
        self.assertIn("1 May 2025", self.mail_server.smtp_routing_warning)

    def test_preset_limits_apply_a_little_below_the_providers(self):
        self.mail_server.smtp_routing_provider = "microsoft365"
        self.mail_server.action_smtp_routing_apply_preset_limits()
        server = self.mail_server
        throttle = (server.smtp_routing_throttle_max, server.smtp_routing_throttle_duration)
        self.assertEqual(throttle + (server.smtp_routing_throttle_unit,), (27, 1, "minutes"))
        self.assertEqual(server.smtp_routing_daily_max, 9000)
        self.assertTrue(server.smtp_routing_count_recipients)
        self.mail_server.smtp_routing_provider = "generic"
        with self.assertRaisesRegex(UserError, "publishes no sending limits"):
            self.mail_server.action_smtp_routing_apply_preset_limits()

    def test_only_administrators_switch_or_apply(self):
        user = new_test_user(self.env, login="plain_user", groups="base.group_user")
        server = self.mail_server.with_user(user)
        for action in ("action_smtp_routing_switch_to_oauth", "action_smtp_routing_apply_preset_limits"):
            with self.subTest(action=action), self.assertRaises(AccessError):
                getattr(server, action)()
