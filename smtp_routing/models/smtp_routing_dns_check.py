# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import fields, models

STATUS_SELECTION = [("ok", "Good"), ("warn", "Could be better"), ("fail", "Problem"), ("error", "Not checked")]


class SmtpRoutingDnsCheck(models.Model):
    """One SPF/DKIM/DMARC diagnosis of a sender domain for a server; a row is kept when the result changes."""

    _name = "smtp_routing.dns.check"
    _description = "Deliverability Check"
    _order = "date desc, id desc"

    server_id = fields.Many2one("ir.mail_server", required=True, ondelete="cascade", index=True)
    date = fields.Datetime(required=True, default=fields.Datetime.now)
    domain = fields.Char(required=True)
    status = fields.Selection(STATUS_SELECTION, required=True)
    report = fields.Text()
    fixes = fields.Text(string="Records to Publish")
