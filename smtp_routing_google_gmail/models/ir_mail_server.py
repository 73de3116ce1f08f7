# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo's Gmail OAuth servers under smtp_routing: write-only encrypted tokens, classified token errors.

Odoo's own code signs in and refreshes the tokens, unchanged: smtp_routing reveals a
server's tokens to it for that one sign-in (see ``IrMailServer._smtp_login``). Google's
endpoints are constants in Odoo's code; the system parameter
``smtp_routing.google_gmail_endpoint`` (like Odoo's ``microsoft_outlook.endpoint``)
sends the consent and token requests elsewhere: ``<endpoint>authorize``,
``<endpoint>token`` (a proxy, or a test provider).
"""

from werkzeug.urls import url_join

from odoo import models

from odoo.addons.google_gmail.models import google_gmail_mixin
from odoo.addons.smtp_routing.models import oauth
from odoo.addons.smtp_routing.models.smtp_routing_oauth_mixin import token_field

oauth.install(google_gmail_mixin)

ENDPOINT = "smtp_routing.google_gmail_endpoint"
GOOGLE_AUTHORIZE = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    google_gmail_authorization_code = token_field("Authorization Code", "_inverse_google_gmail_authorization_code")
    google_gmail_refresh_token = token_field("Refresh Token", "_inverse_google_gmail_refresh_token")
    google_gmail_access_token = token_field("Access Token", "_inverse_google_gmail_access_token")

    def _inverse_google_gmail_authorization_code(self):
        self._smtp_routing_store_token("google_gmail_authorization_code")

    def _inverse_google_gmail_refresh_token(self):
        self._smtp_routing_store_token("google_gmail_refresh_token")

    def _inverse_google_gmail_access_token(self):
        self._smtp_routing_store_token("google_gmail_access_token")

    def _smtp_routing_google_endpoint(self):
        return self.env["ir.config_parameter"].sudo().get_param(ENDPOINT)

    def _compute_gmail_uri(self):
        res = super()._compute_gmail_uri()
        endpoint = self._smtp_routing_google_endpoint()
        if endpoint:
            for server in self:
                server.google_gmail_uri = oauth.replace_prefix(
                    server.google_gmail_uri, GOOGLE_AUTHORIZE, url_join(endpoint, "authorize")
                )
        return res

    def _fetch_gmail_token(self, grant_type, **values):
        endpoint = self._smtp_routing_google_endpoint()

        def rewrite(url):
            return oauth.replace_prefix(url, GOOGLE_TOKEN, url_join(endpoint, "token")) if endpoint else url

        return self._smtp_routing_token_call(super()._fetch_gmail_token, grant_type, rewrite=rewrite, **values)
