# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo's Outlook OAuth servers under smtp_routing: write-only encrypted tokens, classified token errors.

Odoo's own code signs in and refreshes the tokens, unchanged: smtp_routing reveals a
server's tokens to it for that one sign-in (see ``IrMailServer._smtp_login``).

App-only servers (Microsoft 365's client-credentials flow, for a shared mailbox the tenant
admin granted the application): no user connects an account; the application asks for its
own access token (scope ``https://outlook.office365.com/.default``) and signs in for the
mailbox named in *Username*. Its access token is kept like the others: encrypted, write-only.
"""

import time

from odoo import api, fields, models

from odoo.addons.microsoft_outlook.models import microsoft_outlook_mixin
from odoo.addons.smtp_routing.models import oauth
from odoo.addons.smtp_routing.models.smtp_routing_oauth_mixin import token_field

oauth.install(microsoft_outlook_mixin)

APP_ONLY_SCOPE = "https://outlook.office365.com/.default"


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    microsoft_outlook_refresh_token = token_field("Outlook Refresh Token", "_inverse_microsoft_outlook_refresh_token")
    microsoft_outlook_access_token = token_field("Outlook Access Token", "_inverse_microsoft_outlook_access_token")

    smtp_routing_outlook_app_only = fields.Boolean(
        string="App-only (shared mailbox)",
        groups="base.group_system",
        help="Sign in as the application (client-credentials flow) for the mailbox in Username, instead of a "
        "connected user: for a shared mailbox your Microsoft 365 administrator granted the application "
        "(SMTP.SendAsApp and the mailbox's permission). No Connect your account needed.",
    )

    def _inverse_microsoft_outlook_refresh_token(self):
        self._smtp_routing_store_token("microsoft_outlook_refresh_token")

    def _inverse_microsoft_outlook_access_token(self):
        self._smtp_routing_store_token("microsoft_outlook_access_token")

    @api.onchange("smtp_authentication")
    def _onchange_smtp_authentication_outlook(self):
        """Odoo puts smtp.outlook.com; the Microsoft 365 preset keeps Microsoft's documented smtp.office365.com."""
        res = super()._onchange_smtp_authentication_outlook()
        if self.smtp_authentication == "outlook" and self.smtp_routing_provider == "microsoft365":
            self.smtp_host = "smtp.office365.com"
        return res

    def _fetch_outlook_token(self, grant_type, **values):
        return self._smtp_routing_token_call(super()._fetch_outlook_token, grant_type, **values)

    def _smtp_routing_check_connected(self):
        """An app-only server needs no connected account: the application signs in by itself."""
        if self.smtp_authentication == "outlook" and self.sudo().smtp_routing_outlook_app_only:
            return
        return super()._smtp_routing_check_connected()

    def _generate_outlook_oauth2_string(self, login):
        """App-only: the application's own access token (client-credentials grant), renewed when it expires."""
        self.ensure_one()
        if not self.sudo().smtp_routing_outlook_app_only:
            return super()._generate_outlook_oauth2_string(login)
        now = int(time.time())
        if not self.microsoft_outlook_access_token or (self.microsoft_outlook_access_token_expiration or 0) < now:
            answer = self._fetch_outlook_token("client_credentials", scope=APP_ONLY_SCOPE)
            self.microsoft_outlook_access_token = answer["access_token"]
            self.microsoft_outlook_access_token_expiration = now + int(answer.get("expires_in") or 3600)
        return "user=%s\1auth=Bearer %s\1\1" % (login, self.microsoft_outlook_access_token)
