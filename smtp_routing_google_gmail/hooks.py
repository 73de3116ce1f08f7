# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Install: encrypt the Gmail tokens Odoo stored in clear. Uninstall: put them back for stock Odoo."""

from odoo.addons.smtp_routing.hooks import encrypt_oauth_tokens, restore_oauth_tokens

TOKENS = ("google_gmail_authorization_code", "google_gmail_refresh_token", "google_gmail_access_token")


def post_init_hook(env):
    encrypt_oauth_tokens(env, TOKENS)


def uninstall_hook(env):
    restore_oauth_tokens(env, TOKENS)
