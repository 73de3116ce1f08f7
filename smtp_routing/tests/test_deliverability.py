# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Deliverability in Odoo: checks against a loopback DNS server, DKIM signatures verified by dkimpy."""

import dkim as dkimpy

from odoo.exceptions import AccessError, ValidationError
from odoo.tests import new_test_user, tagged

from ..testing.dnsd import DnsServer
from .common import LiveSmtpCase


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestDeliverability(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = DnsServer().start()
        cls.addClassCleanup(cls.dns.stop)
        cls.env["ir.config_parameter"].set_param("smtp_routing.dns_nameserver", f"127.0.0.1:{cls.dns.port}")
        cls.mail_server.from_filter = "practice.example"

    def setUp(self):
        super().setUp()
        self.dns.records.clear()
        self.dns.add("practice.example", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        self.dns.add("practice.example", "MX", "10 mx.practice.example")
        self.dns.add("_dmarc.practice.example", "TXT", "v=DMARC1; p=quarantine; rua=mailto:dmarc@practice.example")

    def _key(self, algorithm="rsa"):
        key = self.env["smtp_routing.dkim.key"].create(
            {"domain": "Practice.Example", "selector": "s1", "algorithm": algorithm}
        )
        self.dns.add("s1._domainkey.practice.example", "TXT", key.dns_record)
        return key

    def _checks(self):
        return self.env["smtp_routing.dns.check"].search([("server_id", "=", self.mail_server.id)], order="id")

    def test_check_now_good_domain_and_history_of_changes(self):
        self._key()
        self.mail_server.action_smtp_routing_check_dns()
        self.assertEqual(self.mail_server.smtp_routing_dns_status, "ok", self.mail_server.smtp_routing_dns_report)
        self.assertIn("[OK] SPF", self.mail_server.smtp_routing_dns_report)
        self.assertIn("[OK] DKIM: DKIM selector s1: 2048-bit RSA key", self.mail_server.smtp_routing_dns_report)
        self.assertTrue(self.mail_server.smtp_routing_dns_checked_at)
        # nothing changed: no new history row
        self.mail_server.action_smtp_routing_check_dns()
        self.assertEqual(len(self._checks()), 1)
        # the DMARC record disappears: a new row, with the record to publish
        del self.dns.records[("_dmarc.practice.example", "TXT")]
        self.env["ir.mail_server"]._cron_smtp_routing_check_dns()
        checks = self._checks()
        self.assertEqual(checks.mapped("status"), ["ok", "fail"])
        self.assertIn('_dmarc.practice.example TXT "v=DMARC1; p=none', checks[-1].fixes)
        self.mail_server.invalidate_recordset()
        self.assertEqual(self.mail_server.smtp_routing_dns_status, "fail")

    def test_server_not_authorised_by_spf(self):
        self.dns.records[("practice.example", "TXT")] = ["v=spf1 ip4:192.0.2.1 -all"]
        self.mail_server.action_smtp_routing_check_dns()
        report = self.mail_server.smtp_routing_dns_report
        self.assertIn("[FAIL] SPF: SPF fail for ip4:127.0.0.1", report)
        self.assertIn('practice.example TXT "v=spf1 ip4:192.0.2.1 ip4:127.0.0.1 -all"', report)

    def test_dns_failure_is_a_result_not_a_crash(self):
        self.env["ir.config_parameter"].set_param("smtp_routing.dns_nameserver", "127.0.0.1:9")
        self.mail_server.action_smtp_routing_check_dns()
        self.assertIn(self.mail_server.smtp_routing_dns_status, ("fail", "error"))

    def _send_and_receive(self):
        mail = self.create_mail(email_from="Practice Office <office@practice.example>", subject="Signed")
        mail.send()
        self.assertTrue(self.smtpd.wait_for(1))
        return self.smtpd.messages[-1].content

    def _verify(self, content, key):
        def dnsfunc(name, timeout=5):
            self.assertEqual(name, b"s1._domainkey.practice.example.")
            return key.dns_record.encode()

        return dkimpy.verify(content, dnsfunc=dnsfunc)

    def test_outgoing_mail_is_signed_and_verifies(self):
        for algorithm in ("rsa", "ed25519"):
            with self.subTest(algorithm=algorithm):
                self.env["smtp_routing.dkim.key"].search([]).unlink()
                self.smtpd.clear()
                key = self._key(algorithm)
                content = self._send_and_receive()
                self.assertIn(b"DKIM-Signature:", content)
                self.assertTrue(self._verify(content, key), "dkimpy rejects the signature")
                self.assertFalse(self._verify(content.replace(b"Hello Bob", b"Hello Eve"), key))

    def test_mail_of_other_domains_is_not_signed(self):
        self._key()
        self.mail_server.from_filter = False
        mail = self.create_mail(email_from="someone@elsewhere.example")
        mail.send()
        self.assertTrue(self.smtpd.wait_for(1))
        self.assertNotIn(b"DKIM-Signature:", self.smtpd.messages[-1].content)

    def test_private_key_is_encrypted_and_admin_only(self):
        key = self._key()
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT count(*) FROM smtp_routing_dkim_key WHERE private_key_encrypted LIKE %s", ["%PRIVATE KEY%"]
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)
        self.assertTrue(key.sudo().private_key_encrypted.startswith("srenc1:"))
        user = new_test_user(self.env, login="dkim_reader", groups="base.group_user")
        with self.assertRaises(AccessError):
            key.with_user(user).read(["domain"])

    def test_key_validation(self):
        with self.assertRaisesRegex(ValidationError, "is not a domain name"):
            self.env["smtp_routing.dkim.key"].create({"domain": "not a domain", "selector": "s1"})
        with self.assertRaisesRegex(ValidationError, "letters, digits and dashes"):
            self.env["smtp_routing.dkim.key"].create({"domain": "practice.example", "selector": "bad_selector!"})

    def test_a_pasted_rsa_key_below_1024_bits_is_refused(self):
        """RFC 8301: signers must use RSA keys of 1024 bits at least, and receivers ignore signatures made with
        shorter ones; a pasted short key is refused instead of signing every mail uselessly."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        def pem(bits):
            return (
                rsa.generate_private_key(public_exponent=65537, key_size=bits)
                .private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                .decode()
            )

        Key = self.env["smtp_routing.dkim.key"]
        with self.assertRaisesRegex(ValidationError, "512 bits"):
            Key.create({"domain": "practice.example", "selector": "short", "private_key": pem(512)})
        key = Key.create({"domain": "practice.example", "selector": "s1"})
        stored = key.sudo().private_key_encrypted
        with self.assertRaisesRegex(ValidationError, "1016 bits"):
            key.write({"private_key": pem(1016)})
        self.assertEqual(key.sudo().private_key_encrypted, stored, "the key in use is kept")
        key.write({"private_key": pem(1024)})
        self.assertIn("k=rsa", key.dns_record)
        self.assertNotEqual(key.sudo().private_key_encrypted, stored)

    def test_an_existing_private_key_can_be_pasted_and_is_write_only(self):
        from ..tools import dkim as dkim_tool

        pem, record = dkim_tool.generate_key("ed25519")
        key = self.env["smtp_routing.dkim.key"].create(
            {"domain": "practice.example", "selector": "s1", "algorithm": "ed25519", "private_key": pem}
        )
        self.assertEqual(key.dns_record, record, "the pasted key signs, not a generated one")
        self.assertFalse(key.private_key, "never read back")
        self.assertNotIn("PRIVATE KEY", key.sudo().private_key_encrypted)
        self.dns.add("s1._domainkey.practice.example", "TXT", key.dns_record)
        self.assertTrue(self._verify(self._send_and_receive(), key))
        key.write({"private_key": False})
        self.assertEqual(key.dns_record, record, "an empty field keeps the key")
        with self.assertRaisesRegex(ValidationError, "does not match the chosen algorithm"):
            key.write({"private_key": dkim_tool.generate_key("rsa")[0]})
        with self.assertRaisesRegex(ValidationError, "not an RSA or Ed25519 key"):
            key.write({"private_key": "not a key"})
