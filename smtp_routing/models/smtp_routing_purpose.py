# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import fields, models

from .smtp_routing_route import PURPOSE_SELECTION


class SmtpRoutingPurpose(models.Model):
    """The three purposes as records, so routes can take several in a many2many."""

    _name = "smtp_routing.purpose"
    _description = "Mail Purpose"
    _order = "sequence"

    name = fields.Char(required=True, translate=True)
    code = fields.Selection(PURPOSE_SELECTION, required=True)
    sequence = fields.Integer()

    _sql_constraints = [("code_unique", "UNIQUE(code)", "One record per purpose.")]
