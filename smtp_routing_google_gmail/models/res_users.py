# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models


class ResUsers(models.Model):
    _inherit = "res.users"

    def action_smtp_routing_connect_gmail(self):
        """Preferences: Connect my Google account."""
        return self._smtp_routing_connect_own_account("gmail")
