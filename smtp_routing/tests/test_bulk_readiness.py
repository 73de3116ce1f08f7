# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""A bulk route's readiness for Gmail/Yahoo/Outlook.com bulk-sender rules (real DNS), and its daily volumes."""

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from ..testing.dnsd import DnsServer
from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestBulkReadiness(LiveSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = DnsServer().start()
        cls.addClassCleanup(cls.dns.stop)
        cls.env["ir.config_parameter"].set_param("smtp_routing.dns_nameserver", f"127.0.0.1:{cls.dns.port}")
        cls.env["ir.config_parameter"].set_param("web.base.url", "https://odoo.practice.example")
        cls.env["mail.alias.domain"].create({"name": "practice.example"})  # bounce@practice.example
        cls.env.company.alias_domain_id = cls.env["mail.alias.domain"].search([("name", "=", "practice.example")])
        cls.mail_server.from_filter = "practice.example"
        cls.key = cls.env["smtp_routing.dkim.key"].create({"domain": "practice.example", "selector": "s1"})
        cls.route = cls.env["smtp_routing.route"].create(
            {
                "name": "Mailshots",
                "purpose_ids": [(6, 0, cls.env.ref("smtp_routing.purpose_bulk").ids)],
                "line_ids": [(0, 0, {"server_id": cls.mail_server.id})],
            }
        )

    def setUp(self):
        super().setUp()
        self.dns.records.clear()
        self.dns.add("practice.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        self.dns.add("s1._domainkey.practice.example", "TXT", self.key.dns_record)
        self.dns.add("_dmarc.practice.example", "TXT", "v=DMARC1; p=none; rua=mailto:dmarc@practice.example")

    def _check(self):
        self.route.action_smtp_routing_check_readiness()
        return self.route.readiness_status, self.route.readiness_report

    def test_a_ready_route(self):
        status, report = self._check()
        self.assertEqual(status, "ok", report)
        self.assertEqual(report.splitlines()[0], "Loopback primary - practice.example:")
        for line in (
            "[OK] SPF aligned: SPF passes for practice.example, aligned with practice.example",
            "[OK] DKIM aligned: DKIM signed by d=practice.example (selector s1): aligned",
            "[OK] One-click unsubscribe:",
            "[OK] TLS: STARTTLS with a verified certificate",
        ):
            self.assertIn(line, report)
        self.assertTrue(self.route.readiness_checked_at)

    def test_what_a_route_lacks_is_named(self):
        del self.dns.records[("_dmarc.practice.example", "TXT")]
        self.env["ir.config_parameter"].set_param("web.base.url", "http://odoo.practice.example")
        status, report = self._check()
        self.assertEqual(status, "fail")
        self.assertIn("[FAIL] DMARC: no DMARC record", report)
        self.assertIn("[FAIL] One-click unsubscribe: one-click links would start with http://", report)
        self.dns.records[("practice.example", "TXT")] = ["v=spf1 ip4:192.0.2.1 -all"]
        self.key.active = False
        _status, report = self._check()
        self.assertIn("[FAIL] SPF aligned: SPF of practice.example does not pass", report)
        self.assertIn("[FAIL] DKIM aligned: no DKIM key for practice.example in Odoo", report)

    def test_only_administrators_check_readiness(self):
        """Internal users may read routes, and so call the check over JSON-RPC: it looks up DNS as superuser,
        so it refuses them before any lookup (not only when it writes the report)."""
        self.route.allow_in_composer = True  # a route internal users may read (and pick in the composer)
        user = new_test_user(self.env, login="readiness_internal", groups="base.group_user")
        self.dns.queries.clear()
        with self.assertRaisesRegex(AccessError, "Only Settings administrators"):
            self.route.with_user(user).action_smtp_routing_check_readiness()
        self.assertEqual(self.dns.queries, [], "no DNS lookup made for an internal user")
        self.assertFalse(self.route.readiness_status)

    def test_internal_users_do_not_read_readiness_reports(self):
        """The report names the route's servers, their sender domains and what their DNS lacks: it is for
        administrators, even on a route internal users may read (and pick in the composer)."""
        self.route.allow_in_composer = True
        self.assertIn("Loopback primary", self._check()[1])
        user = new_test_user(self.env, login="readiness_reader", groups="base.group_user")
        route = self.route.with_user(user)
        self.assertEqual(route.read(["name"])[0]["name"], "Mailshots")
        for name in ("readiness_report", "readiness_status", "readiness_checked_at"):
            with self.subTest(field=name), self.assertRaises(AccessError):
                route.search_read([("id", "=", self.route.id)], [name])

    def test_routes_without_bulk_are_not_checked(self):
        personal = self.env["smtp_routing.route"].create(
            {
                "name": "Personal",
                "purpose_ids": [(6, 0, self.env.ref("smtp_routing.purpose_personal").ids)],
                "line_ids": [(0, 0, {"server_id": self.mail_server.id})],
            }
        )
        self.assertFalse(personal.carries_bulk)
        personal.action_smtp_routing_check_readiness()
        self.assertFalse(personal.readiness_status)

    def test_daily_volume_per_big_receiver(self):
        for to in ("a@gmail.com, b@googlemail.com", "c@yahoo.fr", "d@hotmail.co.uk", "e@example.com"):
            self.create_mail(email_from="office@practice.example", email_to=to).send()
        self.assertTrue(self.smtpd.wait_for(4))
        self.smtpd.add_fault("RCPT", reply="550 5.1.1 User unknown", match="refused@")
        self.create_mail(email_from="office@practice.example", email_to="refused@gmail.com").send()
        self.route.invalidate_recordset()
        self.assertEqual(
            (self.route.volume_gmail, self.route.volume_yahoo, self.route.volume_microsoft, self.route.bulk_threshold),
            (2, 1, 1, 5000),
        )
        self.assertEqual(
            self.mail_server.smtp_routing_bulk_volume, "Gmail 2 / 5,000 · Yahoo 1 / 5,000 · Outlook.com 1 / 5,000"
        )
        other = self.create_mail_server(self.smtpd, name="Not in a bulk route", sequence=90)
        self.assertFalse(other.smtp_routing_bulk_volume)
