# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""OAuth sign-in of Odoo's Gmail and Outlook servers: write-only encrypted tokens and token health.

The bridge modules (``smtp_routing_google_gmail``, ``smtp_routing_microsoft_outlook``) redefine
Odoo's token fields with :func:`token_field`: they read empty for everyone, and their values are
kept together, encrypted (JSON), in ``smtp_routing_oauth_encrypted``. A server's tokens are
revealed only to Odoo's own sign-in code, for that server, in that thread
(``_smtp_routing_tokens_revealed``, used by ``ir.mail_server._smtp_login``). A refused token
renewal is noted on the server and told once to whoever can reconnect the account.

It also says when a Microsoft 365 or Google server still signs in with a password, and switches it
to OAuth (*Switch to OAuth*).

An abstract model inherited by ``ir.mail_server`` only (Odoo's ``google.gmail.mixin`` is the
pattern); it reads the server's fields (``name``, ``smtp_authentication``, ``smtp_routing_provider``,
``smtp_routing_pass_encrypted``, ``smtp_routing_owner_id``...).
"""

import contextlib
import json
import threading

from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..tools.smtp_errors import classified
from . import oauth, params
from .access import require_admin
from .smtp_routing_secret_mixin import ADMINS

OAUTH_AUTHENTICATIONS = ("gmail", "outlook")
PROVIDER_LABELS = {"gmail": "Google", "outlook": "Microsoft 365"}
# The provider presets that sign in with OAuth where Odoo's module for it is installed.
PRESET_OAUTH = {"microsoft365": "outlook", "gmail": "gmail", "google_workspace": "gmail"}
# Odoo's token columns that the bridge modules make write-only (their ciphertext: smtp_routing_oauth_encrypted)
TOKEN_FIELDS = (
    "google_gmail_authorization_code",
    "google_gmail_refresh_token",
    "google_gmail_access_token",
    "microsoft_outlook_refresh_token",
    "microsoft_outlook_access_token",
)
TOKEN_COMPUTE = "_compute_smtp_routing_oauth_token"


def token_field(string, inverse):
    """A write-only OAuth token field, as the bridge modules redefine Odoo's: computed (never stored, reads
    empty for everyone), its inverse encrypting into ``smtp_routing_oauth_encrypted``, never exported."""
    return fields.Char(
        string=string,
        compute=TOKEN_COMPUTE,
        inverse=inverse,
        store=False,
        readonly=False,
        copy=False,
        exportable=False,
        groups=ADMINS,
        help="Write-only: stored encrypted by smtp_routing, never shown; decrypted only to sign in.",
    )


_tokens_revealed = threading.local()  # ids of the servers whose OAuth tokens this thread may read (to sign in)


class SmtpRoutingOAuthMixin(models.AbstractModel):
    _name = "smtp_routing.oauth.mixin"
    _inherit = "smtp_routing.secret.mixin"
    _description = "Encrypted OAuth Tokens and Token Health"

    # Odoo's token fields are write-only like smtp_pass; their values live here, encrypted together (JSON),
    # and are decrypted only to sign in.
    smtp_routing_oauth_encrypted = fields.Char(
        string="Encrypted OAuth Tokens", groups=ADMINS, copy=False, readonly=True, exportable=False
    )

    smtp_routing_oauth_connected = fields.Boolean(
        string="Account Connected",
        copy=False,
        readonly=True,
        help="The server holds a refresh token from its provider (the account was connected).",
    )
    smtp_routing_oauth_problem = fields.Char(
        string="Sign-in Problem",
        copy=False,
        readonly=True,
        groups=ADMINS,
        help="The provider refused to renew this server's sign-in (revoked or expired consent, expired client "
        "secret): reconnect the account. Cleared by the next successful sign-in.",
    )
    smtp_routing_oauth_problem_date = fields.Datetime(
        string="Sign-in Problem Since", copy=False, readonly=True, groups=ADMINS
    )

    def _smtp_routing_secret_message(self, error, server=None, field=None):
        """The secrets mixin speaks of a server's password: OAuth tokens that cannot be opened are named as such."""
        if field == "smtp_routing_oauth_encrypted" and error.code in ("wrong_key", "not_encrypted"):
            name = server.display_name if server else ""
            if error.code == "wrong_key":
                return self.env._(
                    "The OAuth tokens of %(server)s cannot be decrypted with the key in use. Restore the key they were "
                    "encrypted with (environment variable SMTP_ROUTING_KEYS, odoo.conf option smtp_routing_keys, or "
                    "the key file in Odoo's data directory), or connect the account again.",
                    server=name,
                )
            return self.env._(
                "The stored OAuth tokens of %(server)s are not in the expected encrypted form: connect the account "
                "again.",
                server=name,
            )
        return super()._smtp_routing_secret_message(error, server, field=field)

    # -- from a password to OAuth (Microsoft 365 and Google close password sign-in) ------------------------
    def _smtp_routing_password_retiring(self):
        """A Microsoft 365 or Google server still signing in with a password: the providers close that door."""
        self.ensure_one()
        return (
            self.smtp_routing_provider in PRESET_OAUTH
            and self.smtp_authentication == "login"
            and bool(self.sudo().smtp_routing_pass_encrypted)
        )

    def _smtp_routing_password_retiring_message(self):
        if self.smtp_routing_provider == "microsoft365":
            return self.env._(
                "This server signs in to Microsoft 365 with a password. Microsoft turns Basic authentication for "
                "SMTP off by default on existing tenants at the end of December 2026 (then 535 5.7.139): press "
                "Switch to OAuth, then Connect your account."
            )
        return self.env._(
            "This server signs in to Google with a password. Google ended password sign-in for Workspace on "
            "1 May 2025, and app passwords stop working when the account's password changes: press Switch to "
            "OAuth, then Connect your account."
        )

    def action_smtp_routing_switch_to_oauth(self):
        """Microsoft 365 / Google with a password: drop it and sign in with OAuth (Odoo's consent flow next)."""
        require_admin(self.env)
        self.ensure_one()
        method = PRESET_OAUTH.get(self.smtp_routing_provider)
        if not method:
            raise UserError(self.env._("Only Microsoft 365 and Google servers sign in with OAuth here."))
        if method not in dict(self._fields["smtp_authentication"].selection):
            module = self.env._("Microsoft Outlook") if method == "outlook" else self.env._("Gmail")
            raise UserError(
                self.env._(
                    "Signing in with OAuth needs Odoo's %(module)s module: install it (Apps), then press Switch to "
                    "OAuth again.",
                    module=module,
                )
            )
        self.action_smtp_routing_clear_password()
        self.write({"smtp_authentication": method, "from_filter": self.smtp_user or self.from_filter})
        return True

    # -- tokens ---------------------------------------------------------------------------------------------
    def _smtp_routing_token_fields(self):
        """Odoo's token fields that a bridge module made write-only on this model (installed modules only)."""
        return [name for name, field in self._fields.items() if field.compute == TOKEN_COMPUTE]

    def _smtp_routing_oauth_tokens(self, missing_ok=False):
        """{token field: value} of this one server, decrypted (for signing in only)."""
        self.ensure_one()
        stored = self.sudo().smtp_routing_oauth_encrypted
        plaintext = self._smtp_routing_decrypt(stored, missing_ok=missing_ok) if stored else None
        return json.loads(plaintext) if plaintext else {}

    @contextlib.contextmanager
    def _smtp_routing_tokens_revealed(self):
        """Within this block (this thread, Python code only: no RPC reaches it), this server's tokens read."""
        self.ensure_one()
        names = self._smtp_routing_token_fields()
        previous = getattr(_tokens_revealed, "ids", frozenset())
        _tokens_revealed.ids = previous | {self.id}
        self.invalidate_recordset(names)
        try:
            yield
        finally:
            _tokens_revealed.ids = previous
            self.invalidate_recordset(names)

    @api.depends("smtp_routing_oauth_encrypted")
    def _compute_smtp_routing_oauth_token(self):
        """Write-only: every token reads empty, except for the sign-in of that server (see _smtp_login)."""
        names = self._smtp_routing_token_fields()
        revealed = getattr(_tokens_revealed, "ids", frozenset())
        for server in self:
            values = server._smtp_routing_oauth_tokens() if server.id and server.id in revealed else {}
            for name in names:
                server[name] = values.get(name) or False

    def _smtp_routing_store_token(self, name):
        """Inverse of one token field: encrypt the new value with the others (empty removes it)."""
        for server in self:
            tokens = server._smtp_routing_oauth_tokens(missing_ok=True) if server.id else {}
            value = server[name]
            if value:
                tokens[name] = value
            else:
                tokens.pop(name, None)
            encrypted = server._smtp_routing_encrypt(json.dumps(tokens, sort_keys=True)) if tokens else False
            server.sudo().write(
                {
                    "smtp_routing_oauth_encrypted": encrypted,
                    "smtp_routing_oauth_connected": any(v for k, v in tokens.items() if k.endswith("refresh_token")),
                }
            )

    def _smtp_routing_check_connected(self):
        if not self.sudo().smtp_routing_oauth_connected:
            raise UserError(
                self.env._(
                    "%(server)s signs in with %(provider)s but no account is connected yet: open the server and press "
                    "Connect your account.",
                    server=self.name,
                    provider=PROVIDER_LABELS.get(self.smtp_authentication, self.smtp_authentication),
                )
            )

    def _smtp_routing_token_call(self, call, *args, rewrite=None, **kwargs):
        """Call Odoo's token request ``call``; its refusal becomes an oauth.TokenError with the provider's code."""
        with oauth.watching(rewrite) as watched:
            try:
                return call(*args, **kwargs)
            except UserError as error:
                status, code, description = watched.json_error()
                raise self._smtp_routing_token_error(status, code or "unknown", description or str(error)) from error
            except oauth.requests.RequestException as error:
                raise self._smtp_routing_token_error(None, "unreachable", str(error)) from error

    def _smtp_routing_token_error(self, status, code, description):
        from ..tools.smtp_errors import classify_token_error

        category = classify_token_error(status, code, description).category
        name = self.name if len(self) == 1 else ""
        provider = PROVIDER_LABELS.get(self[:1].smtp_authentication, self.env._("the provider"))
        detail = f"{code}: {description}" if description else code
        if category == "oauth_revoked" and code == "invalid_client":
            message = self.env._(
                "%(provider)s refused the application's credentials for %(server)s (%(detail)s). The client secret "
                "has probably expired: create a new one at %(provider)s, enter it in Settings (Outlook or Gmail "
                "credentials), then reconnect the account.",
                provider=provider,
                server=name,
                detail=detail,
            )
        elif category == "oauth_revoked":
            message = self.env._(
                "%(provider)s no longer accepts the sign-in of %(server)s (%(detail)s): the consent was revoked or "
                "has expired. Reconnect the account (open the server and press Connect your account; for your own "
                "server: Preferences, Connect my account).",
                provider=provider,
                server=name,
                detail=detail,
            )
        elif category == "temporary":
            message = self.env._(
                "%(provider)s's sign-in service did not answer for %(server)s (%(detail)s); the mail waits and is "
                "tried again.",
                provider=provider,
                server=name,
                detail=detail,
            )
        else:
            message = self.env._(
                "%(provider)s refused the sign-in request of %(server)s (%(detail)s): check the client ID and secret "
                "in Settings.",
                provider=provider,
                server=name,
                detail=detail,
            )
        return oauth.TokenError(message, code, status, description)

    def _smtp_routing_note_sign_in(self, error):
        """Token health of an OAuth server: a refused renewal is noted and told (once) to whoever can reconnect
        the account (the owner of a user's own server, else the administrators); a sign-in that works clears it."""
        self.ensure_one()
        server = self.sudo()
        if server.smtp_authentication not in OAUTH_AUTHENTICATIONS:
            return
        if error is None:
            if server.smtp_routing_oauth_problem:
                server.write({"smtp_routing_oauth_problem": False, "smtp_routing_oauth_problem_date": False})
            return
        if classified(error).category != "oauth_revoked":
            return
        message = error.args[0] if isinstance(error, oauth.TokenError) and error.args else str(error)
        first = not server.smtp_routing_oauth_problem
        server.write(
            {"smtp_routing_oauth_problem": message[:1000], "smtp_routing_oauth_problem_date": fields.Datetime.now()}
        )
        if first:
            server._smtp_routing_notify_sign_in_problem(message)

    def _smtp_routing_notify_sign_in_problem(self, message):
        owner = self.smtp_routing_owner_id
        users = owner or self.env.ref("base.group_system").users.filtered(lambda user: not user.share)
        partners = users.partner_id.filtered("active")
        if not partners:
            return
        hours = params.integer(self.env, "smtp_routing.max_retry_age_hours", 72)
        body = Markup("<p>%s</p><p>%s</p>") % (
            message,
            self.env._(
                "Meanwhile its mail goes through another server where one may send it; otherwise it waits, and fails "
                "after %(hours)s hours if the account is not reconnected.",
                hours=hours,
            ),
        )
        self.env["mail.thread"].sudo().with_context(mail_notify_force_send=False).message_notify(
            partner_ids=partners.ids,
            subject=self.env._("Reconnect the account of %(server)s", server=self.name),
            body=body,
        )
