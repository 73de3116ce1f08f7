# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""What the admin screens show: dashboard counts and quota bars, status filters, the Settings section."""

from datetime import timedelta

from odoo.exceptions import ValidationError
from odoo.tests import Form, tagged

from ..models.smtp_routing_server_state import db_now
from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestAdminScreens(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    def _send(self, count, **values):
        mails = self.env["mail.mail"]
        for index in range(count):
            mails |= self.create_mail(email_to=f"client{index}@example.com", subject=f"Mail {index}", **values)
        mails.send()
        return mails

    def test_dashboard_counts_today_and_fills_the_quota_bars(self):
        self.mail_server.write({"smtp_routing_daily_max": 10, "smtp_routing_hourly_max": 4})
        self._send(3)
        self.assertTrue(self.smtpd.wait_for(3))
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 No such user", times=1)
        self._send(1)
        self.mail_server.invalidate_recordset()
        server = self.mail_server
        self.assertEqual((server.smtp_routing_sent_today, server.smtp_routing_failed_today), (3, 1))
        # The bars count what the limits count: what went out (a refused message's slot is given back).
        self.assertEqual((server.smtp_routing_daily_used, server.smtp_routing_hourly_used), (3, 3))
        self._send(1)
        server.invalidate_recordset()
        self.assertEqual(server.smtp_routing_health, "limited", "the hourly cap of 4 is used up")
        # The dashboard's kanban and the server's actions load.
        self.env["ir.mail_server"].get_views([(self.env.ref("smtp_routing.ir_mail_server_view_kanban").id, "kanban")])
        failed = server.action_smtp_routing_history_failed()
        self.assertEqual(failed["domain"], [("server_id", "=", server.id)])
        self.assertEqual(failed["context"], {"search_default_filter_today": 1, "search_default_filter_failed": 1})
        self.assertEqual(
            self.env["smtp_routing.delivery.log"].search(failed["domain"] + [("outcome", "=", "failed")]).category,
            "recipient_rejected",
        )

    def test_quota_bars_say_what_they_count(self):
        """Issue 19: "15 sent today" beside "Today (UTC) 0 / 200"; "Throttle (1 Hours)" is not English."""
        self._send(3)
        self.assertTrue(self.smtpd.wait_for(3))
        # before the limit existed (the test's database clock stands still at the transaction's start)
        self.env["smtp_routing.delivery.log"].search([]).date = db_now(self.env.cr) - timedelta(seconds=1)
        server = self.mail_server
        server.write({"smtp_routing_daily_max": 200, "smtp_routing_throttle_max": 10})
        server.write({"smtp_routing_throttle_duration": 1, "smtp_routing_throttle_unit": "hours"})
        self.assertEqual((server.smtp_routing_sent_today, server.smtp_routing_daily_used), (3, 0))
        self.assertEqual(
            server.smtp_routing_daily_caption,
            "200 per day (UTC) - counting since the limit was set (3 went out in this window in all)",
        )
        self.assertEqual(
            server.smtp_routing_throttle_caption, "10 per hour - window not started: it starts with the next mail"
        )
        self.assertFalse(server.smtp_routing_hourly_caption, "no hourly cap, no bar")
        self._send(1)
        server.invalidate_recordset()
        self.assertEqual((server.smtp_routing_throttle_used, server.smtp_routing_throttle_caption), (1, "10 per hour"))
        server.write({"smtp_routing_throttle_max": 500, "smtp_routing_throttle_duration": 24})
        server.invalidate_recordset()
        self.assertTrue(server.smtp_routing_throttle_caption.startswith("500 per 24 hours"))
        server.write({"smtp_routing_hourly_max": 50})
        server.invalidate_recordset()
        self.assertEqual(
            server.smtp_routing_hourly_caption,
            "50 per clock hour - counting since the limit was set (4 went out in this window in all)",
        )
        # The dashboard shows the captions, not "Throttle (1 Hours)".
        arch = self.env["ir.mail_server"].get_views(
            [(self.env.ref("smtp_routing.ir_mail_server_view_kanban").id, "kanban")]
        )["views"]["kanban"]["arch"]
        self.assertIn("smtp_routing_throttle_caption", arch)
        self.assertNotIn("Throttle (", arch)

    def test_status_filters_search_computed_statuses(self):
        Server = self.env["ir.mail_server"]
        self.assertIn(self.mail_server, Server.search([("smtp_routing_health", "=", "never")]))
        self.env["smtp_routing.server.state"]._smtp_routing_failed(self.mail_server, "connection_refused")
        self.mail_server.invalidate_recordset()
        self.assertEqual(Server.search([("smtp_routing_health", "=", "cooling")]), self.mail_server)
        self.assertNotIn(self.mail_server, Server.search([("smtp_routing_health", "!=", "cooling")]))
        self.env["smtp_routing.dns.check"].create(
            {"server_id": self.mail_server.id, "domain": "example.com", "status": "fail", "report": "no SPF"}
        )
        self.assertEqual(Server.search([("smtp_routing_dns_status", "in", ("fail", "warn"))]), self.mail_server)
        with self.assertRaises(Exception):  # noqa: B017 - UserError: only = and in make sense
            Server.search([("smtp_routing_health", "ilike", "cool")])

    def test_routing_tab_lists_where_the_server_is_used(self):
        route = self.env["smtp_routing.route"].create(
            {"name": "Spanish clients", "line_ids": [(0, 0, {"server_id": self.mail_server.id})]}
        )
        grant = self.env["smtp_routing.send_as"].create(
            {"address": "support@example.com", "server_id": self.mail_server.id}
        )
        self.assertEqual(self.mail_server.smtp_routing_route_ids, route)
        self.assertEqual(self.mail_server.smtp_routing_send_as_ids, grant)

    def test_settings_section_reads_and_writes_the_parameters(self):
        ICP = self.env["ir.config_parameter"]
        with Form(self.env["res.config.settings"]) as settings:
            self.assertTrue(settings.smtp_routing_enforce_send_as)
            self.assertEqual(settings.smtp_routing_log_retention_days, 90)
            settings.smtp_routing_enforce_send_as = False
            settings.smtp_routing_allow_personal_servers = True
            settings.smtp_routing_log_retention_days = 0
            settings.smtp_routing_dns_nameserver = " 127.0.0.1:5353 "
        settings.save().execute()
        # Off and 0 are stored as such: a config_parameter field would delete them and bring the defaults back.
        self.assertEqual(ICP.get_param("smtp_routing.enforce_send_as"), "0")
        self.assertEqual(ICP.get_param("smtp_routing.allow_personal_servers"), "1")
        self.assertEqual(ICP.get_param("smtp_routing.log_retention_days"), "0")
        self.assertEqual(ICP.get_param("smtp_routing.dns_nameserver"), "127.0.0.1:5353")
        again = self.env["res.config.settings"].create({})
        self.assertFalse(again.smtp_routing_enforce_send_as)
        self.assertEqual(again.smtp_routing_log_retention_days, 0)

    def test_smaller_screen_truths(self):
        """Issue 19, the smaller things."""
        ICP = self.env["ir.config_parameter"]
        ICP.set_param("base_setup.default_external_email_server", False)
        # Odoo's own box is ticked while servers route mail
        self.assertTrue(self.env["res.config.settings"].create({}).external_email_server_default)
        views = self.env["res.config.settings"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("d-flex align-items-baseline gap-2", views, "each checkbox on the line of its label")
        # "resets" in the reader's time zone, as Next Free Slot
        server = self.mail_server
        server.with_context(tz="Europe/Madrid").smtp_routing_hourly_max = 4
        self._send(1)
        quota = server.with_context(tz="Europe/Madrid")
        quota.invalidate_recordset()
        self.assertIn("resets", quota.smtp_routing_quota)
        self.assertNotIn("UTC", quota.smtp_routing_quota)
        # the batch interval only shows while batching is on; the cooldown is not called a pause
        form = self.env["ir.mail_server"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertRegex(form, r'name="smtp_routing_batch_interval"[^>]*invisible="not smtp_routing_batch_max_count')
        cooldown = self.env["ir.mail_server"]._fields["smtp_routing_cooldown_seconds"]
        self.assertEqual(cooldown.string, "Skip After a Failure (s)")
        # the DNS report names each check once
        from ..models.smtp_routing_dns_check import _dns_line

        self.assertEqual(_dns_line("mx", "MX: mx.example; all offer STARTTLS"), "MX: mx.example; all offer STARTTLS")
        self.assertEqual(_dns_line("dmarc", "no DMARC record"), "DMARC: no DMARC record")

    def test_settings_refuse_a_dns_server_name_and_a_negative_retention(self):
        with self.assertRaisesRegex(ValidationError, "must be an IP address"):
            self.env["res.config.settings"].create({"smtp_routing_dns_nameserver": "dns.example.com"})
        with self.assertRaisesRegex(ValidationError, "0 days"):
            self.env["res.config.settings"].create({"smtp_routing_log_retention_days": -1})
