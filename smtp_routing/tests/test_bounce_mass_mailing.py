# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""mass_mailing's automatic blacklist, fed real bounces through the mail gateway: hard bounces count, soft ones not.

mass_mailing (not a dependency of smtp_routing) blacklists an address in ``_routing_handle_bounce`` when it has
5 bounced traces in the last 13 weeks, spread over more than a week, and, if the address is a partner's, the
partner's bounce counter is at 5. These tests run in the ``odoo-core`` pass of ``scripts/run_tests.py``, where
mass_mailing is installed (tag ``smtp_routing_mass_mailing``; left out of ``/smtp_routing``'s standard tests).
"""

from datetime import timedelta
from itertools import count

from odoo import fields
from odoo.tests import TransactionCase, tagged
from odoo.tools import mute_logger

from .test_bounce_gateway import GATEWAY_LOGGER, make_bounce

SOFT = ("5.2.2", "552 5.2.2 Mailbox full")
HARD = ("5.1.1", "550 5.1.1 User unknown")


@tagged("-standard", "smtp_routing_mass_mailing", "post_install", "-at_install")
class TestBounceMassMailingBlacklist(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        assert "mailing.trace" in cls.env, "needs mass_mailing installed (the odoo-core pass of run_tests.py)"
        cls.mailing = cls.env["mailing.mailing"].create(
            {
                "subject": "Spring offer",
                "body_html": "<p>Spring offer</p>",
                "mailing_model_id": cls.env["ir.model"]._get_id("res.partner"),
            }
        )
        cls.numbers = count(1)

    def _trace(self, record, status="sent", weeks_ago=0):
        """A trace of the mailing sent to ``record`` (a partner, or a mailing contact)."""
        number = next(self.numbers)
        trace = self.env["mailing.trace"].create(
            {
                "model": record._name,
                "res_id": record.id,
                "email": record.email,
                "message_id": f"<offer-{number}@practice.example>",
                "mass_mailing_id": self.mailing.id,
                "trace_status": status,
            }
        )
        if weeks_ago:
            self.env.flush_all()
            self.env.cr.execute(
                "UPDATE mailing_trace SET write_date = %s WHERE id = %s",
                [fields.Datetime.now() - timedelta(weeks=weeks_ago), trace.id],
            )
            trace.invalidate_recordset()
        return trace

    def _bounce(self, trace, status_and_words):
        status, words = status_and_words
        raw = make_bounce(trace.email, status, words, trace.message_id, bounce_id=f"<b-{trace.id}@mx.example.com>")
        with mute_logger(GATEWAY_LOGGER):
            self.env["mail.thread"].message_process(None, raw)
        trace.invalidate_recordset()

    def _blacklisted(self, address):
        return bool(self.env["mail.blacklist"].search([("email", "=", address)]))

    def test_partner_soft_bounce_does_not_reach_the_blacklist_hard_does(self):
        partner = self.env["res.partner"].create({"name": "Full", "email": "full@example.net", "message_bounce": 4})
        for weeks in (5, 4, 3, 2):
            self._trace(partner, "bounce", weeks)
        soft = self._trace(partner)
        self._bounce(soft, SOFT)
        self.assertFalse(self._blacklisted("full@example.net"))
        self.assertEqual(partner.message_bounce, 4, "a soft bounce leaves the counter alone")
        self.assertEqual((soft.trace_status, soft.failure_type), ("error", "mail_bounce"))
        self.assertIn("Mailbox full", soft.failure_reason)
        # the fifth hard bounce: mass_mailing's own rule blacklists, as in stock Odoo
        hard = self._trace(partner)
        self._bounce(hard, HARD)
        self.assertEqual(hard.trace_status, "bounce")
        self.assertEqual(partner.message_bounce, 5)
        self.assertTrue(self._blacklisted("full@example.net"))

    def test_address_without_partner_needs_five_hard_bounces(self):
        contact = self.env["mailing.contact"].create({"name": "Contact", "email": "contact@example.net"})
        for weeks in (5, 4, 3, 2):
            self._trace(contact, "bounce", weeks)
        self._bounce(self._trace(contact), SOFT)
        self.assertFalse(self._blacklisted("contact@example.net"), "stock Odoo blacklists here: 5 bounced traces")
        self._bounce(self._trace(contact), HARD)
        self.assertTrue(self._blacklisted("contact@example.net"))
        rows = self.env["smtp_routing.delivery.log"].search([("recipients", "=", "contact@example.net")])
        self.assertEqual(sorted(rows.mapped("bounce_class")), ["hard", "soft"])
