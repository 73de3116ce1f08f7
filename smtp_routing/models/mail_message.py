# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import fields, models

from .smtp_routing_route import PURPOSE_SELECTION


class MailMessage(models.Model):
    _inherit = "mail.message"

    # On the message (mail.mail inherits them): all the mails of one message share them.
    smtp_routing_route_id = fields.Many2one(
        "smtp_routing.route",
        string="Route",
        ondelete="set null",
        help="Route chosen by the template or in the composer ('Email Other').",
    )
    smtp_routing_purpose = fields.Selection(
        PURPOSE_SELECTION, string="Purpose", help="Left empty, the purpose is deduced when the mail is sent."
    )
