# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models


class ResPartner(models.Model):
    _inherit = "res.partner"

    def write(self, vals):
        """A user's email is their contact's: an administrator changing it approves it for sending."""
        result = super().write(vals)
        if "email" in vals:
            users = self.sudo().with_context(active_test=False).user_ids
            if users:
                users._smtp_routing_approve_email()
        return result
