# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""SMTP passwords are encrypted at rest; the key never lives in the database."""

import json
import os
import smtplib
from unittest.mock import patch

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged
from odoo.tests.common import TransactionCase

from .. import hooks
from ..models.smtp_routing_secret_mixin import _keyring
from ..tools import dkim, secrets
from .common import LiveSmtpCase, database_occurrences

PLAINTEXT = "Pl41n-T3xt-Needle-7f3a"


def _other_key_env():
    return patch.dict(os.environ, {secrets.ENV_VAR: secrets.generate_key()})


@tagged("post_install", "-at_install", "smtp_routing")
class TestPasswordEncryption(TransactionCase):
    def _server(self, password=PLAINTEXT, **values):
        return self.env["ir.mail_server"].create(
            {"name": "Encrypted", "smtp_host": "smtp.example.com", "smtp_user": "u", "smtp_pass": password, **values}
        )

    def _database_occurrences(self, needle):
        return database_occurrences(self.env, needle)

    def test_plaintext_is_nowhere_in_the_database(self):
        server = self._server()
        self.assertFalse(server.smtp_pass, "write-only: not even administrators read it back")
        self.assertEqual(server._smtp_routing_password(), PLAINTEXT, "the connection decrypts it")
        self.assertEqual(self._database_occurrences(PLAINTEXT), [])
        self.env.cr.execute(
            "SELECT smtp_pass, smtp_routing_pass_encrypted FROM ir_mail_server WHERE id = %s", [server.id]
        )
        column, stored = self.env.cr.fetchone()
        self.assertIsNone(column)
        self.assertTrue(stored.startswith(secrets.PREFIX))
        # the needle check can fail: the same search finds what is really there
        self.assertIn("ir_mail_server.smtp_routing_pass_encrypted", self._database_occurrences(stored[:40]))

    def test_update_and_clear(self):
        server = self._server()
        server.smtp_pass = "second-password"
        self.assertEqual(server._smtp_routing_password(), "second-password")
        server.smtp_pass = False
        self.assertEqual(server._smtp_routing_password(), "second-password", "an empty field keeps the password")
        server.action_smtp_routing_clear_password()
        self.assertFalse(server.smtp_routing_pass_encrypted)
        self.assertEqual(server._smtp_routing_password(), "")

    def test_key_is_not_in_the_database(self):
        key = _keyring().keys[0].decode()
        self.assertEqual(self._database_occurrences(key), [])

    def test_install_and_uninstall_round_trip(self):
        server = self._server(password=False)
        # as stock Odoo left it before the install: plaintext in the column
        self.env.cr.execute(
            "UPDATE ir_mail_server SET smtp_pass = %s, smtp_routing_pass_encrypted = NULL WHERE id = %s",
            [PLAINTEXT, server.id],
        )
        self.assertEqual(hooks.encrypt_plaintext_passwords(self.env), 1)
        server.invalidate_recordset()
        self.assertEqual(server._smtp_routing_password(), PLAINTEXT)
        self.assertEqual(self._database_occurrences(PLAINTEXT), [])
        # uninstall: the plaintext goes back where stock Odoo reads it
        self.assertEqual(hooks.restore_plaintext_passwords(self.env), 1)
        self.env.cr.execute("SELECT smtp_pass FROM ir_mail_server WHERE id = %s", [server.id])
        self.assertEqual(self.env.cr.fetchone()[0], PLAINTEXT)

    def test_uninstall_refuses_to_lose_a_password(self):
        self._server(name="Locked")
        with _other_key_env(), self.assertRaisesRegex(UserError, "Locked.*cannot be decrypted"):
            hooks.restore_plaintext_passwords(self.env)

    def test_wrong_key_says_how_to_fix(self):
        server = self._server()
        with _other_key_env():
            server.invalidate_recordset()
            self.assertFalse(server.smtp_pass)
            self.assertIn("SMTP_ROUTING_KEYS", server.smtp_routing_pass_error)
            self.assertIn("enter the password again", server.smtp_routing_pass_error)

    def test_bad_key_configuration_is_refused(self):
        with (
            patch.dict(os.environ, {secrets.ENV_VAR: "not-a-fernet-key"}),
            self.assertRaisesRegex(UserError, "not valid"),
        ):
            self._server()

    def test_key_rotation(self):
        server = self._server()
        old_key = _keyring().keys[0].decode()
        new_key = secrets.generate_key()
        with patch.dict(os.environ, {secrets.ENV_VAR: f"{new_key},{old_key}"}):
            self.assertGreaterEqual(self.env["ir.mail_server"]._smtp_routing_rotate_keys(), 1)
        with patch.dict(os.environ, {secrets.ENV_VAR: new_key}):
            server.invalidate_recordset()
            self.assertEqual(server._smtp_routing_password(), PLAINTEXT)

    def test_key_rotation_keeps_oauth_tokens_and_dkim_keys(self):
        """Rotating, then dropping the old key, loses nothing: OAuth tokens and DKIM keys are re-encrypted too."""
        server = self._server()
        tokens = {"microsoft_outlook_refresh_token": "refresh-needle"}
        server.sudo().smtp_routing_oauth_encrypted = server._smtp_routing_encrypt(json.dumps(tokens))
        key = self.env["smtp_routing.dkim.key"].create({"domain": "rotation.example", "selector": "s1"})
        record = key.dns_record
        old_key = _keyring().keys[0].decode()
        new_key = secrets.generate_key()
        with patch.dict(os.environ, {secrets.ENV_VAR: f"{new_key},{old_key}"}):
            self.env["ir.mail_server"].action_smtp_routing_rotate_keys()
        with patch.dict(os.environ, {secrets.ENV_VAR: new_key}):
            self.env.invalidate_all()
            self.assertEqual(server._smtp_routing_password(), PLAINTEXT)
            self.assertEqual(server._smtp_routing_oauth_tokens(), tokens)
            pem = key._private_pem(raise_if_missing=False)
            self.assertTrue(pem, "the DKIM key opens with the new key alone")
            self.assertEqual(dkim.public_record(pem), record)

    def test_rotation_names_an_undecryptable_dkim_key_as_such(self):
        """A DKIM key the keys in use cannot open stops the rotation (nothing is lost): the message names the DKIM
        key and what to do for it, not a server's password."""
        self.env["ir.mail_server"].sudo().search([]).write(
            {"smtp_routing_pass_encrypted": False, "smtp_routing_oauth_encrypted": False}
        )
        self.env["smtp_routing.dkim.key"].create({"domain": "lost.example", "selector": "s1"})
        with _other_key_env(), self.assertRaisesRegex(UserError, "DKIM key s1 of lost.example") as caught:
            self.env["ir.mail_server"].action_smtp_routing_rotate_keys()
        self.assertNotIn("password", str(caught.exception))
        self.assertIn("generate a new one", str(caught.exception))

    def test_rotation_names_undecryptable_oauth_tokens_as_such(self):
        """OAuth tokens the keys in use cannot open stop the rotation (nothing is lost): the message names the
        server's tokens and says to connect the account again, not to enter a password."""
        self.env["ir.mail_server"].sudo().search([]).write(
            {"smtp_routing_pass_encrypted": False, "smtp_routing_oauth_encrypted": False}
        )
        server = self._server(password=False)
        stored = secrets.encrypt(json.dumps({"refresh_token": "kept"}), _keyring())
        server.sudo().smtp_routing_oauth_encrypted = stored
        with _other_key_env(), self.assertRaisesRegex(UserError, "OAuth tokens of Encrypted") as caught:
            self.env["ir.mail_server"].action_smtp_routing_rotate_keys()
        self.assertNotIn("password", str(caught.exception))
        self.assertIn("connect the account again", str(caught.exception))
        self.assertEqual(server.sudo().smtp_routing_oauth_encrypted, stored, "nothing lost")

    def test_internal_user_cannot_read_passwords(self):
        server = self._server()
        user = new_test_user(self.env, login="smtp_routing_internal", groups="base.group_user")
        Server = self.env["ir.mail_server"].with_user(user)
        with self.assertRaises(AccessError):
            Server.search_read([("id", "=", server.id)], ["smtp_pass"])
        with self.assertRaises(AccessError):
            Server.browse(server.id).read(["smtp_routing_pass_encrypted"])
        self.assertFalse(self.env["ir.config_parameter"].search([("value", "ilike", "srenc1:")]))

    def test_empty_password_stays_empty_for_oauth_servers(self):
        server = self._server(password=False)
        self.assertFalse(server.smtp_routing_pass_encrypted)
        if "google_gmail_refresh_token" in server._fields:
            gmail = self.env["ir.mail_server"].create(
                {
                    "name": "Gmail OAuth",
                    "smtp_host": "smtp.gmail.com",
                    "smtp_port": 587,
                    "smtp_encryption": "starttls",
                    "smtp_authentication": "gmail",
                    "smtp_user": "x@practice.example",
                }
            )
            self.assertFalse(gmail.smtp_pass)


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestEncryptedPasswordDelivers(LiveSmtpCase):
    def test_encrypted_password_authenticates_for_real(self):
        self.assertTrue(self.mail_server.smtp_routing_pass_encrypted.startswith(secrets.PREFIX))
        mail = self.create_mail()
        mail.send()
        self.assertTrue(self.smtpd.wait_for(1))
        self.assertEqual(self.smtpd.messages[0].auth_user, "odoo")

    def test_undecryptable_password_fails_with_instructions(self):
        with _other_key_env():
            self.mail_server.invalidate_recordset()
            mail = self.create_mail()
            mail.send()
        # a configuration error: the mail fails at once with what to fix (Retry once the key is back)
        self.assertEqual(mail.state, "exception")
        self.assertIn("cannot be decrypted", mail.failure_reason)
        log = self.env["smtp_routing.delivery.log"].search([("server_id", "=", self.mail_server.id)])
        self.assertEqual(log.category, "config")
        self.assertIn("cannot be decrypted", log.reply)
        self.assertEqual(self.smtpd.messages, [])


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestSecretsNeverLogged(LiveSmtpCase):
    smtp_tls = None  # AUTH in clear, so that smtplib's debug output would show it

    def test_debug_flag_does_not_log_credentials(self):
        import base64
        import logging

        self.mail_server.smtp_debug = True
        password = self.smtp_credentials["odoo"]
        forbidden = [
            password,
            base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"\0odoo\0{password}".encode()).decode(),
        ]
        for mechanism in ("PLAIN", "LOGIN"):
            with self.subTest(mechanism=mechanism):
                with (
                    patch(
                        "smtplib.SMTP.auth_plain" if mechanism == "LOGIN" else "smtplib.SMTP.auth_login",
                        side_effect=smtplib.SMTPAuthenticationError(535, b"forced: try the next mechanism"),
                    ),
                    self.assertLogs("odoo.addons.base.models.ir_mail_server", level=logging.DEBUG) as logs,
                ):
                    self.create_mail(subject=f"Debug {mechanism}").send()
                output = "\n".join(logs.output)
                self.assertIn("send:", output, "debug output was captured")
                self.assertIn(f"AUTH {mechanism} [credentials redacted by smtp_routing]", output)
                for secret in forbidden:
                    self.assertNotIn(secret, output)
        self.assertTrue(self.smtpd.wait_for(2), "the mail still went out, authenticated")


@tagged("post_install", "-at_install", "smtp_routing")
class TestSecretsNotExported(TransactionCase):
    def test_export_refuses_credentials_to_non_admins(self):
        server = self.env["ir.mail_server"].create(
            {
                "name": "Offered",
                "smtp_host": "smtp.example.com",
                "smtp_user": "u",
                "smtp_pass": PLAINTEXT,
                "smtp_routing_user_selectable": True,
            }
        )
        user = new_test_user(self.env, login="exporter", groups="base.group_user,base.group_allow_export")
        with self.assertRaises(AccessError):
            server.with_user(user).export_data(["name", "smtp_pass"])
        with self.assertRaises(AccessError):
            server.with_user(user).export_data(["smtp_routing_pass_encrypted"])
        with self.assertRaises(AccessError):
            server.with_user(user).export_data(["smtp_user"])
        self.assertEqual(server.with_user(user).export_data(["name"])["datas"], [["Offered"]])
