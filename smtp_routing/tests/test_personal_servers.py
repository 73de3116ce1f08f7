# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Users' own SMTP servers (issue 13): no request forgery, no password in clear, nothing about others.

A user who may enter their own server chooses its host: it must be on the internet
(never loopback, link-local or a private range, unless an administrator allows it),
"Send me a test" shows the outcome, not the remote server's words, the password is
encrypted from the moment the wizard receives it, and uninstalling archives these
servers. Validation messages never name another user's server.
"""

from odoo.exceptions import UserError, ValidationError
from odoo.tests import new_test_user, tagged
from odoo.tests.common import TransactionCase
from odoo.tools import sql

from .. import hooks
from ..models.smtp_routing_secret_mixin import _keyring
from ..tools import secrets
from .common import LiveSmtpCase, database_occurrences

NEEDLE = "Personal-Needle-3e8a-Never-Stored"


def _decrypt(server):
    return secrets.decrypt(server.sudo().smtp_routing_pass_encrypted, _keyring())


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestPersonalServers(LiveSmtpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].set_param("smtp_routing.allow_personal_servers", "1")
        cls.user = new_test_user(
            cls.env,
            login="ana",
            email="ana@practice.example",
            groups="base.group_user,base.group_allow_export",
            context={"no_reset_password": True},
        )
        cls.mail_server.smtp_routing_user_selectable = True

    def _personal_server(self, sink, password="ana-own-secret"):
        wizard = (
            self.env["smtp_routing.personal.server"]
            .with_user(self.user)
            .create(
                {
                    "smtp_host": f"[{sink.host}]:{sink.port}",
                    "smtp_encryption": "none",
                    "smtp_user": "ana@practice.example",
                    "smtp_pass": password,
                }
            )
        )
        wizard.action_save()
        return self.user.smtp_routing_server_id

    def test_first_setup_does_not_talk_of_a_current_password(self):
        """Issue 19: "leave empty to keep the current one" showed on first setup, when there is none."""
        Wizard = self.env["smtp_routing.personal.server"].with_user(self.user)
        arch = Wizard.get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertNotIn("leave empty to keep the current one", arch)
        self.assertFalse(Wizard.default_get(["password_stored"]).get("password_stored"))
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")
        self._personal_server(self.start_smtp_server(credentials={"ana@practice.example": "ana-own-secret"}))
        self.assertTrue(Wizard.default_get(["password_stored"])["password_stored"], "now there is one to keep")

    def test_personal_servers_on_private_networks_are_refused(self):
        Wizard = self.env["smtp_routing.personal.server"].with_user(self.user)
        for host, kind in (
            ("[127.0.0.1]:2525", "loopback"),
            ("localhost", "loopback"),
            ("169.254.169.254", "link-local"),
            ("10.0.0.25", "private"),
            ("[::1]:587", "loopback"),
        ):
            with self.subTest(host=host), self.assertRaisesRegex(UserError, kind) as caught:
                Wizard.create({"smtp_host": host, "smtp_user": "ana@practice.example"}).action_save()
            self.assertIn("administrator", str(caught.exception))
        self.assertFalse(self.env["ir.mail_server"].search([("smtp_routing_owner_id", "=", self.user.id)]))
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")
        own = self._personal_server(self.start_smtp_server(credentials={"ana@practice.example": "ana-own-secret"}))
        self.assertEqual(own.smtp_routing_owner_id, self.user)

    def test_send_me_a_test_cannot_reach_a_private_address(self):
        sink = self.start_smtp_server(credentials={"ana@practice.example": "ana-own-secret"})
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")
        self._personal_server(sink)
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "0")
        with self.assertRaisesRegex(UserError, "loopback"):
            self.user.with_user(self.user).action_smtp_routing_test_own_server()
        self.assertEqual(sink.connections, 0)
        # below the button, the connection itself refuses too (a name may resolve elsewhere by then)
        with self.assertRaisesRegex(UserError, "loopback"):
            self.env["ir.mail_server"].connect(mail_server_id=self.user.smtp_routing_server_id.id)
        self.assertEqual(sink.connections, 0)

    def test_users_test_shows_the_outcome_not_the_servers_reply(self):
        self.user.smtp_routing_server_id = self.mail_server
        self.smtpd.add_fault("MAIL", reply="550 5.7.1 Banner-Reply-Secret-Text of relay.internal")
        action = self.user.with_user(self.user).action_smtp_routing_test_own_server()
        message = action["params"]["message"]
        self.assertIn("Sender rejected", message)
        self.assertNotIn("Banner-Reply-Secret-Text", message)
        self.assertNotIn("relay.internal", message)

    def test_personal_server_password_never_stored_in_plaintext(self):
        secret = "Ana-Wizard-Needle-51b0"
        sink = self.start_smtp_server(credentials={"ana@practice.example": secret})
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")
        wizard = (
            self.env["smtp_routing.personal.server"]
            .with_user(self.user)
            .create(
                {
                    "smtp_host": f"[{sink.host}]:{sink.port}",
                    "smtp_encryption": "none",
                    "smtp_user": "ana@practice.example",
                    "smtp_pass": secret,
                }
            )
        )
        self.env.flush_all()
        self.env.cr.execute("SELECT row_to_json(w)::text FROM smtp_routing_personal_server w WHERE id = %s", wizard.ids)
        row = self.env.cr.fetchone()[0]
        self.assertNotIn(secret, row)
        self.assertIn(secrets.PREFIX, row, "the wizard keeps it encrypted")
        self.assertEqual(database_occurrences(self.env, secret), [])
        wizard.action_save()
        own = self.user.smtp_routing_server_id
        self.assertEqual(_decrypt(own), secret)
        action = self.user.with_user(self.user).action_smtp_routing_test_own_server()
        self.assertEqual(action["params"]["type"], "success", action["params"]["message"])
        self.assertEqual([m.auth_user for m in sink.messages], ["ana@practice.example"])
        self.assertEqual(database_occurrences(self.env, secret), [])

    def test_uninstall_archives_personal_servers(self):
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")
        own = self._personal_server(self.start_smtp_server())
        self.assertEqual(hooks.archive_personal_servers(self.env), 1)
        own.invalidate_recordset()
        self.mail_server.invalidate_recordset()
        self.assertFalse(own.active, "no longer a server others could be routed through")
        self.assertTrue(self.mail_server.active)


@tagged("post_install", "-at_install", "smtp_routing")
class TestPersonalServerMessages(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = new_test_user(
            cls.env,
            login="exporter",
            email="exporter@practice.example",
            groups="base.group_user,base.group_allow_export",
            context={"no_reset_password": True},
        )

    def test_plaintext_left_in_the_wizard_table_by_an_older_version_is_dropped(self):
        cr = self.env.cr
        cr.execute("ALTER TABLE smtp_routing_personal_server ADD COLUMN smtp_pass varchar")
        cr.execute(
            "INSERT INTO smtp_routing_personal_server (smtp_host, smtp_port, smtp_encryption, smtp_pass) "
            "VALUES ('smtp.example.com', 587, 'starttls', %s)",
            [NEEDLE],
        )
        self.env["smtp_routing.personal.server"]._smtp_routing_drop_plaintext_column()  # run by _auto_init
        self.assertFalse(sql.column_exists(cr, "smtp_routing_personal_server", "smtp_pass"))
        self.assertEqual(database_occurrences(self.env, NEEDLE), [])

    def test_constraint_messages_never_name_other_users_servers(self):
        bob = new_test_user(self.env, login="bob", email="bob@practice.example", groups="base.group_user")
        company_b = self.env["res.company"].create({"name": "Company B"})
        hidden = self.env["ir.mail_server"].create(
            [
                {
                    "name": "Bob Secretname mailbox",
                    "smtp_host": "bob-private-host.example",
                    "from_filter": "bob@practice.example",
                    "smtp_routing_owner_id": bob.id,
                },
                {
                    "name": "Hidden B relay",
                    "smtp_host": "b-relay-host.example",
                    "company_id": company_b.id,
                    "smtp_routing_user_selectable": True,
                },
                {"name": "Unoffered relay", "smtp_host": "unoffered-host.example"},
            ]
        )
        for server in hidden:
            with self.subTest(server=server.name):
                with self.assertRaises(ValidationError) as caught:
                    self.user.with_user(self.user).write({"smtp_routing_server_id": server.id})
                text = str(caught.exception)
                for secret in (server.name, server.smtp_host):
                    self.assertNotIn(secret, text)
                self.assertIn("pick one of the servers your administrator offers", text)
