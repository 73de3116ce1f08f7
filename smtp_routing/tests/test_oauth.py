# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Microsoft 365 and Google over OAuth 2.0: Odoo's own consent flow and sign-in, against a loopback provider.

Odoo's ``microsoft_outlook`` and ``google_gmail`` modules talk to ``testing.oauth.OAuthProvider``
over real HTTP (``microsoft_outlook.endpoint``, ``smtp_routing.google_gmail_endpoint``), and the
SMTP fixture accepts exactly the access tokens it issued (AUTH XOAUTH2, inside STARTTLS).
These tests need the bridge modules, which install themselves next to smtp_routing and
Odoo's modules (the Odoo suite installs ``microsoft_outlook`` for them).
"""

import json
import unittest
import urllib.error
import urllib.parse
import urllib.request

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, HttpCase, new_test_user, tagged

from .. import hooks
from ..testing.oauth import OAuthProvider
from ..testing.smtpd import closed_port
from .common import LiveSmtpCase, database_occurrences

ALICE = "alice@example.com"
BRIDGES = ("smtp_routing_google_gmail", "smtp_routing_microsoft_outlook")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class OAuthCase(HttpCase, LiveSmtpCase):
    """Servers signing in with OAuth against the loopback provider; a password server as fallback."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        installed = cls.env["ir.module.module"].search([("name", "in", BRIDGES), ("state", "=", "installed")])
        if len(installed) != len(BRIDGES):
            raise unittest.SkipTest("the bridge modules are not installed (install microsoft_outlook too)")
        cls.provider = OAuthProvider(clients={"odoo-app": "odoo-app-secret"}).start()
        cls.addClassCleanup(cls.provider.stop)
        params = {
            "microsoft_outlook_client_id": "odoo-app",
            "microsoft_outlook_client_secret": "odoo-app-secret",
            "microsoft_outlook.endpoint": cls.provider.base_url,
            "google_gmail_client_id": "odoo-app",
            "google_gmail_client_secret": "odoo-app-secret",
            "smtp_routing.google_gmail_endpoint": cls.provider.base_url,
        }
        for key, value in params.items():
            cls.env["ir.config_parameter"].set_param(key, value)
        cls.oauth_smtpd = cls.start_smtp_server(
            tls="starttls", xoauth2=cls.provider.check_access_token, auth_required=True
        )

    def setUp(self):
        super().setUp()
        self.oauth_smtpd.clear()
        self.provider.requests.clear()
        self.provider.deny_consent = False
        self.provider.clear_faults()

    def oauth_server(self, method, name, user=ALICE, **values):
        return self.env["ir.mail_server"].create(
            {
                "name": name,
                "smtp_host": self.oauth_smtpd.host,
                "smtp_port": self.oauth_smtpd.port,
                "smtp_encryption": "starttls",
                "smtp_authentication": method,
                "smtp_user": user,
                "from_filter": user,
                "sequence": 1,
                **values,
            }
        )

    def connect_account(self, server, user=ALICE):
        """Odoo's consent flow: its button, the provider's authorize page, Odoo's callback (real HTTP)."""
        self.provider.consent_user = user
        button = (
            server.open_microsoft_outlook_uri
            if server.smtp_authentication == "outlook"
            else server.open_google_gmail_uri
        )
        url = button()["url"]
        self.assertTrue(url.startswith(self.provider.authorize_url), url)
        try:
            response = urllib.request.build_opener(_NoRedirect).open(url, timeout=5)
        except urllib.error.HTTPError as redirect:
            response = redirect
        self.assertEqual(response.code, 302)
        back = urllib.parse.urlsplit(response.headers["Location"])
        self.authenticate("admin", "admin")
        answer = self.url_open(f"{back.path}?{back.query}", allow_redirects=False)
        self.assertIn(answer.status_code, (302, 303), answer.text[:500])
        self.assertIn(f"/odoo/ir.mail_server/{server.id}", answer.headers["Location"])
        server.invalidate_recordset()
        return server

    def broken_server(self, name="Broken primary", **values):
        return self.env["ir.mail_server"].create(
            {"name": name, "smtp_host": "127.0.0.1", "smtp_port": closed_port(), "smtp_encryption": "none", **values}
        )

    def logs(self, server):
        return self.env["smtp_routing.delivery.log"]._smtp_routing_flush() | self.env[
            "smtp_routing.delivery.log"
        ].search([("server_id", "=", server.id)])


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestOAuthServers(OAuthCase):
    def test_microsoft_365_app_only_sends_as_a_shared_mailbox_without_a_connected_user(self):
        """The client-credentials flow: the application signs in for a shared mailbox the tenant admin granted it;
        no user connects an account, the access token is the application's and is stored encrypted."""
        shared = "support@practice.example"
        server = self.oauth_server("outlook", "Shared support mailbox (app-only)", user=shared)
        server.smtp_routing_outlook_app_only = True
        mail = self.create_mail(email_from=shared, email_to="client@example.com")
        mail.send()
        self.assertEqual(mail.state, "sent", mail.failure_reason)
        self.assertTrue(self.oauth_smtpd.wait_for(1))
        self.assertEqual(self.oauth_smtpd.messages[0].mail_from, shared)
        app_tokens = [t for t in self.provider.tokens("access") if t.user is None]
        self.assertEqual(len(app_tokens), 1, "one application token, from the client-credentials grant")
        self.assertIn(".default", app_tokens[0].scope)
        self.env.flush_all()
        self.env.cr.execute("SELECT microsoft_outlook_access_token FROM ir_mail_server WHERE id = %s", [server.id])
        self.assertFalse(self.env.cr.fetchone()[0], "Odoo's column stays empty: the token is encrypted")
        # the second mail reuses the application token until it expires
        self.create_mail(email_from=shared, email_to="other@example.com").send()
        self.assertEqual(len([t for t in self.provider.tokens("access") if t.user is None]), 1)

    def test_microsoft_and_google_presets_sign_in_with_oauth(self):
        for preset, method, host in (
            ("microsoft365", "outlook", "smtp.office365.com"),
            ("google_workspace", "gmail", "smtp.gmail.com"),
            ("gmail", "gmail", "smtp.gmail.com"),
        ):
            with self.subTest(preset=preset):
                form = Form(self.env["ir.mail_server"])
                form.name = preset
                form.smtp_user = ALICE
                form.smtp_routing_provider = preset
                self.assertEqual(form.smtp_authentication, method)
                self.assertEqual(form.smtp_encryption, "starttls")
                self.assertEqual(form.smtp_port, 587)
                self.assertEqual(form.smtp_host, host)
                self.assertEqual(form.from_filter, ALICE)
        form = Form(self.env["ir.mail_server"])
        form.smtp_routing_provider = "sendgrid"
        self.assertEqual(form.smtp_authentication, "login")

    def test_outlook_server_connects_through_odoos_consent_flow_and_delivers_through_a_route(self):
        broken = self.broken_server()
        outlook = self.connect_account(self.oauth_server("outlook", "Microsoft 365"))
        self.assertTrue(outlook.smtp_routing_oauth_connected)
        self.assertEqual([grant for grant, _outcome in self.provider.requests], ["authorize", "authorization_code"])
        self.env["smtp_routing.route"].create(
            {
                "name": "Everything",
                "is_default": True,
                "line_ids": [
                    Command.create({"server_id": broken.id, "sequence": 1}),
                    Command.create({"server_id": outlook.id, "sequence": 2}),
                ],
            }
        )
        mail = self.create_mail(email_from=ALICE)
        mail.send()
        self.assertTrue(self.oauth_smtpd.wait_for(1))
        self.assertEqual(mail.state, "sent")
        received = self.oauth_smtpd.messages[0]
        self.assertEqual((received.auth_user, received.tls), (ALICE, True))
        self.assertEqual(self.oauth_smtpd.auth_attempts, [("XOAUTH2", ALICE, True)])
        self.assertEqual(self.smtpd.messages, [])
        self.assertEqual(self.logs(broken).mapped("category"), ["connection_refused"])
        self.assertEqual(self.logs(outlook).mapped("outcome"), ["sent"])

    def test_gmail_server_takes_over_from_a_failing_server_and_refreshes_its_access_token(self):
        broken = self.broken_server(from_filter=ALICE, sequence=0)
        gmail = self.connect_account(self.oauth_server("gmail", "Google", sequence=5))
        self.mail_server.sequence = 50  # the password server comes after Google
        self.assertTrue(gmail.smtp_routing_oauth_connected)
        gmail.sudo().google_gmail_access_token_expiration = 1  # Odoo must refresh it before signing in
        mail = self.create_mail(email_from=ALICE)
        mail.send()
        self.assertTrue(self.oauth_smtpd.wait_for(1))
        self.assertEqual(mail.state, "sent")
        self.assertEqual(self.oauth_smtpd.messages[0].auth_user, ALICE)
        self.assertIn(("refresh_token", "ok"), self.provider.requests)
        self.assertEqual(self.logs(broken).mapped("category"), ["connection_refused"])

    def test_a_refused_access_token_is_a_sign_in_failure_and_fails_over(self):
        """Odoo sends AUTH XOAUTH2 and ignores the answer: the refusal then looked like a refused sender (530)."""
        outlook = self.connect_account(self.oauth_server("outlook", "Microsoft 365", sequence=0))
        self.mail_server.from_filter = False
        self.provider.expire_access_tokens()  # Odoo still believes its token valid: the SMTP server does not
        mail = self.create_mail(email_from=ALICE)
        mail.send()
        self.assertEqual(self.oauth_smtpd.messages, [])
        self.assertEqual(self.oauth_smtpd.auth_attempts, [("XOAUTH2", ALICE, False)])
        self.assertEqual(self.logs(outlook).mapped("category"), ["auth"])
        self.assertTrue(self.smtpd.wait_for(1), "the password server should have taken the mail")
        self.assertEqual(mail.state, "sent")

    def test_a_server_with_no_account_connected_says_so(self):
        outlook = self.oauth_server("outlook", "Not connected yet", sequence=0)
        mail = self.create_mail(email_from=ALICE)
        mail.send()
        self.assertTrue(self.smtpd.wait_for(1))  # the password server took it
        log = self.logs(outlook)
        self.assertEqual(log.mapped("category"), ["config"])
        self.assertIn("no account is connected yet", log.reply)


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestOAuthTokensAreSecrets(OAuthCase):
    def issued(self, kind):
        return [token.value for token in self.provider.tokens(kind=kind, user=ALICE)]

    def test_tokens_are_stored_encrypted_and_read_empty_for_everyone(self):
        outlook = self.connect_account(self.oauth_server("outlook", "Microsoft 365"))
        gmail = self.connect_account(self.oauth_server("gmail", "Google"))
        for value in self.issued("refresh") + self.issued("access") + self.issued("code"):
            self.assertEqual(database_occurrences(self.env, value), [], value[:12])
        for server, names in (
            (outlook, ["microsoft_outlook_refresh_token", "microsoft_outlook_access_token"]),
            (gmail, ["google_gmail_refresh_token", "google_gmail_access_token", "google_gmail_authorization_code"]),
        ):
            self.assertTrue(server.sudo().smtp_routing_oauth_encrypted.startswith("srenc1:"))
            self.assertEqual(server.read(names)[0], {"id": server.id, **dict.fromkeys(names, False)})
            self.assertFalse(any(server.sudo()[name] for name in names))
            self.env.cr.execute(
                f"SELECT {', '.join(names)} FROM ir_mail_server WHERE id = %s",  # noqa: S608 - constant names
                [server.id],
            )
            self.assertEqual(set(self.env.cr.fetchone()), {None}, "Odoo's plaintext columns stay empty")
            with self.assertRaisesRegex(Exception, "never exported"):
                server.export_data([names[0]])
        # the sign-in decrypts them, for that connection only
        self.create_mail(email_from=ALICE).send()
        self.assertTrue(self.oauth_smtpd.wait_for(1))
        self.assertFalse(outlook.sudo().microsoft_outlook_refresh_token)

    def test_switching_away_from_oauth_forgets_the_tokens(self):
        outlook = self.connect_account(self.oauth_server("outlook", "Microsoft 365"))
        outlook.write({"smtp_authentication": "login"})
        self.assertFalse(outlook.sudo().smtp_routing_oauth_encrypted)
        self.assertFalse(outlook.smtp_routing_oauth_connected)

    def test_uninstall_writes_the_tokens_back_and_install_encrypts_them_again(self):
        outlook = self.connect_account(self.oauth_server("outlook", "Microsoft 365"))
        refresh = outlook.sudo()._smtp_routing_oauth_tokens()["microsoft_outlook_refresh_token"]
        names = ("microsoft_outlook_refresh_token", "microsoft_outlook_access_token")
        self.assertEqual(hooks.restore_oauth_tokens(self.env, names), 1)
        self.env.cr.execute("SELECT microsoft_outlook_refresh_token FROM ir_mail_server WHERE id = %s", [outlook.id])
        self.assertEqual(self.env.cr.fetchone()[0], refresh)
        self.assertFalse(outlook.sudo().smtp_routing_oauth_encrypted)
        self.assertEqual(hooks.encrypt_oauth_tokens(self.env, names), 1)
        self.env.cr.execute("SELECT microsoft_outlook_refresh_token FROM ir_mail_server WHERE id = %s", [outlook.id])
        self.assertIsNone(self.env.cr.fetchone()[0])
        self.assertTrue(outlook.smtp_routing_oauth_connected)
        self.assertEqual(outlook.sudo()._smtp_routing_oauth_tokens()["microsoft_outlook_refresh_token"], refresh)


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestOAuthTokenHealth(OAuthCase):
    def admin_notices(self, server):
        return self.env["mail.message"].search(
            [
                ("subject", "=", f"Reconnect the account of {server.name}"),
                ("partner_ids", "in", self.env.ref("base.user_admin").partner_id.ids),
            ]
        )

    def revoke(self, server):
        self.provider.revoke_user(ALICE)
        field = "microsoft_outlook" if server.smtp_authentication == "outlook" else "google_gmail"
        server.sudo()[f"{field}_access_token_expiration"] = 1  # Odoo must renew its access token: refused

    def test_a_revoked_consent_is_noted_told_once_and_the_mail_waits(self):
        self.mail_server.active = False  # no other server may take Alice's mail
        outlook = self.connect_account(self.oauth_server("outlook", "Microsoft 365"))
        self.revoke(outlook)
        mail = self.create_mail(email_from=ALICE)
        mail.send()
        self.assertEqual(mail.state, "outgoing", mail.failure_reason)
        self.assertIn("Microsoft 365 is cooling down", mail.smtp_routing_deferred_reason)
        self.assertIn(("refresh_token", "invalid_grant"), self.provider.requests)
        log = self.logs(outlook)
        self.assertEqual(log.mapped("category"), ["oauth_revoked"])
        self.assertIn("invalid_grant", log.reply)
        self.assertEqual(log.summary.split(" - ")[0], "Sign-in revoked or expired (OAuth)")
        self.assertIn("Reconnect the account", outlook.smtp_routing_oauth_problem)
        self.assertTrue(outlook.smtp_routing_oauth_problem_date)
        notice = self.admin_notices(outlook)
        self.assertEqual(len(notice), 1)
        self.assertIn("Reconnect the account", notice.body)
        # the next attempt fails the same way: noted, not told again
        self.env["smtp_routing.server.state"]._smtp_routing_succeeded(outlook)  # end the cooldown
        mail.send()
        self.assertEqual(mail.state, "outgoing")
        self.assertEqual(len(self.admin_notices(outlook)), 1)
        # the administrator reconnects: the problem is gone and the mail leaves
        self.connect_account(outlook)
        self.env["smtp_routing.server.state"]._smtp_routing_succeeded(outlook)
        mail.send()
        self.assertTrue(self.oauth_smtpd.wait_for(1))
        self.assertEqual(mail.state, "sent")
        self.assertFalse(outlook.smtp_routing_oauth_problem)

    def test_a_revoked_consent_fails_over_to_another_server(self):
        gmail = self.connect_account(self.oauth_server("gmail", "Google", sequence=0))
        self.revoke(gmail)
        mail = self.create_mail(email_from=ALICE)
        mail.send()
        self.assertTrue(self.smtpd.wait_for(1), "the password server should have taken the mail")
        self.assertEqual(mail.state, "sent")
        self.assertEqual(self.logs(gmail).mapped("category"), ["oauth_revoked"])
        self.assertIn("Reconnect the account", gmail.smtp_routing_oauth_problem)

    def test_an_expired_client_secret_says_to_renew_it(self):
        outlook = self.connect_account(self.oauth_server("outlook", "Microsoft 365", sequence=0))
        outlook.sudo().microsoft_outlook_access_token_expiration = 1
        self.provider.expire_client_secret("odoo-app")
        self.addCleanup(self.provider.expired_secrets.clear)
        self.create_mail(email_from=ALICE).send()
        self.assertTrue(self.smtpd.wait_for(1))
        self.assertEqual(self.logs(outlook).mapped("category"), ["oauth_revoked"])
        self.assertIn("client secret has probably expired", outlook.smtp_routing_oauth_problem)

    def test_an_unreachable_sign_in_service_is_temporary_and_tells_nobody(self):
        outlook = self.connect_account(self.oauth_server("outlook", "Microsoft 365", sequence=0))
        outlook.sudo().microsoft_outlook_access_token_expiration = 1
        self.provider.add_fault("refresh_token", status=503, error="temporarily_unavailable")
        self.create_mail(email_from=ALICE).send()
        self.assertTrue(self.smtpd.wait_for(1))
        self.assertEqual(self.logs(outlook).mapped("category"), ["temporary"])
        self.assertFalse(outlook.smtp_routing_oauth_problem)
        self.assertFalse(self.admin_notices(outlook))

    def test_the_owner_of_a_users_own_server_is_told_not_the_administrators(self):
        owner = new_test_user(self.env, login="alice", email=ALICE, groups="base.group_user")
        # a user's own server must be on the internet; this one is on loopback
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")
        outlook = self.connect_account(self.oauth_server("outlook", "Alice's mailbox", smtp_routing_owner_id=owner.id))
        self.revoke(outlook)
        with self.assertRaisesRegex(UserError, "no longer accepts the sign-in"):
            outlook.connect(mail_server_id=outlook.id)
        self.assertFalse(self.admin_notices(outlook))
        told = self.env["mail.message"].search([("partner_ids", "in", owner.partner_id.ids)])
        self.assertEqual(len(told), 1)
        self.assertIn("Reconnect the account", told.body)


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestOwnOAuthAccount(OAuthCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # users' own servers must be on the internet; the loopback fixture is not
        cls.env["ir.config_parameter"].set_param("smtp_routing.personal_servers_allow_private", "1")
        cls.alice = new_test_user(
            cls.env,
            login="alice",
            name="Alice Consultant",
            email=ALICE,
            groups="base.group_user,base.group_partner_manager",
            context={"no_reset_password": True},
        )
        cls.client = cls.env["res.partner"].create({"name": "Client", "email": "client@client.example"})

    def connect_own(self, method):
        """Preferences > Connect my ... account, as Alice: the provider's page, then Odoo's callback as Alice."""
        self.provider.consent_user = ALICE
        alice = self.alice.with_user(self.alice)
        action = getattr(alice, f"action_smtp_routing_connect_{method}")()
        self.assertTrue(action["url"].startswith(self.provider.authorize_url))
        try:
            response = urllib.request.build_opener(_NoRedirect).open(action["url"], timeout=5)
        except urllib.error.HTTPError as redirect:
            response = redirect
        back = urllib.parse.urlsplit(response.headers["Location"])
        self.authenticate("alice", "alice")
        answer = self.url_open(f"{back.path}?{back.query}", allow_redirects=False)
        self.assertIn(answer.status_code, (302, 303), answer.text[:500])
        own = self.alice.smtp_routing_server_id.sudo()
        own.invalidate_recordset()
        own.write({"smtp_host": self.oauth_smtpd.host, "smtp_port": self.oauth_smtpd.port})  # the loopback provider
        return own

    def test_connect_my_microsoft_365_account_creates_my_throttled_server_and_sends_from_and_to_me(self):
        own = self.connect_own("outlook")
        self.assertEqual(
            (own.smtp_routing_owner_id, own.smtp_authentication, own.from_filter, own.smtp_user),
            (self.alice, "outlook", ALICE, ALICE),
        )
        self.assertTrue(own.smtp_routing_oauth_connected)
        self.assertEqual((own.smtp_routing_throttle_max, own.smtp_routing_throttle_unit), (10, "minutes"))
        self.assertFalse(own.smtp_routing_user_selectable)
        # Send me a test: from Alice to Alice, through her own account
        result = self.alice.with_user(self.alice).action_smtp_routing_test_own_server()
        self.assertEqual(result["params"]["type"], "success", result["params"]["message"])
        self.assertTrue(self.oauth_smtpd.wait_for(1))
        received = self.oauth_smtpd.messages[0]
        self.assertEqual((received.auth_user, received.mail_from, received.rcpt_tos), (ALICE, ALICE, (ALICE,)))
        # her personal mail to a client goes through it; the company's system mail never does
        self.oauth_smtpd.clear()
        self.client.with_user(self.alice).message_post(
            body="Hello", message_type="comment", subtype_xmlid="mail.mt_comment", partner_ids=self.client.ids
        )
        self.assertTrue(self.oauth_smtpd.wait_for(1))
        self.assertEqual(self.oauth_smtpd.recipients, ["client@client.example"])
        self.smtpd.clear()
        self.create_mail(email_from=ALICE, email_to="someone@client.example").send()
        self.assertTrue(self.smtpd.wait_for(1), "system mail goes through the company's server")
        self.assertEqual(len(self.oauth_smtpd.messages), 1)

    def test_connect_my_google_account_is_throttled_at_30_per_minute_by_default(self):
        self.env["ir.config_parameter"].set_param("smtp_routing.personal_gmail_per_minute", "25")
        own = self.connect_own("gmail")
        self.assertEqual((own.smtp_authentication, own.smtp_routing_throttle_max), ("gmail", 25))
        self.assertTrue(own.smtp_routing_oauth_connected)
        self.alice.with_user(self.alice).action_smtp_routing_test_own_server()
        self.assertTrue(self.oauth_smtpd.wait_for(1))
        self.assertEqual(self.oauth_smtpd.messages[0].auth_user, ALICE)

    def test_nobody_else_can_use_my_consent_callback(self):
        own = self.connect_own("outlook")
        ben = new_test_user(self.env, login="ben", email="ben@example.com", groups="base.group_user")
        forged = json.dumps({"model": "ir.mail_server", "id": own.id, "csrf_token": own._get_outlook_csrf_token()})
        self.assertFalse(self.env["res.users"].with_user(ben)._smtp_routing_own_server_from_state(forged, "outlook"))
        self.authenticate("ben", "ben")
        answer = self.url_open(f"/microsoft_outlook/confirm?code=x&state={urllib.parse.quote(forged)}")
        self.assertEqual(answer.status_code, 403)  # Odoo's own handling: administrators only
        with self.assertRaisesRegex(AccessError, "your own account"):
            self.alice.with_user(ben).action_smtp_routing_connect_outlook()
