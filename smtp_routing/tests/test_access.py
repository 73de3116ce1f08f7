# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Who may see and use what, checked through model calls as each kind of user."""

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .common import LiveSmtpCase

MODELS = [
    "ir.mail_server",
    "smtp_routing.route",
    "smtp_routing.send_as",
    "smtp_routing.delivery.log",
    "smtp_routing.dkim.key",
    "smtp_routing.dns.check",
    "smtp_routing.server.state",
]


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestAccess(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_b = cls.env["res.company"].create({"name": "Company B", "email": "info@b.example"})
        cls.sink_b = cls.start_smtp_server()
        cls.server_b = cls.create_mail_server(
            cls.sink_b, name="B relay", sequence=0, company_id=cls.company_b.id, smtp_routing_user_selectable=True
        )
        cls.mail_server.smtp_routing_user_selectable = True
        cls.route_b = cls.env["smtp_routing.route"].create(
            {
                "name": "B route",
                "company_id": cls.company_b.id,
                "allow_in_composer": True,
                "line_ids": [Command.create({"server_id": cls.server_b.id})],
            }
        )
        cls.portal = new_test_user(cls.env, login="portal_u", groups="base.group_portal")
        cls.public = cls.env.ref("base.public_user")
        cls.internal = new_test_user(cls.env, login="internal_u", groups="base.group_user")
        cls.admin_a = new_test_user(
            cls.env,
            login="admin_a",
            groups="base.group_system",
            company_id=cls.env.company.id,
            company_ids=[Command.set(cls.env.company.ids)],
        )

    def test_portal_and_public_see_nothing(self):
        for user in (self.portal, self.public):
            for model in MODELS:
                with self.subTest(user=user.login, model=model), self.assertRaises(AccessError):
                    self.env[model].with_user(user).search([])

    def test_internal_users_see_only_what_preferences_need(self):
        Server = self.env["ir.mail_server"].with_user(self.internal)
        self.assertEqual(Server.search([]), self.mail_server, "offered servers of their own company only")
        for model in (
            "smtp_routing.send_as",
            "smtp_routing.delivery.log",
            "smtp_routing.dkim.key",
            "smtp_routing.dns.check",
            "smtp_routing.server.state",
        ):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.internal).search([])
        with self.assertRaises(AccessError):
            Server.browse(self.mail_server.id).write({"smtp_host": "evil.example"})
        with self.assertRaises(AccessError):
            self.env["smtp_routing.route"].with_user(self.internal).create({"name": "mine"})
        self.assertFalse(
            self.env["smtp_routing.route"].with_user(self.internal).search([]),
            "company B's route is not offered in company A",
        )

    def test_admin_of_one_company_does_not_see_the_others_routes(self):
        # (servers stay visible to every Settings administrator, as in stock Odoo: see the security XML)
        self.assertNotIn(self.route_b, self.env["smtp_routing.route"].with_user(self.admin_a).search([]))

    def test_company_b_server_never_carries_company_a_mail(self):
        mail = self.create_mail(email_from="office@a.example")
        mail.send()
        self.assertEqual(mail.state, "sent")
        self.assertEqual(mail.smtp_routing_server_id, self.mail_server)
        self.assertEqual(self.sink_b.messages, [])
