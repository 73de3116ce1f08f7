# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo.exceptions import UserError, ValidationError
from odoo.tests import Form, TransactionCase, tagged

from ..testing.smtpd import closed_port
from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing")
class TestServerConfig(TransactionCase):
    def _server(self, **values):
        return self.env["ir.mail_server"].create({"name": "S", "smtp_host": "smtp.example.com", **values})

    def test_host_notations_are_normalised(self):
        cases = [
            ("[smtp.example.com]:465", 25, "smtp.example.com", 465),
            ("smtp.example.com:587", 25, "smtp.example.com", 587),
            ("SMTP.Example.com", 2525, "smtp.example.com", 2525),
        ]
        for typed, port, host, expected_port in cases:
            with self.subTest(typed=typed):
                server = self._server(smtp_host=typed, smtp_port=port)
                self.assertEqual((server.smtp_host, server.smtp_port), (host, expected_port))
        server = self._server()
        server.smtp_host = "[relay.example.com]:2525"
        self.assertEqual((server.smtp_host, server.smtp_port), ("relay.example.com", 2525))

    def test_bad_hosts_and_ports_get_clear_errors(self):
        cases = [
            ({"smtp_host": "smtp example.com"}, "cannot contain spaces"),
            ({"smtp_host": "smtp.example.com:99999"}, "between 1 and 65535"),
            ({"smtp_host": "smtp.example.com", "smtp_port": 0}, "between 1 and 65535"),
            ({"smtp_host": "smtp.example.com", "smtp_port": 70000}, "between 1 and 65535"),
            ({"smtp_host": "bad..host"}, "not a valid host name"),
            ({"smtp_host": False}, "Enter the SMTP host"),
            ({"smtp_host": "   "}, "Enter the SMTP host"),
        ]
        for values, message in cases:
            with self.subTest(values=values), self.assertRaisesRegex(ValidationError, message):
                self._server(**values)

    def test_one_default_per_company(self):
        company_b = self.env["res.company"].create({"name": "Company B"})
        first = self._server(name="A1", smtp_routing_is_default=True)
        other_company = self._server(name="B1", smtp_routing_is_default=True, company_id=company_b.id)
        second = self._server(name="A2")
        second.smtp_routing_is_default = True
        self.assertFalse(first.smtp_routing_is_default)
        self.assertTrue(second.smtp_routing_is_default)
        self.assertTrue(other_company.smtp_routing_is_default, "another company keeps its own default")

    def test_default_server_is_preferred_for_mail_naming_none(self):
        Server = self.env["ir.mail_server"]
        Server.search([]).write({"sequence": 100})
        high = self._server(name="High priority", sequence=1)
        default = self._server(name="Default", sequence=50, smtp_routing_is_default=True)
        own_domain = self._server(name="Own domain", sequence=60, from_filter="practice.example")
        self.assertEqual(Server._find_mail_server("someone@elsewhere.example")[0], default)
        # a server that covers the From still wins: the default does not break from_filter routing
        self.assertEqual(Server._find_mail_server("ana@practice.example")[0], own_domain)
        default.smtp_routing_is_default = False
        self.assertEqual(Server._find_mail_server("someone@elsewhere.example")[0], high)

    def test_provider_preset_fills_connection(self):
        with Form(self.env["ir.mail_server"]) as form:
            form.name = "Office 365"
            form.smtp_routing_provider = "microsoft365"
            self.assertEqual(
                (form.smtp_host, form.smtp_port, form.smtp_encryption), ("smtp.office365.com", 587, "starttls")
            )
            self.assertIn("30 per minute", form.smtp_routing_provider_note)
            self.assertIn("10,000 recipients per day", form.smtp_routing_provider_note)
            form.smtp_routing_provider = "amazon_ses_eu-west-1"
            self.assertEqual(form.smtp_host, "email-smtp.eu-west-1.amazonaws.com")
            form.smtp_routing_provider = "sendgrid"
            self.assertEqual(form.smtp_user, "apikey")

    def test_switching_encryption_keeps_a_typed_port(self):
        """Issue 19: stock Odoo silently reset the port to 25 when the encryption changed."""
        with Form(self.env["ir.mail_server"]) as form:
            form.name = "Own relay"
            form.smtp_host = "relay.practice.example"
            form.smtp_port = 2599
            form.smtp_encryption = "starttls"
            self.assertEqual(form.smtp_port, 2599)
            form.smtp_encryption = "ssl"
            self.assertEqual(form.smtp_port, 2599)
            form.smtp_port = 465
            with self.assertLogs("odoo.tests.form.onchange", "WARNING") as logs:
                form.smtp_encryption = "starttls"
            self.assertEqual(form.smtp_port, 587, "a usual port follows the encryption, and a notice says so")
            self.assertIn("The port changed from 465 to 587", logs.output[0])
        # the list shows ports as typed, never "2,599"
        arch = self.env["ir.mail_server"].get_views([(False, "list")])["views"]["list"]["arch"]
        self.assertRegex(arch, r'name="smtp_port"[^>]*format')

    def test_connections_follow_the_preset_and_stay_in_range(self):
        self.assertEqual(self._server().smtp_routing_connections, 4)
        self.assertEqual(self._server(smtp_routing_provider="microsoft365").smtp_routing_connections, 3)
        self.assertEqual(self._server(smtp_routing_connections=8).smtp_routing_connections, 8)
        # a value the admin typed wins over the preset's
        typed = self._server(smtp_routing_provider="microsoft365", smtp_routing_connections=1)
        self.assertEqual(typed.smtp_routing_connections, 1)
        with Form(self.env["ir.mail_server"]) as form:
            form.name = "SendGrid"
            form.smtp_routing_provider = "sendgrid"
            self.assertEqual(form.smtp_routing_connections, 8)
            form.smtp_routing_provider = "microsoft365"
            self.assertEqual(form.smtp_routing_connections, 3)
            form.smtp_routing_connections = 2
        self.assertEqual(form.record.smtp_routing_connections, 2)
        for bad in (0, -1, 17):
            with self.subTest(connections=bad), self.assertRaisesRegex(ValidationError, "between 1 and 16"):
                self._server(smtp_routing_connections=bad)
        with self.assertRaisesRegex(ValidationError, "between 1 and 16"):
            typed.smtp_routing_connections = 100

    def test_consumer_address_warning(self):
        server = self._server(smtp_routing_from_email="practice@gmail.com")
        self.assertIn("practice@gmail.com", server.smtp_routing_warning)
        server.smtp_routing_from_email = "office@practice.example"
        self.assertFalse(server.smtp_routing_warning)
        server.smtp_user = "someone@hotmail.com"
        self.assertIn("hotmail.com", server.smtp_routing_warning)

    def test_identity_validation(self):
        with self.assertRaisesRegex(ValidationError, "not a valid email address"):
            self._server(smtp_routing_from_email="office at practice")
        with self.assertRaisesRegex(ValidationError, "line breaks"):
            self._server(smtp_routing_from_name="Office\r\nBcc: victim@example.com")


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestServerIdentity(LiveSmtpCase):
    def test_system_mail_takes_server_from_and_sender(self):
        self.mail_server.write(
            {
                "smtp_routing_from_email": "office@practice.example",
                "smtp_routing_from_name": "Practice Office",
                "smtp_routing_sender_email": "relay@practice.example",
            }
        )
        alias_domain = self.env["mail.alias.domain"].create({"name": "practice.example"})
        self.env.company.alias_domain_id = alias_domain
        default_from = self.env["ir.mail_server"]._get_default_from_address()
        self.assertEqual(default_from, "notifications@practice.example")
        system_mail = self.create_mail(email_from=default_from, subject="System")
        personal_mail = self.create_mail(email_from="Ana <ana@practice.example>", subject="Personal")
        (system_mail | personal_mail).send()
        self.assertTrue(self.smtpd.wait_for(2))
        by_subject = {received.message["Subject"]: received for received in self.smtpd.messages}
        self.assertEqual(by_subject["System"].message["From"], "Practice Office <office@practice.example>")
        self.assertEqual(by_subject["System"].message["Sender"], "relay@practice.example")
        # mail written by a person keeps its author (Odoo may encapsulate it, never replace it)
        self.assertIn("Ana", by_subject["Personal"].message["From"])
        self.assertNotIn("office@practice.example", by_subject["Personal"].message["From"])

    def test_test_connection_names_the_host_and_port_it_tried(self):
        server = self.env["ir.mail_server"].create(
            {"name": "Closed", "smtp_host": "127.0.0.1", "smtp_port": closed_port(), "smtp_encryption": "none"}
        )
        with self.assertRaisesRegex(UserError, rf"Tried 127\.0\.0\.1:{server.smtp_port} "):
            server.test_smtp_connection()
        Log = self.env["smtp_routing.delivery.log"]
        hint = Log._smtp_routing_hint("connection_refused", "127.0.0.1", 2599)
        self.assertIn("127.0.0.1:2599", hint)
        self.assertNotIn("25 ", hint, "port 2599 is not port 25")
        self.assertIn("port 25", Log._smtp_routing_hint("connection_refused", "relay.example", 25))
