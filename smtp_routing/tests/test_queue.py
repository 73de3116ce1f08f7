# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Limits defer, failures fail over and cool down, claims prevent double sending (real loopback SMTP)."""

import importlib.util
import time
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

import psycopg2

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tools.misc import format_datetime

from ..models.smtp_routing_reservation import backend
from ..sending.run import QueueRun
from ..testing.smtpd import closed_port
from ..tools import limits as limits_tool
from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestQueue(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.backup_smtpd = cls.start_smtp_server()
        cls.backup = cls.create_mail_server(cls.backup_smtpd, name="Loopback backup", sequence=2)

    def setUp(self):
        super().setUp()
        self.backup_smtpd.clear()
        self.backup_smtpd.clear_faults()

    def _mails(self, count, **values):
        mails = self.env["mail.mail"]
        for index in range(count):
            mails |= self.create_mail(email_to=f"client{index}@example.com", subject=f"Mail {index}", **values)
        return mails

    def _state(self, server):
        return self.env["smtp_routing.server.state"].search([("server_id", "=", server.id)])

    def _triggers_at(self, when):
        cron = self.env.ref("mail.ir_cron_mail_scheduler_action")
        return self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id), ("call_at", "=", when)])

    # -- per-mail cost ---------------------------------------------------------------------------
    def test_purpose_costs_no_query_per_mail(self):
        """The purpose of each mail (read for routing and for the unsubscribe headers of every queued mail)
        is decided from the mail's own fields: no query per mail once they are loaded (issue 17)."""
        writer = new_test_user(self.env, login="purpose_writer", groups="base.group_user")
        comment = self.env.ref("mail.mt_comment")
        transactional = self._mails(3)
        personal = self.env["mail.mail"]
        for index in range(3):
            personal |= self.create_mail(
                email_to=f"friend{index}@example.com",
                message_type="comment",
                subtype_id=comment.id,
                author_id=writer.partner_id.id,
            )
        note = self.create_mail(message_type="comment", subtype_id=self.env.ref("mail.mt_note").id)
        mails = transactional | personal | note
        expected = ["transactional"] * 3 + ["personal"] * 3 + ["transactional"]
        self.assertEqual([mail._smtp_routing_purpose() for mail in mails], expected)
        with self.assertQueryCount(0):
            self.assertEqual([mail._smtp_routing_purpose() for mail in mails], expected)

    # -- limits ---------------------------------------------------------------------------------
    def test_throttle_defers_the_rest_to_the_end_of_the_window(self):
        self.backup.active = False
        self.mail_server.write(
            {"smtp_routing_throttle_max": 3, "smtp_routing_throttle_duration": 1, "smtp_routing_throttle_unit": "hours"}
        )
        mails = self._mails(5)
        mails.send()
        self.assertTrue(self.smtpd.wait_for(3))
        self.assertEqual(len(self.smtpd.messages), 3)
        sent, waiting = mails.filtered(lambda m: m.state == "sent"), mails.filtered(lambda m: m.state == "outgoing")
        self.assertEqual((len(sent), len(waiting)), (3, 2), "over the limit: deferred, never failed")
        window_start = self._state(self.mail_server).throttle_start
        self.assertEqual(set(waiting.mapped("scheduled_date")), {window_start + timedelta(hours=1)})
        self.assertIn("throttle", waiting[0].smtp_routing_deferred_reason)
        self.assertEqual(waiting.smtp_routing_server_id, self.mail_server)
        self.assertTrue(self._triggers_at(window_start + timedelta(hours=1)), "the queue cron is woken for the slot")
        # the queue does not take them before their slot...
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(len(self.smtpd.messages), 3)
        # ...and sends them once the window has passed
        self._state(self.mail_server).throttle_start = window_start - timedelta(hours=1)
        waiting.scheduled_date = fields.Datetime.now() - timedelta(seconds=1)
        self.env["mail.mail"].process_email_queue()
        self.assertTrue(self.smtpd.wait_for(5))
        self.assertEqual(set(mails.mapped("state")), {"sent"})

    def test_anti_flood_pause(self):
        self.backup.active = False
        self.mail_server.write({"smtp_routing_flood_max": 2, "smtp_routing_flood_pause": 60})
        mails = self._mails(5)
        before = fields.Datetime.now()
        mails.send()
        self.assertEqual(len(self.smtpd.messages), 2)
        waiting = mails.filtered(lambda m: m.state == "outgoing")
        self.assertEqual(len(waiting), 3)
        slot = waiting[0].scheduled_date
        self.assertGreaterEqual(slot, before + timedelta(seconds=59))
        self.assertLessEqual(slot, fields.Datetime.now() + timedelta(seconds=61))
        self.assertIn("flood", waiting[0].smtp_routing_deferred_reason)

    def test_counting_recipients(self):
        self.backup.active = False
        self.mail_server.write({"smtp_routing_daily_max": 4, "smtp_routing_count_recipients": True})
        first = self.create_mail(email_to="a@example.com, b@example.com, c@example.com")
        second = self.create_mail(email_to="d@example.com, e@example.com")
        (first | second).send()
        self.assertEqual((first.state, second.state), ("sent", "outgoing"))
        self.mail_server.smtp_routing_count_recipients = False
        second.scheduled_date = False
        second.send()
        self.assertEqual(second.state, "sent", "counting messages, 2 of 4 were used")

    def test_limit_overflow_goes_to_the_next_server(self):
        self.mail_server.write({"smtp_routing_hourly_max": 2})
        mails = self._mails(5)
        mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual((len(self.smtpd.messages), len(self.backup_smtpd.messages)), (2, 3))
        self.assertEqual(len(mails.filtered(lambda m: m.smtp_routing_server_id == self.backup)), 3)

    def test_server_at_its_cap_is_never_connected_to(self):
        """Quota is reserved before a connection is opened: no TCP, TLS or AUTH to a server with no room."""
        self.mail_server.write({"smtp_routing_hourly_max": 1})
        self._mails(1).send()
        self.assertEqual((len(self.smtpd.messages), self.smtpd.connections), (1, 1))
        self.smtpd.clear()
        mails = self._mails(3)
        mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertTrue(self.backup_smtpd.wait_for(3))
        self.assertEqual(self.smtpd.connections, 0, "the capped server was not connected to")

    # -- failover and cooldown -------------------------------------------------------------------------
    def test_connection_refused_fails_over_in_the_same_run(self):
        self.mail_server.smtp_port = closed_port()
        mail = self.create_mail()
        mail.send()
        self.assertEqual(mail.state, "sent")
        self.assertEqual(mail.smtp_routing_server_id, self.backup)
        self.assertTrue(self.backup_smtpd.wait_for(1))
        logs = self.env["smtp_routing.delivery.log"].search([], order="id")
        self.assertEqual(
            [(log.server_id, log.outcome, log.category) for log in logs],
            [(self.mail_server, "failed", "connection_refused"), (self.backup, "sent", False)],
        )
        self.assertEqual(self.mail_server.smtp_routing_health, "cooling")
        self.assertTrue(self._state(self.mail_server).cooldown_until)

    def test_temporary_refusal_fails_over_without_losing_recipients(self):
        self.smtpd.add_fault("MAIL", reply="421 4.7.0 Try again later, closing")
        mails = self._mails(3)
        mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertTrue(self.backup_smtpd.wait_for(3))
        self.assertEqual(sorted(self.backup_smtpd.recipients), [f"client{i}@example.com" for i in range(3)])
        self.assertEqual(self.smtpd.messages, [])

    def test_permanent_recipient_refusal_is_not_retried_elsewhere(self):
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 User unknown")
        mail = self.create_mail()
        mail.send()
        self.assertEqual(mail.state, "exception")
        self.assertIn("User unknown", mail.failure_reason)
        self.assertEqual(self.backup_smtpd.connections, 0, "no duplicate through another server")
        self.assertNotEqual(self.mail_server.smtp_routing_health, "cooling")

    def test_dead_primary_costs_one_time_out_per_cooldown(self):
        self.smtpd.add_fault("CONNECT", action="hang", seconds=5)
        self.mail_server.write({"smtp_routing_timeout": 1, "smtp_routing_cooldown_seconds": 60})
        for index in range(6):
            self.create_mail(subject=f"One by one {index}").send()
        self.assertTrue(self.backup_smtpd.wait_for(6))
        self.assertEqual(self.smtpd.connections, 1, "the primary was tried once, then skipped while cooling down")
        timeouts = self.env["smtp_routing.delivery.log"].search([("category", "=", "timeout")])
        self.assertEqual(len(timeouts), 1)
        # once the cooldown is over, the primary is tried again
        self.smtpd.clear_faults()
        self._state(self.mail_server).cooldown_until = fields.Datetime.now() - timedelta(seconds=1)
        self.create_mail(subject="After cooldown").send()
        self.assertTrue(self.smtpd.wait_for(1))
        self.assertEqual(self.mail_server.smtp_routing_health, "healthy")

    def test_every_server_down_defers_to_the_first_cooldown_end(self):
        self.mail_server.smtp_port = closed_port()
        self.backup.smtp_port = closed_port()
        mail = self.create_mail()
        mail.send()
        self.assertEqual(mail.state, "outgoing")
        ends = [self._state(server).cooldown_until for server in (self.mail_server, self.backup)]
        self.assertEqual(mail.scheduled_date, min(ends))
        self.assertIn("cooling down", mail.smtp_routing_deferred_reason)

    def test_mail_no_server_could_take_fails_after_the_maximum_age(self):
        self.mail_server.smtp_port = closed_port()
        self.backup.smtp_port = closed_port()
        mail = self.create_mail()
        mail.send()
        self.assertEqual(mail.state, "outgoing")
        self.assertTrue(mail.smtp_routing_progress.get("stalled_since"), "the stall is recorded from its start")
        long_ago = fields.Datetime.to_string(fields.Datetime.now() - timedelta(hours=73))
        mail.smtp_routing_progress = {**mail.smtp_routing_progress, "stalled_since": long_ago}
        self.env["smtp_routing.server.state"].search([]).write({"cooldown_until": False})
        mail.scheduled_date = False
        mail.send()
        self.assertEqual(mail.state, "exception")
        self.assertIn("cooling down", mail.failure_reason)
        self.assertIn("72 hours", mail.failure_reason)

    def test_unexpected_error_keeps_stock_wording(self):
        IrMailServer = type(self.env["ir.mail_server"])

        def send_email(*args, **kwargs):
            raise ValueError("Unexpected issue")

        mail = self.create_mail()
        with patch.object(IrMailServer, "send_email", send_email):
            mail.send()
        self.assertEqual(
            (mail.state, mail.failure_reason, mail.failure_type), ("exception", "Unexpected issue", "unknown")
        )

    # -- claims ------------------------------------------------------------------------------------
    def test_mail_claimed_by_another_worker_is_left_alone(self):
        claimed, free = self._mails(2)
        claimed.smtp_routing_lease_until = fields.Datetime.now() + timedelta(minutes=5)
        (claimed | free).send()
        self.assertEqual((claimed.state, free.state), ("outgoing", "sent"))
        # a lease that ended (its worker died) no longer protects the mail
        claimed.smtp_routing_lease_until = fields.Datetime.now() - timedelta(seconds=1)
        claimed.send()
        self.assertEqual(claimed.state, "sent")
        self.assertFalse(claimed.smtp_routing_lease_until)

    # -- issue 14: recipients, windows, retries, claims, exact limits -----------------------------------
    def _partners(self, count, prefix="partner"):
        return self.env["res.partner"].create(
            [{"name": f"{prefix} {i}", "email": f"{prefix}{i}@example.com"} for i in range(count)]
        )

    def _post(self, partners):
        """A chatter message to ``partners``: one mail.mail with a notification per partner."""
        record = self.env["res.partner"].create({"name": "Document"})
        message = record.with_context(mail_notify_force_send=False).message_post(
            body="<p>Hello</p>",
            partner_ids=partners.ids,
            message_type="comment",
            subtype_xmlid="mail.mt_comment",
            mail_auto_delete=False,
        )
        mail = self.env["mail.mail"].search([("mail_message_id", "=", message.id)])
        self.assertEqual(len(mail), 1)
        return message, mail

    def test_greylisted_recipient_defers_only_that_mail_and_never_cools_the_server(self):
        self.smtpd.add_fault("RCPT", reply="450 4.2.0 Greylisted, try again later", match="grey@")
        mails = self._mails(4) | self.create_mail(email_to="grey@example.com", subject="Grey")
        grey = mails[-1]
        before = fields.Datetime.now()
        mails.send()
        self.assertEqual(mails.mapped("state"), ["sent"] * 4 + ["outgoing"])
        self.assertEqual(len(self.smtpd.messages), 4)
        self.assertEqual(self.backup_smtpd.connections, 0, "a greylisted recipient is not a reason to fail over")
        self.assertNotEqual(self.mail_server.smtp_routing_health, "cooling")
        self.assertFalse(self._state(self.mail_server).cooldown_until)
        # retried with back-off (5 minutes first), and the mail says when and why
        self.assertGreaterEqual(grey.scheduled_date, before + timedelta(minutes=5))
        self.assertLessEqual(grey.scheduled_date, fields.Datetime.now() + timedelta(minutes=5, seconds=1))
        self.assertIn("450", grey.smtp_routing_deferred_reason)
        self.assertIn(format_datetime(self.env, grey.scheduled_date), grey.smtp_routing_deferred_reason)
        self.assertTrue(self._triggers_at(grey.scheduled_date))
        # next try: greylisting passed; nothing else is sent again
        self.smtpd.clear_faults()
        grey.scheduled_date = fields.Datetime.now() - timedelta(seconds=1)
        self.env["mail.mail"].process_email_queue()
        self.assertEqual(grey.state, "sent")
        self.assertEqual(
            sorted(self.smtpd.recipients), sorted([f"client{i}@example.com" for i in range(4)] + ["grey@example.com"])
        )

    def test_one_address_of_a_message_refused_for_now_is_retried_alone(self):
        """One SMTP message to several addresses: the server takes some and refuses one (RCPT 4xx/5xx)."""
        self.backup.active = False
        self.smtpd.add_fault("RCPT", reply="450 4.2.0 Greylisted", match="grey@", times=1)
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 No such user", match="ghost@")
        mail = self.create_mail(email_to="ok@example.com, grey@example.com, ghost@example.com")
        mail.send()
        self.assertEqual(self.smtpd.recipients, ["ok@example.com"])
        self.assertEqual(mail.state, "outgoing", "grey@ waits for its retry: not lost")
        self.assertIn("450", mail.smtp_routing_deferred_reason)
        mail.scheduled_date = fields.Datetime.now() - timedelta(seconds=1)
        mail.send()
        self.assertEqual(self.smtpd.recipients, ["ok@example.com", "grey@example.com"], "ok@ is not sent twice")
        self.assertEqual(mail.state, "sent")
        self.assertIn("ghost@example.com", mail.smtp_routing_progress["failed"].get("to:ghost@example.com", "x"))

    def test_recipient_results_per_partner_show_on_notifications(self):
        self.backup.active = False
        partners = self._partners(3)
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 No such user here", match="partner1@")
        self.smtpd.add_fault("RCPT", reply="451 4.7.1 Greylisted", match="partner2@", times=1)
        message, mail = self._post(partners)
        mail.send()
        notifications = {n.res_partner_id: n for n in message.notification_ids}
        self.assertEqual(notifications[partners[0]].notification_status, "sent")
        self.assertEqual(notifications[partners[1]].notification_status, "exception")
        self.assertIn("No such user", notifications[partners[1]].failure_reason)
        self.assertEqual(notifications[partners[1]].failure_type, "mail_email_invalid")
        self.assertEqual(notifications[partners[2]].notification_status, "ready", "waits for its retry")
        self.assertEqual(mail.state, "outgoing")
        self.assertIn("451", mail.smtp_routing_deferred_reason)
        self.assertNotEqual(self.mail_server.smtp_routing_health, "cooling")
        # the retry sends only the deferred partner's message
        mail.scheduled_date = fields.Datetime.now() - timedelta(seconds=1)
        mail.send()
        self.assertEqual(mail.state, "sent")
        self.assertEqual(sorted(self.smtpd.recipients), ["partner0@example.com", "partner2@example.com"])
        self.assertEqual(notifications[partners[2]].notification_status, "sent")
        self.assertEqual(notifications[partners[1]].notification_status, "exception")

    def test_retry_gives_up_after_the_maximum_age_with_the_last_reason(self):
        self.env["ir.config_parameter"].set_param("smtp_routing.max_retry_age_hours", "72")
        self.smtpd.add_fault("RCPT", reply="450 4.2.0 Still greylisted", match="grey@")
        grey = self.create_mail(email_to="grey@example.com")
        grey.send()
        self.assertEqual(grey.state, "outgoing")
        progress = dict(grey.smtp_routing_progress)
        first = fields.Datetime.to_string(fields.Datetime.now() - timedelta(hours=73))
        progress["retry"] = {key: {**value, "first": first} for key, value in progress["retry"].items()}
        grey.write({"smtp_routing_progress": progress, "scheduled_date": fields.Datetime.now() - timedelta(seconds=1)})
        grey.send()
        self.assertEqual(grey.state, "exception")
        self.assertIn("Still greylisted", grey.failure_reason)
        self.assertIn("72", grey.failure_reason)

    def test_mail_larger_than_a_window_is_split_and_does_not_hold_back_others(self):
        self.backup.active = False
        self.mail_server.smtp_routing_hourly_max = 10
        partners = self._partners(11)
        big = self.create_mail(email_to=False, recipient_ids=[(6, 0, partners.ids)], subject="Big")
        small = self.create_mail(subject="Small")
        (big | small).send()
        self.assertEqual(len(self.smtpd.messages), 10, "ten partner messages in this hour")
        self.assertEqual((big.state, small.state), ("outgoing", "outgoing"))
        next_hour = self._state(self.mail_server).hour_start + timedelta(hours=1)
        self.assertEqual(big.scheduled_date, next_hour)
        # the next hour: the last partner message and the small mail, none twice
        state = self._state(self.mail_server)
        state.hour_start = state.hour_start - timedelta(hours=1)
        (big | small).scheduled_date = fields.Datetime.now() - timedelta(seconds=1)
        self.env["mail.mail"].process_email_queue()
        self.assertEqual((big.state, small.state), ("sent", "sent"))
        self.assertEqual(sorted(self.smtpd.recipients), sorted(partners.mapped("email") + ["bob@example.com"]))

    def test_mail_that_can_never_fit_fails_at_once_naming_the_limit(self):
        self.backup.active = False
        self.mail_server.write({"smtp_routing_daily_max": 2, "smtp_routing_count_recipients": True})
        huge = self.create_mail(email_to="a@example.com, b@example.com, c@example.com", subject="Huge")
        small = self.create_mail(subject="Small")
        (huge | small).send()
        self.assertEqual((huge.state, small.state), ("exception", "sent"))
        self.assertIn("daily", huge.failure_reason)
        self.assertIn("3", huge.failure_reason)
        self.assertIn("1 too many", huge.failure_reason)

    def test_configuration_error_fails_fast_and_does_not_cool_the_server(self):
        self.backup.active = False
        self.env["ir.config_parameter"].set_param("smtp_routing.tls_ca_file", "/nonexistent/ca.pem")
        self.mail_server.smtp_encryption = "starttls"
        mail = self.create_mail()
        mail.send()
        self.assertEqual(mail.state, "exception")
        self.assertIn("Configuration error", mail.failure_reason)
        self.assertIn("smtp_routing.tls_ca_file", mail.failure_reason)
        self.assertFalse(self._state(self.mail_server).cooldown_until)
        # an archived server named on the mail: fail with what to do, not defer forever
        self.env["ir.config_parameter"].set_param("smtp_routing.tls_ca_file", self.tls_cert.cert_path)
        self.mail_server.smtp_encryption = "none"
        self.mail_server.active = False
        mail = self.create_mail(mail_server_id=self.mail_server.id)
        mail.send()
        self.assertEqual(mail.state, "exception")
        self.assertIn("archived", mail.failure_reason)
        self.assertFalse(self._state(self.mail_server).cooldown_until)

    def test_unexplained_connect_error_fails_fast_and_does_not_cool_the_server(self):
        """Only transport, login, TLS, time-out and 4xx failures cool a server down (and defer its mail): an error
        nothing explains (a bug in an override, a broken setting) fails the mail with its text, as stock Odoo
        does, instead of deferring it forever."""
        self.backup.active = False
        Server = type(self.env["ir.mail_server"])
        mail = self.create_mail()
        with patch.object(Server, "connect", side_effect=ValueError("the certificate store is broken")):
            mail.send()
        self.assertEqual(mail.state, "exception")
        self.assertIn("the certificate store is broken", mail.failure_reason)
        self.assertFalse(self._state(self.mail_server).cooldown_until)

    def test_cooldown_of_zero_still_waits_a_few_seconds(self):
        self.mail_server.write({"smtp_port": closed_port(), "smtp_routing_cooldown_seconds": 0})
        self.backup.active = False
        mail = self.create_mail()
        before = fields.Datetime.now()
        mail.send()
        self.assertEqual(mail.state, "outgoing")
        self.assertGreaterEqual(mail.scheduled_date, before + timedelta(seconds=5))

    def test_failure_while_post_processing_one_mail_keeps_the_others(self):
        Mail = type(self.env["mail.mail"])
        original = Mail._postprocess_sent_message
        mails = self._mails(3)
        broken = mails[1]

        def postprocess(records, *args, **kwargs):
            if broken in records:
                raise ValueError("post-processing broke")
            return original(records, *args, **kwargs)

        with patch.object(Mail, "_postprocess_sent_message", postprocess):
            mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(len(self.smtpd.messages), 3)

    def test_claim_of_a_dead_worker_is_taken_at_once(self):
        dead, alive = self._mails(2)
        in_ten_minutes = fields.Datetime.now() + timedelta(minutes=10)
        self.env.cr.execute("SELECT pg_backend_pid()")
        own_pid = self.env.cr.fetchone()[0]
        dead.write({"smtp_routing_lease_until": in_ten_minutes, "smtp_routing_lease_pid": 2**31 - 1})
        alive.write({"smtp_routing_lease_until": in_ten_minutes, "smtp_routing_lease_pid": own_pid})
        (dead | alive).send()
        self.assertEqual((dead.state, alive.state), ("sent", "outgoing"), "a gone backend holds nothing")
        self.assertTrue(self._triggers_at(in_ten_minutes), "the cron is woken when the live claim ends")

    def test_reservation_is_given_back_on_fail_over(self):
        self.mail_server.smtp_routing_daily_max = 100
        self.smtpd.add_fault("MAIL", reply="421 4.7.0 Try again later, closing")
        mails = self._mails(5)
        mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(self._state(self.mail_server).day_count, 0, "nothing went through the primary")

    def test_reservation_is_given_back_when_the_run_rolls_back(self):
        """A database error after the reservation aborts the run (its transaction rolls back): the
        reservation, committed on its own, keeps only what really went."""
        self.backup.active = False
        self.mail_server.smtp_routing_daily_max = 100
        mails = self._mails(5)
        original = QueueRun._send_one
        calls = []

        def send_one(run, mail, *args, **kwargs):
            calls.append(mail.id)
            if len(calls) == 2:
                raise psycopg2.OperationalError("server closed the connection unexpectedly")
            return original(run, mail, *args, **kwargs)

        raised = None
        with patch.object(QueueRun, "_send_one", send_one):
            try:  # not assertRaises: Odoo's rolls back its block, the reservation with it
                mails.send()
            except psycopg2.OperationalError as error:
                raised = error
        self.assertIsNotNone(raised, "the run was aborted")
        self.assertTrue(self._state(self.mail_server), "the reservation was committed on its own")
        time.sleep(0.2)
        went = len(self.smtpd.messages)
        self.assertLessEqual(went, 1)
        self.assertEqual(self._state(self.mail_server).day_count, went, "the 4 or 5 not sent were given back")

    def test_reservation_of_a_dead_worker_is_given_back_once(self):
        """The ledger: what a killed worker reserved and had not started to send goes back, once; a live
        worker's reservation is left alone; a run that ends closes its own row."""
        self.backup.active = False
        self.mail_server.smtp_routing_daily_max = 100
        Reservation = self.env["smtp_routing.reservation"].sudo()
        items = [limits_tool.Item()] * 10
        _reservation, row_id = Reservation._smtp_routing_open(
            self.mail_server, items, (2**31 - 1, None), lambda _r: (10, 10, 0)
        )
        Reservation._smtp_routing_at_risk(row_id, 3, 3, 0)
        self.assertEqual(self._state(self.mail_server).day_count, 10)
        live = backend(self.env.cr)
        _reservation, live_id = Reservation._smtp_routing_open(self.mail_server, items[:2], live, lambda _r: (2, 2, 0))
        self.assertEqual(Reservation._smtp_routing_take_over(), 1)
        self.assertEqual(self._state(self.mail_server).day_count, 5, "7 of the dead worker's 10 given back")
        self.assertEqual(Reservation._smtp_routing_take_over(), 0)
        self.assertEqual(self._state(self.mail_server).day_count, 5, "never twice")
        self.assertEqual(Reservation.search([]).ids, [live_id], "a live worker's reservation stays")
        mails = self._mails(2)
        mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(self._state(self.mail_server).day_count, 7)
        self.assertEqual(Reservation.search([]).ids, [live_id], "the run closed its own row")

    def test_windows_follow_the_database_clock(self):
        self.backup.active = False
        self.mail_server.smtp_routing_hourly_max = 5
        self.env.cr.execute("SELECT date_trunc('hour', clock_timestamp() AT TIME ZONE 'UTC')")
        db_hour = self.env.cr.fetchone()[0]
        wrong = fields.Datetime.now() + timedelta(hours=3)
        with patch.object(fields.Datetime, "now", lambda *a: wrong):
            self.create_mail().send()
        self.assertEqual(self._state(self.mail_server).hour_start, db_hour)

    # -- issue 19: why a mail waits, stored as codes, read in the reader's language --------------------------
    def _spanish_reader(self):
        self.env["res.lang"]._activate_lang("es_ES")
        self.env["ir.module.module"]._load_module_terms(["smtp_routing"], ["es_ES"], overwrite=True)
        return new_test_user(
            self.env, login="lector_cola", groups="base.group_system", lang="es_ES", tz="America/Mexico_City"
        )

    def _send_as_english_user(self, mails):
        self.env.user.write({"lang": "en_US", "tz": "UTC"})  # the queue runs in its user's language
        mails.with_context(lang="en_US", tz="UTC").send()

    def _read(self, mail, user=None, lang="en_US", tz="UTC"):
        """(Deferred Because, Routing) as ``user`` reads them, in ``lang`` and ``tz``."""
        mail.invalidate_recordset()
        mail = (mail.with_user(user) if user else mail).with_context(lang=lang, tz=tz)
        return mail.smtp_routing_deferred_reason, mail.smtp_routing_explanation

    def _slot_words(self, mail, lang, tz):
        return format_datetime(self.env(context={"lang": lang}), mail.scheduled_date, tz=tz)

    def test_deferred_by_a_limit_reads_in_the_readers_language(self):
        self.backup.active = False
        self.mail_server.smtp_routing_hourly_max = 1
        mails = self._mails(2)
        self._send_as_english_user(mails)
        waiting = mails.filtered(lambda m: m.state == "outgoing")
        self.assertEqual(len(waiting), 1)
        slot = fields.Datetime.to_string(waiting.scheduled_date)
        reason = ["limit", {"server": self.mail_server.name, "limit": "hourly"}]
        self.assertEqual(waiting.smtp_routing_deferral, {"slot": slot, "reason": reason}, "codes, not words")
        self.assertFalse(waiting.smtp_routing_deferred_reason_text)
        self.assertEqual(waiting.smtp_routing_plan["notes"][-1], ["deferred", {"slot": slot, "reason": reason}])
        english, routing = self._read(waiting)
        words = f"{self.mail_server.name} reached its hourly limit"
        self.assertEqual(english, f"Deferred to {self._slot_words(waiting, 'en_US', 'UTC')}: {words}")
        self.assertIn(english, routing)
        reader = self._spanish_reader()
        spanish, routing = self._read(waiting, reader, "es_ES", reader.tz)
        when = self._slot_words(waiting, "es_ES", reader.tz)
        self.assertNotEqual(when, self._slot_words(waiting, "en_US", "UTC"), "the reader's date format and zone")
        self.assertIn(f"{when}: {self.mail_server.name} ha alcanzado su límite por hora", spanish)
        self.assertIn(spanish, routing)
        # the search filter "Deferred" finds it from its codes
        deferred = self.env["mail.mail"].search(
            [("id", "in", mails.ids), ("smtp_routing_deferred_reason", "!=", False)]
        )
        self.assertEqual(deferred, waiting)

    def test_cooling_server_deferral_reads_in_the_readers_language(self):
        self.mail_server.smtp_port = closed_port()
        self.backup.smtp_port = closed_port()
        mail = self.create_mail()
        self._send_as_english_user(mail)
        self.assertEqual(mail.state, "outgoing")
        reason = mail.smtp_routing_deferral["reason"]
        self.assertEqual(reason[0], "cooling")
        self.assertIn(reason[1]["server"], (self.mail_server.name, self.backup.name))
        english, _routing = self._read(mail)
        self.assertIn(f"{reason[1]['server']} is cooling down after a failure", english)
        reader = self._spanish_reader()
        spanish, routing = self._read(mail, reader, "es_ES", reader.tz)
        self.assertIn(f"{self._slot_words(mail, 'es_ES', reader.tz)}: {reason[1]['server']} está en pausa", spanish)
        self.assertIn("está en pausa tras un fallo", routing)
        self.assertNotIn("cooling down", spanish)

    def test_recipient_retry_deferral_reads_in_the_readers_language_with_the_reply_as_written(self):
        self.backup.active = False
        self.smtpd.add_fault("RCPT", reply="450 4.2.0 Greylisted, try again later", match="grey@")
        grey = self.create_mail(email_to="grey@example.com")
        self._send_as_english_user(grey)
        self.assertEqual(grey.state, "outgoing")
        code, params = grey.smtp_routing_deferral["reason"]
        self.assertEqual((code, params["count"], params["attempt"]), ("retry", 1, 2))
        self.assertEqual(params["reason"][0], "reply")
        reply = params["reason"][1]
        self.assertEqual((reply["category"], reply["smtp_code"]), ("temporary", 450))
        self.assertIn("Greylisted, try again later", reply["text"])
        english, _routing = self._read(grey)
        self.assertIn("1 recipient message(s) refused for now, next try 2: Temporary or rate-limited - 450", english)
        reader = self._spanish_reader()
        spanish, routing = self._read(grey, reader, "es_ES", reader.tz)
        self.assertIn("rechazado(s) de momento, próximo intento 2: Temporal o por límite de frecuencia - 450", spanish)
        self.assertIn("Greylisted, try again later", spanish, "the server's reply stays as it wrote it")
        self.assertIn(self._slot_words(grey, "es_ES", reader.tz), spanish)
        self.assertIn("de momento", routing)

    def test_mail_deferred_by_an_older_version_keeps_its_text(self):
        mail = self.create_mail()
        mail.write({"smtp_routing_deferral": False, "smtp_routing_deferred_reason_text": "Deferred to X UTC: old"})
        self.assertEqual(self._read(mail, lang="es_ES")[0], "Deferred to X UTC: old")
        other = self.create_mail()
        Mail, ids = self.env["mail.mail"], [("id", "in", (mail | other).ids)]
        self.assertEqual(Mail.search([*ids, ("smtp_routing_deferred_reason", "!=", False)]), mail)
        self.assertEqual(Mail.search([*ids, ("smtp_routing_deferred_reason", "=", False)]), other)
        # a deferred note of an older version's plan (its reason as text) still reads
        mail.smtp_routing_plan = {
            "plan": None,
            "notes": [["deferred", {"slot": "2026-01-02 03:04:05", "reason": "old"}]],
        }
        self.assertIn(": old", self._read(mail)[1])

    def test_upgrade_keeps_the_deferred_reason_of_older_mails(self):
        """The pre-migration moves the old text column to smtp_routing_deferred_reason_text (real DDL)."""
        path = Path(__file__).parents[1] / "migrations" / "18.0.0.1.2" / "pre-migrate.py"
        spec = importlib.util.spec_from_file_location("smtp_routing_pre_migrate_deferral", path)
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        mail = self.create_mail()
        mail.smtp_routing_deferred_reason_text = "Deferred by an older version"
        self.env.flush_all()
        cr = self.env.cr
        with cr.savepoint(flush=False):
            cr.execute(
                "ALTER TABLE mail_mail RENAME COLUMN smtp_routing_deferred_reason_text TO smtp_routing_deferred_reason"
            )
            migration.migrate(cr, "18.0.0.1.1")
            cr.execute("SELECT smtp_routing_deferred_reason_text FROM mail_mail WHERE id = %s", [mail.id])
            self.assertEqual(cr.fetchone()[0], "Deferred by an older version")
            migration.migrate(cr, "18.0.0.1.1")  # twice: nothing to do
        self.env.invalidate_all()
        self.assertEqual(mail.smtp_routing_deferred_reason, "Deferred by an older version")

    # -- what the server shows ----------------------------------------------------------------------------
    def test_server_shows_quota_next_slot_and_eta(self):
        self.backup.active = False
        self.mail_server.write(
            {"smtp_routing_daily_max": 10, "smtp_routing_flood_max": 2, "smtp_routing_flood_pause": 60}
        )
        mails = self._mails(5)
        mails.send()
        server = self.mail_server
        server.invalidate_recordset()
        self.assertEqual(server.smtp_routing_health, "limited")
        self.assertIn("Anti-flood: 0 left", server.smtp_routing_quota)
        self.assertIn("Today: 8 left", server.smtp_routing_quota)
        self.assertEqual(server.smtp_routing_queued_count, 3)
        flood_end = self._state(server).flood_last + timedelta(seconds=60)
        self.assertEqual(server.smtp_routing_next_slot, flood_end)
        self.assertEqual(server.smtp_routing_queue_eta, flood_end + timedelta(seconds=60))

    def test_limit_validation(self):
        cases = [
            ({"smtp_routing_daily_max": -1}, "cannot be negative"),
            ({"smtp_routing_throttle_max": 5, "smtp_routing_throttle_duration": 0}, "needs a duration"),
            ({"smtp_routing_flood_max": 5, "smtp_routing_flood_pause": 0}, "needs a pause"),
            ({"smtp_routing_timeout": 0}, "between 1 and 600"),
        ]
        for values, message in cases:
            with self.subTest(values=values), self.assertRaisesRegex(ValidationError, message):
                self.env["ir.mail_server"].create({"name": "Limits", "smtp_host": "127.0.0.1", **values})


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestHostileAndBadInput(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    def _batch(self, count):
        mails = self.env["mail.mail"]
        for index in range(count):
            mails |= self.create_mail(email_to=f"client{index}@example.com", subject=f"Batch {index}")
        return mails

    def test_message_over_the_size_limit_is_refused_before_sending(self):
        self.mail_server.max_email_size = 0.01  # 10 KB
        big = self.create_mail(body_html="<p>" + "x" * 30000 + "</p>", subject="Big")
        small = self.create_mail(subject="Small")
        (big | small).send()
        self.assertEqual((big.state, small.state), ("exception", "sent"))
        self.assertIn("Refused before sending", big.failure_reason)
        log = self.env["smtp_routing.delivery.log"].search([("mail_id", "=", big.id)])
        self.assertEqual(log.category, "too_large")
        self.assertEqual([m.message["Subject"] for m in self.smtpd.messages], ["Small"])

    def test_drop_in_the_middle_of_data_loses_nothing(self):
        for connections in (1, 4):
            with self.subTest(connections=connections):
                self.smtpd.clear()
                self.env["smtp_routing.server.state"].search([]).unlink()
                self.mail_server.smtp_routing_connections = connections
                self.smtpd.add_fault("MESSAGE", action="drop", times=1)
                mails = self._batch(4)
                mails.send()
                states = mails.mapped("state")
                self.assertEqual(states[0], "outgoing", "the dropped mail waits (deferred): not failed, not lost")
                if connections == 1:  # one connection: the session died, the rest waits too
                    self.assertEqual(set(states), {"outgoing"})
                else:  # mails already on the other connections may have gone; none failed
                    self.assertNotIn("exception", states)
                waiting = mails.filtered(lambda m: m.state == "outgoing")
                self.assertTrue(all(waiting.mapped("scheduled_date")))
                self.env["smtp_routing.server.state"].search([]).unlink()  # cooldown over
                waiting.write({"scheduled_date": False})
                mails.send()
                self.assertEqual(set(mails.mapped("state")), {"sent"})
                self.assertEqual(sorted(self.smtpd.recipients), [f"client{i}@example.com" for i in range(4)])

    def test_garbage_reply_fails_only_that_mail(self):
        self.smtpd.add_fault("RCPT", action="garbage", match="client1@")
        mails = self._batch(3)
        mails.send()
        self.assertEqual(mails.mapped("state"), ["sent", "exception", "sent"])
        self.assertEqual(sorted(self.smtpd.recipients), ["client0@example.com", "client2@example.com"])

    def test_server_that_never_answers_does_not_hang_the_worker(self):
        self.smtpd.add_fault("DATA", action="hang", seconds=10)
        self.mail_server.smtp_routing_timeout = 1
        started = time.monotonic()
        mail = self.create_mail()
        mail.send()
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(mail.state, "outgoing")
        log = self.env["smtp_routing.delivery.log"].search([("mail_id", "=", mail.id)])
        self.assertIn(log.category, ("timeout", "connection_refused"))

    def test_header_injection_is_refused_not_sent(self):
        for values in (
            {"subject": "Hello\r\nBcc: victim@evil.example"},
            {"email_from": "Ana\r\nBcc: victim@evil.example <ana@practice.example>"},
        ):
            with self.subTest(values=values):
                mail = self.create_mail(**values)
                mail.send()
                self.assertNotIn("victim@evil.example", self.smtpd.recipients)
                for received in self.smtpd.messages:
                    self.assertNotIn("victim@evil.example", str(received.message.get("Bcc", "")))
