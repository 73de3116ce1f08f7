# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo's Outlook consent callback, also for a user connecting their own account.

Odoo's callback refuses everyone but administrators. A user who connects their own
Microsoft 365 account (Preferences) comes back here too (the provider knows one
redirect URI): when the signed state names that user's own Outlook server, the
tokens are fetched and stored (encrypted) on it; anything else goes to Odoo's own
handling, unchanged.
"""

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from odoo.addons.microsoft_outlook.controllers.main import MicrosoftOutlookController


class SmtpRoutingOutlookController(MicrosoftOutlookController):
    @http.route()
    def microsoft_outlook_callback(self, code=None, state=None, error_description=None, **kwargs):
        server = request.env["res.users"]._smtp_routing_own_server_from_state(state, "outlook")
        if server is None:
            return super().microsoft_outlook_callback(
                code=code, state=state, error_description=error_description, **kwargs
            )
        if error_description or not code:
            return request.env._("Your account was not connected: %(error)s", error=error_description or "no code")
        try:
            refresh_token, access_token, expiration = server._fetch_outlook_refresh_token(code)
        except UserError as error:
            return str(error.args[0] if error.args else error)
        server.write(
            {
                "microsoft_outlook_refresh_token": refresh_token,
                "microsoft_outlook_access_token": access_token,
                "microsoft_outlook_access_token_expiration": expiration,
            }
        )
        return request.redirect("/odoo")
