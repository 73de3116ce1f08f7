# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import fields, models


class SmtpRoutingRouteLine(models.Model):
    _name = "smtp_routing.route.line"
    _description = "Outgoing Mail Route Server"
    _order = "sequence, id"

    route_id = fields.Many2one("smtp_routing.route", required=True, ondelete="cascade", index=True)
    sequence = fields.Integer(default=10)
    server_id = fields.Many2one("ir.mail_server", required=True, ondelete="cascade")
