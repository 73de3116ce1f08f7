# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""No credential is reachable by any user path (issue 13).

The attacker is the least-privileged user who can export: an internal user with
``base.group_allow_export``. Every path is tried the way that user really has it:
model calls under ``with_user`` and JSON-RPC through ``/web/dataset/call_kw``.
The password is a needle that must never come back, in any answer or column.
"""

import json

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, HttpCase, new_test_user, tagged
from odoo.tests.common import TransactionCase

from ..models.smtp_routing_secret_mixin import _keyring
from ..tools import secrets
from .common import LiveSmtpCase, database_occurrences

NEEDLE = "Cr3d-Needle-9d41-Never-Shown"
LOGIN = "relay-login-7c2e"
TEMPLATE_EXPRESSION = "{{ object.user_ids.smtp_routing_server_id.smtp_pass }}"
TEMPLATE_BODY = '<p>pw: <t t-out="object.user_ids.smtp_routing_server_id.smtp_pass"/></p>'


def _decrypt(server):
    return secrets.decrypt(server.sudo().smtp_routing_pass_encrypted, _keyring())


class _CredentialsSetup:
    """An offered server with a password, an exporter who picked it, and a template that names it."""

    @classmethod
    def _setup_credentials(cls):
        cls.env["ir.config_parameter"].set_param("smtp_routing.dns_nameserver", "127.0.0.1:9")
        cls.server = cls.env["ir.mail_server"].create(
            {
                "name": "Offered relay",
                "smtp_host": "smtp.example.com",
                "smtp_port": 587,
                "smtp_encryption": "starttls",
                "smtp_user": LOGIN,
                "smtp_pass": NEEDLE,
                "smtp_routing_user_selectable": True,
            }
        )
        cls.user = new_test_user(
            cls.env,
            login="exporter",
            email="exporter@practice.example",
            groups="base.group_user,base.group_allow_export",
            context={"no_reset_password": True},
        )
        cls.user.smtp_routing_server_id = cls.server
        cls.template = cls.env["mail.template"].create(
            {
                "name": "Mailbox summary",
                "model_id": cls.env.ref("base.model_res_partner").id,
                "subject": TEMPLATE_EXPRESSION,
                "body_html": TEMPLATE_BODY,
                "mail_server_id": cls.server.id,
            }
        )
        cls.message = cls.env["mail.message"].create(
            {
                "model": "res.partner",
                "res_id": cls.user.partner_id.id,
                "body": "<p>hello</p>",
                "message_type": "comment",
                "author_id": cls.user.partner_id.id,
                "mail_server_id": cls.server.id,
            }
        )


@tagged("post_install", "-at_install", "smtp_routing")
class TestCredentialsNotReadable(_CredentialsSetup, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_credentials()

    def test_export_checks_every_segment_of_the_path(self):
        paths = [
            (self.user, "smtp_routing_server_id/smtp_pass"),
            (self.user, "smtp_routing_server_id/smtp_user"),
            (self.user, "smtp_routing_server_id/smtp_routing_pass_encrypted"),
            (self.template, "mail_server_id/smtp_pass"),
            (self.template, "mail_server_id/smtp_user"),
            (self.message, "mail_server_id/smtp_pass"),
            (self.message, "mail_server_id/smtp_user"),
        ]
        for records, path in paths:
            with self.subTest(model=records._name, path=path):
                self.assertEqual(self.server.smtp_user, LOGIN)  # the login sits in the cache, as after any send
                with self.assertRaises(AccessError):
                    records.with_user(self.user).export_data([path])
        # what the user may read still exports
        exported = self.user.with_user(self.user).export_data(["login", "smtp_routing_server_id/name"])
        self.assertEqual(exported["datas"], [["exporter", "Offered relay"]])

    def test_secrets_are_never_exported_even_by_administrators(self):
        key = self.env["smtp_routing.dkim.key"].create({"domain": "practice.example", "selector": "s1"})
        for records, path in [
            (self.server, "smtp_pass"),
            (self.server, "smtp_routing_pass_encrypted"),
            (self.user, "smtp_routing_server_id/smtp_pass"),
            (key, "private_key_encrypted"),
        ]:
            with self.subTest(path=path), self.assertRaisesRegex(UserError, "secret"):
                records.export_data([path])
        self.assertEqual(self.server.export_data(["smtp_user"])["datas"], [[LOGIN]], "admins still export the login")

    def test_the_password_field_never_holds_the_plaintext(self):
        self.env.invalidate_all()
        self.assertFalse(self.server.smtp_pass)
        self.assertEqual(self.server.read(["smtp_pass"]), [{"id": self.server.id, "smtp_pass": False}])
        self.assertTrue(self.server.smtp_routing_pass_set)
        self.assertEqual(_decrypt(self.server), NEEDLE, "stored, encrypted")
        # the template an internal user may render
        rendered = self.template.with_user(self.user)._render_field("subject", self.user.partner_id.ids)
        self.assertNotIn(NEEDLE, str(rendered))
        preview = (
            self.env["mail.template.preview"]
            .with_user(self.user)
            .create({"mail_template_id": self.template.id, "resource_ref": f"res.partner,{self.user.partner_id.id}"})
        )
        self.assertNotIn(NEEDLE, f"{preview.subject} {preview.body_html}")

    def test_the_password_is_write_only(self):
        stored = self.server.smtp_routing_pass_encrypted
        with Form(self.server) as form:
            form.name = "Offered relay (renamed)"
        self.assertEqual(self.server.smtp_routing_pass_encrypted, stored, "an unchanged password field keeps it")
        for empty in ("", False):
            self.server.write({"smtp_pass": empty})
            self.assertEqual(self.server.smtp_routing_pass_encrypted, stored, "an empty value never wipes it")
        self.server.write({"smtp_pass": "second-password"})
        self.assertEqual(_decrypt(self.server), "second-password")
        self.assertFalse(self.server.smtp_pass, "not even right after writing it")
        copy = self.server.copy()
        self.assertEqual(_decrypt(copy), "second-password", "a duplicate keeps the password")
        self.server.action_smtp_routing_clear_password()
        self.assertFalse(self.server.smtp_routing_pass_encrypted)
        self.assertFalse(self.server.smtp_routing_pass_set)

    def test_odoo_gmail_constraint_still_works(self):
        if "google_gmail_refresh_token" not in self.server._fields:
            self.skipTest("google_gmail is not installed")
        gmail = {
            "name": "Gmail OAuth",
            "smtp_host": "smtp.gmail.com",
            "smtp_port": 587,
            "smtp_encryption": "starttls",
            "smtp_authentication": "gmail",
            "smtp_user": "x@practice.example",
        }
        with self.assertRaisesRegex(UserError, "leave the password field empty"):
            self.env["ir.mail_server"].create({**gmail, "smtp_pass": "typed"})
        self.env["ir.mail_server"].create(gmail)
        with self.assertRaisesRegex(UserError, "Remove Password"):
            self.server.write({"smtp_authentication": "gmail", "smtp_user": "x@practice.example"})

    def test_superuser_actions_check_the_callers_group(self):
        stored = self.server.smtp_routing_pass_encrypted
        Server = self.server.with_user(self.user)
        for method in (
            "action_smtp_routing_rotate_keys",
            "action_smtp_routing_check_dns",
            "action_smtp_routing_dkim_keys",
            "action_smtp_routing_clear_password",
            "action_smtp_routing_test_email",
            "action_smtp_routing_history",
            "action_smtp_routing_queue",
            "action_smtp_routing_explain",
            "test_smtp_connection",
            "action_retrieve_max_email_size",
        ):
            with self.subTest(method=method), self.assertRaises(AccessError):
                getattr(Server, method)()
        with self.assertRaises(AccessError):
            self.env["ir.mail_server"].with_user(self.user).connect(mail_server_id=self.server.id)
        self.assertEqual(self.server.smtp_routing_pass_encrypted, stored, "nothing was re-encrypted")
        self.assertFalse(self.env["smtp_routing.dns.check"].search([("server_id", "=", self.server.id)]))
        key = self.env["smtp_routing.dkim.key"].create({"domain": "practice.example", "selector": "s1"})
        with self.assertRaises(AccessError):
            key.with_user(self.user).action_generate_key()
        wizard = self.env["smtp_routing.test.email"].create({"server_id": self.server.id, "email_to": "x@example.com"})
        with self.assertRaises(AccessError):
            wizard.with_user(self.user).action_send()

    def test_status_counters_and_errors_are_for_administrators(self):
        Log = self.env["smtp_routing.delivery.log"]
        Log._smtp_routing_record(
            server_id=self.server.id, category="auth", reply="535 5.7.8 banner of smtp.internal.example"
        )
        Log._smtp_routing_flush()
        self.assertIn("banner of smtp.internal.example", self.server.smtp_routing_last_error)
        Server = self.server.with_user(self.user)
        for field in (
            "smtp_routing_last_error",
            "smtp_routing_last_error_date",
            "smtp_routing_sent_24h",
            "smtp_routing_failed_24h",
            "smtp_routing_sent_today",
            "smtp_routing_failed_today",
            "smtp_routing_health",
            "smtp_routing_cooldown_until",
            "smtp_routing_quota",
            "smtp_routing_next_slot",
            "smtp_routing_queued_count",
            "smtp_routing_queue_eta",
            "smtp_routing_throttle_used",
            "smtp_routing_hourly_used",
            "smtp_routing_daily_used",
            "smtp_routing_dns_status",
            "smtp_routing_dns_report",
            "smtp_routing_dns_checked_at",
            "smtp_routing_warning",
            "smtp_routing_log_ids",
            "smtp_routing_dns_check_ids",
        ):
            with self.subTest(field=field), self.assertRaises(AccessError):
                Server.read([field])
        self.assertEqual(Server.read(["name"]), [{"id": self.server.id, "name": "Offered relay"}])

    def test_users_still_load_the_server_views_without_the_admin_fields(self):
        # the many2one in the preferences opens these ("Search More...")
        Server = self.env["ir.mail_server"].with_user(self.user)
        views = Server.get_views([(False, "list"), (False, "search")])["views"]
        for view in views.values():
            for field in ("smtp_routing_last_error", "smtp_routing_health", "smtp_routing_dns_status", "smtp_user"):
                self.assertNotIn(field, view["arch"])
        self.assertIn("smtp_host", views["search"]["arch"], "users search the offered servers by name or host")
        self.assertEqual(Server.search([("smtp_host", "ilike", "smtp.example")]), self.server)
        admin_search = self.env["ir.mail_server"].get_views([(False, "search")])["views"]["search"]["arch"]
        self.assertIn("smtp_user", admin_search)
        self.assertIn("smtp_routing_health", admin_search)


def _call_kw(case, model, method, args, kwargs=None):
    """A JSON-RPC call as the browser makes it; returns the raw answer and its JSON."""
    payload = {
        "jsonrpc": "2.0",
        "method": "call",
        "id": 1,
        "params": {"model": model, "method": method, "args": args, "kwargs": kwargs or {}},
    }
    response = case.url_open(
        f"/web/dataset/call_kw/{model}/{method}", data=json.dumps(payload), headers={"Content-Type": "application/json"}
    )
    case.assertEqual(response.status_code, 200)
    return response.text, response.json()


@tagged("post_install", "-at_install", "smtp_routing")
class TestCredentialsOverRpc(_CredentialsSetup, HttpCase):
    """The same attacker, through the JSON-RPC endpoint the web client uses."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_credentials()
        cls.writer = new_test_user(
            cls.env,
            login="writer",
            email="writer@practice.example",
            groups="base.group_user,base.group_allow_export,mail.group_mail_template_editor",
            context={"no_reset_password": True},
        )
        cls.writer.smtp_routing_server_id = cls.server

    def setUp(self):
        super().setUp()
        self.authenticate("exporter", "exporter")

    def assertNoNeedle(self, text):
        self.assertNotIn(NEEDLE, text)
        self.assertNotIn(self.server.sudo().smtp_routing_pass_encrypted, text)

    def test_export_data(self):
        for model, ids, path in [
            ("res.users", self.user.ids, "smtp_routing_server_id/smtp_pass"),
            ("mail.template", self.template.ids, "mail_server_id/smtp_pass"),
            ("mail.message", self.message.ids, "mail_server_id/smtp_pass"),
        ]:
            with self.subTest(model=model):
                text, answer = _call_kw(self, model, "export_data", [ids, [path]])
                self.assertNoNeedle(text)
                self.assertEqual(answer["error"]["data"]["name"], "odoo.exceptions.AccessError")

    def test_web_read_through_the_server_relation(self):
        specification = {"smtp_routing_server_id": {"fields": {"display_name": {}, "smtp_pass": {}}}}
        text, answer = _call_kw(self, "res.users", "web_read", [self.user.ids, specification])
        self.assertNoNeedle(text)
        self.assertIn("error", answer)
        text, answer = _call_kw(
            self, "res.users", "web_read", [self.user.ids, {"smtp_routing_server_id": {"fields": {"display_name": {}}}}]
        )
        self.assertEqual(answer["result"][0]["smtp_routing_server_id"]["display_name"], "Offered relay")
        text, _answer = _call_kw(
            self, "mail.template", "web_read", [self.template.ids, {"mail_server_id": {"fields": {"smtp_pass": {}}}}]
        )
        self.assertNoNeedle(text)

    def test_read_group(self):
        text, answer = _call_kw(
            self,
            "res.users",
            "web_read_group",
            [[("id", "=", self.user.id)], ["smtp_routing_server_id"], ["smtp_routing_server_id"]],
        )
        self.assertNoNeedle(text)
        self.assertEqual(answer["result"]["groups"][0]["smtp_routing_server_id"][1], "Offered relay")
        text, answer = _call_kw(
            self, "ir.mail_server", "web_read_group", [[], ["smtp_routing_pass_encrypted:array_agg"], ["name"]]
        )
        self.assertNoNeedle(text)
        self.assertIn("error", answer)

    def test_template_rendering(self):
        composer_values = {
            "composition_mode": "comment",
            "model": "res.partner",
            "res_ids": repr(self.user.partner_id.ids),
            "template_id": self.template.id,
        }
        text, answer = _call_kw(
            self,
            "mail.compose.message",
            "web_save",
            [[], composer_values],
            {"specification": {"subject": {}, "body": {}}},
        )
        self.assertNoNeedle(text)
        self.assertIn("pw:", answer["result"][0]["body"], "the template was really rendered")
        text, answer = _call_kw(
            self,
            "mail.template.preview",
            "web_save",
            [[], {"mail_template_id": self.template.id, "resource_ref": f"res.partner,{self.user.partner_id.id}"}],
            {"specification": {"subject": {}, "body_html": {}}},
        )
        self.assertNoNeedle(text)
        self.assertIn("pw:", answer["result"][0]["body_html"])

    def test_composer_body_written_by_a_template_editor(self):
        self.authenticate("writer", "writer")
        composer_values = {
            "composition_mode": "mass_mail",
            "model": "res.partner",
            "res_ids": repr(self.writer.partner_id.ids),
            "subject": TEMPLATE_EXPRESSION,
            "body": TEMPLATE_BODY,
            "auto_delete": False,
        }
        text, answer = _call_kw(self, "mail.compose.message", "web_save", [[], composer_values], {"specification": {}})
        self.assertNoNeedle(text)
        composer_id = answer["result"][0]["id"]
        text, _answer = _call_kw(self, "mail.compose.message", "action_send_mail", [[composer_id]])
        self.assertNoNeedle(text)
        partner = self.writer.partner_id
        mails = self.env["mail.mail"].search([("model", "=", "res.partner"), ("res_id", "=", partner.id)])
        self.assertTrue(mails, "the mass mail was generated")
        self.assertIn("pw:", mails[0].body_html, "and its body rendered")
        self.assertEqual(database_occurrences(self.env, NEEDLE), [])


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestCredentialsOnTheWire(LiveSmtpCase):
    """The password goes to the SMTP server, and only there; users cannot aim Odoo at other hosts."""

    smtp_credentials = {LOGIN: NEEDLE}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = new_test_user(
            cls.env,
            login="ana",
            email="ana@practice.example",
            groups="base.group_user,base.group_allow_export",
            context={"no_reset_password": True},
        )
        cls.mail_server.smtp_routing_user_selectable = True

    def _log(self):
        return self.env["smtp_routing.delivery.log"].search([("server_id", "=", self.mail_server.id)], limit=1)

    def test_the_decrypted_password_reaches_the_smtp_server(self):
        mail = self.create_mail()
        mail.send()
        self.assertEqual(mail.state, "sent")
        self.assertTrue(self.smtpd.wait_for(1))
        self.assertEqual(self.smtpd.messages[0].auth_user, LOGIN, "AUTH succeeded with the stored password")
        # the server checks the password: another stored password is refused (so it is really what is sent)
        self.mail_server.smtp_pass = "not-the-password"
        other = self.create_mail(subject="With the wrong password")
        other.send()
        self.assertEqual(self._log().category, "auth")
        self.assertEqual(len(self.smtpd.messages), 1)
        self.assertEqual(database_occurrences(self.env, NEEDLE), [], "not in a log row, a mail or a reply")

    def test_users_cannot_aim_a_connection_anywhere(self):
        Server = self.env["ir.mail_server"].with_user(self.user)
        for kwargs in (
            {"host": self.smtpd.host, "port": self.smtpd.port, "encryption": "none"},
            {"mail_server_id": self.mail_server.id},
        ):
            with self.subTest(kwargs=kwargs), self.assertRaises(AccessError):
                Server.connect(**kwargs)
        with self.assertRaises(AccessError):
            Server.browse(self.mail_server.id).test_smtp_connection()
        message = self.env["ir.mail_server"].build_email("a@example.com", ["b@example.com"], "Hi", "Hello")
        with self.assertRaises(AccessError):
            Server.send_email(message, smtp_server=self.smtpd.host, smtp_port=self.smtpd.port)
        self.assertEqual(self.smtpd.connections, 0)


@tagged("post_install", "-at_install", "smtp_routing")
class TestRoutesDoNotLeadToCredentials(TransactionCase):
    """Routes lead to servers too; users who may pick a route cannot follow it to credentials."""

    def test_routes_and_grants_do_not_lead_to_credentials(self):
        server = self.env["ir.mail_server"].create(
            {"name": "Routed", "smtp_host": "smtp.example.com", "smtp_user": "u", "smtp_pass": NEEDLE}
        )
        route = self.env["smtp_routing.route"].create(
            {"name": "Mine", "allow_in_composer": True, "line_ids": [Command.create({"server_id": server.id})]}
        )
        user = new_test_user(self.env, login="router", groups="base.group_user,base.group_allow_export")
        with self.assertRaises(AccessError):
            route.with_user(user).export_data(["line_ids/server_id/smtp_pass"])
        self.assertEqual(route.with_user(user).export_data(["name"])["datas"], [["Mine"]])
