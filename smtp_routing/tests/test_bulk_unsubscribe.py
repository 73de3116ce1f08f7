# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Bulk mail carries a one-click unsubscribe (RFC 8058) that survives DKIM signing and reaches the wire unfolded."""

import re

import dkim as dkimpy

from odoo.tests import HttpCase, tagged

from ..testing.dnsd import DnsServer
from .common import LiveSmtpCase

MASS_MAILING_URL = (
    "https://odoo.practice.example/mailing/42/unsubscribe_oneclick?document_id=7&email=bob%40example.com"
    "&hash_token=0f3c9a2b7d4e6f8a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182"
)


def _header_lines(content, name):
    """The raw lines (with continuation lines) of a header in a message as received."""
    head = content.split(b"\r\n\r\n", 1)[0]
    return re.findall(rb"^" + re.escape(name.encode()) + rb":[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", head, re.M | re.I)


@tagged("post_install", "-at_install", "smtp_routing", "smtp_live")
class TestBulkUnsubscribe(LiveSmtpCase):
    smtp_credentials = {}
    smtp_tls = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dns = DnsServer().start()
        cls.addClassCleanup(cls.dns.stop)
        cls.mail_server.from_filter = "practice.example"
        cls.key = cls.env["smtp_routing.dkim.key"].create(
            {"domain": "practice.example", "selector": "s1", "algorithm": "rsa"}
        )

    def _send(self, **values):
        self.smtpd.clear()
        mail = self.create_mail(email_from="Practice Office <office@practice.example>", **values)
        mail.send()
        self.assertTrue(self.smtpd.wait_for(1))
        return self.smtpd.messages[-1].content

    def _verify(self, content):
        return dkimpy.verify(content, dnsfunc=lambda name, timeout=5: self.key.dns_record.encode())

    def _signed_headers(self, content):
        (signature,) = _header_lines(content, "DKIM-Signature")
        tags = dict(
            part.strip().split(b"=", 1) for part in re.sub(rb"\s+", b"", signature.split(b":", 1)[1]).split(b";")
        )
        return tags[b"h"].decode().split(":")

    def test_bulk_mail_gets_a_one_click_link_signed_and_unfolded(self):
        content = self._send(smtp_routing_purpose="bulk", email_to="Bob <bob@example.com>")
        (line,) = _header_lines(content, "List-Unsubscribe")
        match = re.fullmatch(rb"List-Unsubscribe: <(https?://[^\s>]+/smtp_routing/unsubscribe/([^\s>/]+))>", line)
        self.assertTrue(match, f"not one unfolded line without encoded words: {line!r}")
        token = match.group(2).decode()
        self.assertEqual(self.env["mail.blacklist"]._smtp_routing_unsubscribe_address(token), "bob@example.com")
        self.assertEqual(
            _header_lines(content, "List-Unsubscribe-Post"), [b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
        )
        self.assertTrue(self._verify(content), "dkimpy rejects the signature")
        self.assertIn("list-unsubscribe", self._signed_headers(content))
        self.assertIn("list-unsubscribe-post", self._signed_headers(content))
        # both headers are covered: changing either breaks the signature
        self.assertFalse(self._verify(content.replace(match.group(2), match.group(2)[:-2] + b"xx")))
        self.assertFalse(self._verify(content.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Clicks")))

    def test_an_existing_link_is_kept_unfolded(self):
        """mass_mailing's own link (long: document, address and hash) is reused, unfolded and signed."""
        headers = {"List-Unsubscribe": f"<{MASS_MAILING_URL}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
        content = self._send(smtp_routing_purpose="bulk", headers=repr(headers))
        self.assertGreater(len(MASS_MAILING_URL), 100)
        self.assertEqual(
            _header_lines(content, "List-Unsubscribe"), [f"List-Unsubscribe: <{MASS_MAILING_URL}>".encode()]
        )
        self.assertNotIn(b"=?utf-8?", content.split(b"\r\n\r\n", 1)[0])
        self.assertTrue(self._verify(content))
        self.assertIn("list-unsubscribe-post", self._signed_headers(content))

    def test_only_bulk_mail_to_one_address_gets_a_link(self):
        self.assertFalse(_header_lines(self._send(), "List-Unsubscribe"), "transactional mail: no link")
        several = self._send(smtp_routing_purpose="bulk", email_to="bob@example.com, carol@example.com")
        self.assertFalse(_header_lines(several, "List-Unsubscribe"), "one link cannot name two people")

    def test_signature_with_a_long_header_list_still_verifies(self):
        """Every signable header present: the h= list is longer than a line and must not become encoded words."""
        content = self._send(
            smtp_routing_purpose="bulk",
            email_cc="carol@example.com",
            reply_to="desk@practice.example",
            references="<a@practice.example> <b@practice.example>",
        )
        self.assertGreater(len(":".join(self._signed_headers(content))), 78)
        self.assertTrue(self._verify(content))


@tagged("post_install", "-at_install", "smtp_routing")
class TestUnsubscribeLink(HttpCase):
    def _url(self, address="bob@example.com"):
        return self.env["mail.blacklist"]._smtp_routing_unsubscribe_url(address, self.base_url())

    def _blacklisted(self, address="bob@example.com"):
        return bool(self.env["mail.blacklist"].search([("email", "=", address)]))

    def test_one_click_post_unsubscribes(self):
        response = self.url_open(self._url(), data={"List-Unsubscribe": "One-Click"})
        self.assertEqual(response.status_code, 200)
        self.assertIn("bob@example.com will receive no more mailings", response.text)
        self.assertTrue(self._blacklisted())

    def test_get_only_asks(self):
        """Link scanners fetch URLs: a GET shows the button and unsubscribes nobody."""
        response = self.url_open(self._url())
        self.assertEqual(response.status_code, 200)
        self.assertIn('<form method="post">', response.text)
        self.assertFalse(self._blacklisted())

    def test_forged_or_broken_links_are_refused(self):
        url = self._url()
        payload, signature = url.rsplit("/", 1)[1].split(".")
        other = self._url("alice@example.com").rsplit("/", 1)[1].split(".")[0]
        for token in (f"{other}.{signature}", f"{payload}.{signature[:-2]}AA", "nonsense", f"{payload}."):
            with self.subTest(token=token):
                response = self.url_open(f"{url.rsplit('/', 1)[0]}/{token}", data={"List-Unsubscribe": "One-Click"})
                self.assertEqual(response.status_code, 404)
        self.assertFalse(self.env["mail.blacklist"].search([("email", "in", ["bob@example.com", "alice@example.com"])]))
