# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo's Outlook OAuth servers under smtp_routing: write-only encrypted tokens, classified token errors.

Odoo's own code signs in and refreshes the tokens, unchanged: smtp_routing reveals a
server's tokens to it for that one sign-in (see ``IrMailServer._smtp_login``).
"""

from odoo import api, models

from odoo.addons.microsoft_outlook.models import microsoft_outlook_mixin
from odoo.addons.smtp_routing.models import oauth
from odoo.addons.smtp_routing.models.ir_mail_server import token_field

oauth.install(microsoft_outlook_mixin)


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    microsoft_outlook_refresh_token = token_field("Outlook Refresh Token", "_inverse_microsoft_outlook_refresh_token")
    microsoft_outlook_access_token = token_field("Outlook Access Token", "_inverse_microsoft_outlook_access_token")

    def _inverse_microsoft_outlook_refresh_token(self):
        self._smtp_routing_store_token("microsoft_outlook_refresh_token")

    def _inverse_microsoft_outlook_access_token(self):
        self._smtp_routing_store_token("microsoft_outlook_access_token")

    @api.onchange("smtp_authentication")
    def _onchange_smtp_authentication_outlook(self):
        """Odoo puts smtp.outlook.com; the Microsoft 365 preset keeps Microsoft's documented smtp.office365.com."""
        super()._onchange_smtp_authentication_outlook()
        if self.smtp_authentication == "outlook" and self.smtp_routing_provider == "microsoft365":
            self.smtp_host = "smtp.office365.com"

    def _fetch_outlook_token(self, grant_type, **values):
        return self._smtp_routing_token_call(super()._fetch_outlook_token, grant_type, **values)
