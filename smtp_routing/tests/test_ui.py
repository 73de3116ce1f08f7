# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""The browser tour: an admin creates a server, tests it and reads its history; a user picks it.

Runs in a real headless Chromium through Odoo's ``HttpCase.start_tour`` and skips, saying so,
when no Chromium is installed (``apt-get install chromium``). The SMTP server is a real one on
127.0.0.1 and every assertion is made in Python, on what the browser's clicks stored and sent.
"""

import email
import logging
from unittest import skipUnless
from unittest.mock import patch

from odoo import Command, modules
from odoo.tests import HttpCase, tagged
from odoo.tools import config

from odoo.addons.bus.websocket import WebsocketConnectionHandler

from ..testing.browser import find_chromium
from ..testing.smtpd import SmtpServer

_logger = logging.getLogger(__name__)
CHROMIUM = find_chromium()


@tagged("post_install", "-at_install")
@skipUnless(CHROMIUM, "smtp_routing browser tour: Chromium is not installed (apt-get install chromium)")
class TestTour(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Really deliver (see common.LiveSmtpCase), but keep the websocket off as in any test.
        cls.startClassPatcher(patch.object(modules.module, "current_test", False))
        cls.startClassPatcher(
            patch.object(WebsocketConnectionHandler, "websocket_allowed", classmethod(lambda cls, request: False))
        )
        cls.startClassPatcher(patch.dict(config.options, {"smtp_server": "", "smtp_port": 0}))
        cls.smtpd = SmtpServer().start()
        cls.addClassCleanup(cls.smtpd.stop)
        cls.env["ir.mail_server"].search([]).write({"sequence": 1000})
        cls.user = cls.env["res.users"].create(
            {
                "name": "Carmen Consultant",
                "login": "tour_consultant",
                "password": "tour_consultant",
                "email": "carmen@practice.example",
                "groups_id": [(6, 0, cls.env.ref("base.group_user").ids)],
            }
        )

    def start_smtp_tour(self, tour, login, url="/odoo"):
        host = f"{self.smtpd.host}:{self.smtpd.port}"
        code = f"sessionStorage.setItem('smtp_routing_tour_host', {host!r}); odoo.startTour({tour!r}, {{}})"
        self.start_tour(url, tour, login=login, code=code, timeout=120)

    def received_by(self, address):
        return [received for received in self.smtpd.messages if address in received.rcpt_tos]

    def test_admin_sets_up_a_server_and_a_user_picks_it(self):
        self.start_smtp_tour("smtp_routing_admin_tour", login="admin")
        self.env.invalidate_all()
        server = self.env["ir.mail_server"].search([("name", "=", "Tour Relay")])
        self.assertEqual(len(server), 1, "the tour's form saved one server")
        self.assertEqual((server.smtp_host, server.smtp_port), ("127.0.0.1", self.smtpd.port))
        self.assertTrue(server.smtp_routing_user_selectable)
        [test_mail] = self.received_by("client@example.com")
        message = email.message_from_bytes(test_mail.content)
        self.assertEqual(message["From"], "Practice Office <office@practice.example>")
        log = self.env["smtp_routing.delivery.log"].search([("server_id", "=", server.id)])
        self.assertEqual(log.mapped("outcome"), ["sent"])
        self.assertEqual(log.source, "test")

        self.start_smtp_tour("smtp_routing_user_tour", login="tour_consultant")
        self.env.invalidate_all()
        self.assertEqual(self.user.smtp_routing_server_id, server)
        [own_test] = self.received_by("carmen@practice.example")
        self.assertIn("carmen@practice.example", email.message_from_bytes(own_test.content)["From"])
        self.assertEqual(own_test.mail_from, "carmen@practice.example")
        # The test runner's "browser tour" summary line looks for this.
        _logger.info("smtp_routing browser tour passed in %s", CHROMIUM)

    def test_a_failing_server_says_so_and_the_composer_offers_routes(self):
        """Issue 19: a failing server's badge on the dashboard and form; "Send Through" in a new composer."""
        broken = self.env["ir.mail_server"].create(
            {"name": "Broken Relay", "smtp_host": "127.0.0.1", "smtp_port": self.smtpd.port, "sequence": 2000}
        )
        Log = self.env["smtp_routing.delivery.log"]
        for _attempt in range(2):
            Log.with_context(smtp_routing_source="test")._smtp_routing_record(
                server_id=broken.id, category="auth", reply="535 5.7.8 Authentication credentials invalid"
            )
        Log._smtp_routing_flush()
        self.start_smtp_tour("smtp_routing_failing_server_tour", login="admin")

        self.env["smtp_routing.route"].create(
            {
                "name": "Client Letters",
                "allow_in_composer": True,
                "line_ids": [Command.create({"server_id": broken.id})],
            }
        )
        self.user.groups_id = [Command.link(self.env.ref("base.group_partner_manager").id)]  # writes to contacts
        contact = self.env["res.partner"].create({"name": "Tour Client", "email": "tour.client@example.com"})
        url = f"/odoo/res.partner/{contact.id}"
        self.start_smtp_tour("smtp_routing_composer_tour", login="tour_consultant", url=url)

    def test_a_spanish_user_is_refused_send_as_in_spanish(self):
        """Issue 19: a non-admin user reading Odoo in Spanish types a From they may not use in the list composer.

        The refusal comes before anything is posted or sent, in Spanish, and names no admin menu path.
        """
        self.env["res.lang"]._activate_lang("es_ES")
        self.env["ir.module.module"]._load_module_terms(["smtp_routing"], ["es_ES"], overwrite=True)
        lucia = self.env["res.users"].create(
            {
                "name": "Lucía Asesora",
                "login": "tour_lucia",
                "password": "tour_lucia",
                "email": "lucia@practice.example",
                "lang": "es_ES",
                "groups_id": [
                    Command.set((self.env.ref("base.group_user") | self.env.ref("base.group_partner_manager")).ids)
                ],
            }
        )
        self.assertFalse(lucia.has_group("base.group_system"), "the plain-user wording, not the admin's")
        contact = self.env["res.partner"].create({"name": "Tour Client", "email": "tour.client@example.com"})
        mails_before = self.env["mail.mail"].sudo().search_count([])
        self.start_smtp_tour(
            "smtp_routing_send_as_spanish_tour", login="tour_lucia", url="/odoo/action-base.action_partner_form"
        )
        self.assertEqual(self.received_by(contact.email), [], "nothing reached the SMTP server")
        self.assertEqual(self.env["mail.mail"].sudo().search_count([]), mails_before, "nothing was queued")
        self.assertFalse(
            self.env["mail.message"].search(
                [("model", "=", "res.partner"), ("res_id", "=", contact.id), ("subject", "=", "Presupuesto")]
            ),
            "nothing was posted",
        )
