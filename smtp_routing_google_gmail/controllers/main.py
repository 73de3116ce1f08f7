# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Odoo's Gmail consent callback, also for a user connecting their own account.

Odoo's callback refuses everyone but administrators. A user who connects their own
Google account (Preferences) comes back here too (the provider knows one redirect
URI): when the signed state names that user's own Gmail server, the tokens are
fetched and stored (encrypted) on it; anything else goes to Odoo's own handling,
unchanged.
"""

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request

from odoo.addons.google_gmail.controllers.main import GoogleGmailController


class SmtpRoutingGmailController(GoogleGmailController):
    @http.route()
    def google_gmail_callback(self, code=None, state=None, error=None, **kwargs):
        server = request.env["res.users"]._smtp_routing_own_server_from_state(state, "gmail")
        if server is None:
            return super().google_gmail_callback(code=code, state=state, error=error, **kwargs)
        if error or not code:
            return request.env._("Your account was not connected: %(error)s", error=error or "no code")
        try:
            refresh_token, access_token, expiration = server._fetch_gmail_refresh_token(code)
        except UserError as failure:
            return str(failure.args[0] if failure.args else failure)
        server.write(
            {
                "google_gmail_access_token": access_token,
                "google_gmail_access_token_expiration": expiration,
                "google_gmail_authorization_code": code,
                "google_gmail_refresh_token": refresh_token,
            }
        )
        return request.redirect("/odoo")
