# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Parallel connections, ESMTP PIPELINING and connection reuse in the queue run (real loopback servers
behind the latency proxy)."""

from datetime import timedelta

from odoo import fields
from odoo.tests import tagged

from ..testing.latency import LatencyProxy
from .common import LiveSmtpCase

ONE_WAY = 0.005  # 10 ms round trip: every lane is busy while the next mail is prepared


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestLanes(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.far_smtpd = cls.start_smtp_server(pipelining=True)
        cls.proxy = LatencyProxy(cls.far_smtpd.port, one_way=ONE_WAY).start()
        cls.addClassCleanup(cls.proxy.stop)
        cls.env["ir.mail_server"].search([]).write({"active": False})
        cls.far = cls.env["ir.mail_server"].create(
            {
                "name": "Far away",
                "smtp_host": cls.proxy.host,
                "smtp_port": cls.proxy.port,
                "smtp_encryption": "none",
                "sequence": 1,
                "smtp_routing_connections": 4,
            }
        )
        cls.backup_smtpd = cls.start_smtp_server(pipelining=True)
        cls.backup = cls.create_mail_server(cls.backup_smtpd, name="Backup", sequence=2)

    def setUp(self):
        super().setUp()
        for server in (self.far_smtpd, self.backup_smtpd):
            server.clear()
            server.clear_faults()
        self.proxy.reset_stats()

    def _mails(self, count, **values):
        mails = self.env["mail.mail"]
        for index in range(count):
            mails |= self.create_mail(email_to=f"client{index}@example.com", subject=f"Mail {index}", **values)
        return mails

    def _assert_each_once(self, mails, *servers):
        ids = [message_id for server in servers for message_id in server.message_ids]
        self.assertEqual(sorted(ids), sorted(mails.mapped("message_id")), "every mail exactly once")

    def test_parallel_connections_never_exceed_the_setting(self):
        mails = self._mails(40)
        mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self._assert_each_once(mails, self.far_smtpd, self.backup_smtpd)
        self.assertEqual(self.backup_smtpd.connections, 0)
        self.assertLessEqual(self.far_smtpd.peak_connections, 4)
        self.assertGreaterEqual(self.far_smtpd.peak_connections, 2, "a busy server gets more connections")
        self.assertLessEqual(self.far_smtpd.connections, 4, "connections are reused, never one per mail")
        # pipelined: MAIL FROM, RCPT TO and DATA in one flight, the message in a second one
        connect_flights = 3 * self.far_smtpd.connections  # greeting/EHLO, and QUIT
        self.assertLessEqual(self.proxy.round_trips, 2 * 40 + connect_flights)
        logs = self.env["smtp_routing.delivery.log"].search([("server_id", "=", self.far.id)])
        self.assertEqual(sorted(logs.mapped("mail_id").ids), sorted(mails.ids))
        self.assertEqual(set(logs.mapped("outcome")), {"sent"})
        self.assertEqual(set(mails.mapped("smtp_routing_server_id")), {self.far})

    def test_one_connection_sends_in_order(self):
        self.far.smtp_routing_connections = 1
        mails = self._mails(8)
        mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(self.far_smtpd.message_ids, mails.mapped("message_id"), "in the queue's order")
        self.assertEqual((self.far_smtpd.connections, self.far_smtpd.peak_connections), (1, 1))

    def test_connections_are_reused_across_groups(self):
        self.far.smtp_routing_connections = 1
        first = self._mails(3)
        second = self._mails(3, email_from="carol@example.com")  # another sender: another group
        (first | second).send()
        self.assertEqual(set((first | second).mapped("state")), {"sent"})
        self.assertEqual(self.far_smtpd.connections, 1, "one connection for both groups")
        senders = {received.mail_from for received in self.far_smtpd.messages}
        self.assertEqual(senders, {"alice@example.com", "carol@example.com"})

    def test_failure_on_one_lane_fails_over_and_nothing_goes_twice(self):
        # the 6th mail's RCPT TO gets a 421: that connection closes; the server cools down and
        # what it had not sent goes to the backup, in the same run
        self.far_smtpd.add_fault("RCPT", reply="421 4.7.0 Too busy, closing", match="client5@", times=1)
        mails = self._mails(20)
        mails.send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self._assert_each_once(mails, self.far_smtpd, self.backup_smtpd)
        self.assertIn("client5@example.com", self.backup_smtpd.recipients)
        self.assertTrue(self.backup_smtpd.messages, "the rest went to the backup")
        self.assertEqual(self.far.smtp_routing_health, "cooling")
        by_server = {mail: mail.smtp_routing_server_id for mail in mails}
        for received in self.backup_smtpd.messages:
            mail = mails.filtered(lambda m, r=received: m.message_id == r.message["Message-Id"])
            self.assertEqual(by_server[mail], self.backup)
        failed = self.env["smtp_routing.delivery.log"].search(
            [("server_id", "=", self.far.id), ("outcome", "=", "failed")]
        )
        self.assertEqual(len(failed), 1, "one failure, one cooldown")

    def test_permanent_failure_mid_pipeline_fails_that_mail_only(self):
        self.far_smtpd.add_fault("MESSAGE", reply="554 5.6.0 Message refused", match="Subject: Mail 3")
        self.far_smtpd.add_fault("MAIL", reply="553 5.7.1 Sender not allowed", match="bad@")
        mails = self._mails(8)
        bad = self.create_mail(email_from="bad@example.com", subject="Bad sender")
        (mails | bad).send()
        self.assertEqual(bad.state, "exception")
        self.assertIn("553", bad.failure_reason)
        self.assertEqual(self.backup_smtpd.connections, 0, "a permanent refusal is never retried elsewhere")
        self.assertNotEqual(self.far.smtp_routing_health, "cooling")
        self.assertEqual(mails[3].state, "exception")
        self.assertIn("554", mails[3].failure_reason)
        self.assertEqual(set((mails - mails[3]).mapped("state")), {"sent"})
        self.assertEqual(len(self.far_smtpd.messages), 7)

    def test_per_recipient_refusals_mid_pipeline(self):
        self.far_smtpd.add_fault("RCPT", reply="450 4.2.0 Greylisted", match="grey@", times=1)
        self.far_smtpd.add_fault("RCPT", reply="550 5.1.1 No such user", match="ghost@")
        mails = self._mails(6)
        mixed = self.create_mail(email_to="ok@example.com, grey@example.com, ghost@example.com", subject="Mixed")
        ghost = self.create_mail(email_to="ghost@example.com", subject="Ghost")
        before = fields.Datetime.now()
        (mails | mixed | ghost).send()
        self.assertEqual(set(mails.mapped("state")), {"sent"})
        self.assertEqual(ghost.state, "exception")
        self.assertIn("No such user", ghost.failure_reason)
        self.assertEqual(mixed.state, "outgoing", "grey@ waits for its retry")
        self.assertGreaterEqual(mixed.scheduled_date, before + timedelta(minutes=5))
        self.assertNotEqual(self.far.smtp_routing_health, "cooling")
        self.assertEqual(self.backup_smtpd.connections, 0)
        self.assertEqual(self.far_smtpd.recipients.count("ok@example.com"), 1)
        mixed.scheduled_date = fields.Datetime.now() - timedelta(seconds=1)
        mixed.send()
        self.assertEqual(mixed.state, "sent")
        self.assertEqual(self.far_smtpd.recipients.count("ok@example.com"), 1, "never sent twice")
        self.assertEqual(self.far_smtpd.recipients.count("grey@example.com"), 1)
        self.assertIn("to:ghost@example.com", mixed.smtp_routing_progress["failed"])

    def test_limits_hold_with_lanes(self):
        self.far.write({"smtp_routing_hourly_max": 5})
        self.backup.active = False
        mails = self._mails(12)
        mails.send()
        self.assertEqual(len(self.far_smtpd.messages), 5)
        self.assertEqual(len(mails.filtered(lambda m: m.state == "sent")), 5)
        self.assertEqual(len(mails.filtered(lambda m: m.state == "outgoing")), 7)
