# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import contextlib
import email.generator
import email.utils
import io
import json
import logging
import os
import smtplib
import ssl
import threading
import time
from datetime import datetime, timedelta

import pytz
from markupsafe import Markup

from odoo import api, fields, models, modules
from odoo.exceptions import UserError, ValidationError
from odoo.tools import config, email_domain_extract, email_normalize
from odoo.tools.misc import format_datetime

from ..sending.transport import checked_xoauth2, make_quit_safe, per_server_connection, verifying_context
from ..tools import dkim as dkim_tool
from ..tools import dns_checks, hostport, netpolicy, pipelining, presets, secrets
from ..tools import limits as limits_tool
from ..tools import routing as routing_tool
from ..tools.headers import RawHeader, keep_raw
from ..tools.smtp_errors import MessageTooLarge, classify
from . import oauth, params
from .access import require_admin
from .smtp_routing_delivery_log import CATEGORY_SELECTION
from .smtp_routing_server_state import db_now, state_from_row

_logger = logging.getLogger(__name__)

# Private header that carries the mail.mail id from _prepare_outgoing_list to
# send_email, where it is removed before the message leaves.
MAIL_ID_HEADER = "X-Smtp-Routing-Mail-Id"
# written as they are, never refolded into encoded words (Gmail reads List-Unsubscribe byte for byte)
UNFOLDED_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post")
DNS_NAMESERVER = "smtp_routing.dns_nameserver"
PERSONAL_ALLOW_PRIVATE = "smtp_routing.personal_servers_allow_private"
OAUTH_AUTHENTICATIONS = ("gmail", "outlook")
ADMINS = "base.group_system"
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


PROVIDER_LABELS = {"gmail": "Google", "outlook": "Microsoft 365"}
# The provider presets that sign in with OAuth where Odoo's module for it is installed.
PRESET_OAUTH = {"microsoft365": "outlook", "gmail": "gmail", "google_workspace": "gmail"}
# Failures that say something about one mail (its recipients, size, sender), not about the server.
MAIL_LEVEL_CATEGORIES = ("recipient_rejected", "too_large", "invalid_message", "send_as_denied", "sender_rejected")

_keyring_cache = {}


def _dns_line(check, summary):
    """ "MX: mx.example", not "MX: MX: mx.example": the check's name once."""
    label = check.upper()
    if summary.upper().startswith(label + ":"):
        return summary
    return f"{label}: {summary}"


def _keyring():
    """The keyring in force (environment, odoo.conf, or the data-dir key file), cached per process."""
    source = (os.environ.get(secrets.ENV_VAR, ""), config.get(secrets.CONFIG_OPTION) or "", config["data_dir"])
    if source not in _keyring_cache:
        _keyring_cache.clear()
        _keyring_cache[source] = secrets.load_keyring(config_value=source[1], data_dir=source[2])
    return _keyring_cache[source]


_tokens_revealed = threading.local()  # ids of the servers whose OAuth tokens this thread may read (to sign in)


class IrMailServer(models.Model):
    _inherit = "ir.mail_server"

    company_id = fields.Many2one(
        "res.company",
        string="Company",
        index=True,
        help="Leave empty to let every company use this server.",
    )
    smtp_routing_is_default = fields.Boolean(
        string="Default Server",
        help="Used by flows that name no server. One default per company: marking a server as default "
        "unmarks the previous one.",
    )
    smtp_routing_from_email = fields.Char(
        string="From Email",
        help="Sender address for mail that has no author-specific From (system notifications, test emails).",
    )
    smtp_routing_from_name = fields.Char(string="From Name", help="Display name shown with the From email.")
    smtp_routing_sender_email = fields.Char(
        string="Sender Address",
        help="Optional 'Sender' header, for providers that relay on behalf of the From address.",
    )
    smtp_routing_user_selectable = fields.Boolean(
        string="Available to Users",
        help="Users may pick this server for their own mail in their preferences.",
    )
    smtp_routing_owner_id = fields.Many2one(
        "res.users",
        string="Personal Server Of",
        ondelete="cascade",
        index="btree_not_null",
        readonly=True,
        help="A user's own server (entered in their preferences): it carries that user's personal mail only.",
    )
    smtp_routing_provider = fields.Selection(
        selection=presets.selection(),
        string="Provider",
        default="generic",
        help="Fills host, port and encryption with the provider's settings and shows its published limits.",
    )
    smtp_routing_provider_note = fields.Char(string="Provider Limits", compute="_compute_smtp_routing_provider_note")
    smtp_routing_warning = fields.Char(string="Warning", compute="_compute_smtp_routing_warning", groups=ADMINS)
    # Passwords are write-only: smtp_pass takes a new password (encrypted at once into
    # smtp_routing_pass_encrypted) and always reads empty. Only the connection decrypts
    # (_smtp_login), for the one server it connects to.
    smtp_pass = fields.Char(
        compute="_compute_smtp_pass",
        inverse="_inverse_smtp_pass",
        store=False,
        readonly=False,
        copy=False,
        exportable=False,
        groups=ADMINS,
        help="Write-only: type a new password to replace the stored one (it is encrypted at once and never shown "
        "again). Left empty, the stored password is kept; Remove Password deletes it.",
    )
    smtp_routing_pass_encrypted = fields.Char(
        string="Encrypted Password", groups=ADMINS, copy=True, readonly=True, exportable=False
    )
    smtp_routing_pass_set = fields.Boolean(
        string="Password Stored", compute="_compute_smtp_routing_pass_state", groups=ADMINS
    )
    # OAuth (Odoo's Gmail and Outlook servers, through the bridge modules): Odoo's token fields are write-only
    # like smtp_pass; their values live here, encrypted together (JSON), and are decrypted only to sign in.
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
    smtp_routing_pass_error = fields.Char(
        string="Password Problem", compute="_compute_smtp_routing_pass_state", groups=ADMINS
    )
    # Limits (each off at 0), failover and health
    smtp_routing_throttle_max = fields.Integer(
        string="Throttle: Messages",
        help="At most this many messages per duration; the window starts with the "
        "first message and resets only when the duration has passed. 0: no throttle.",
    )
    smtp_routing_throttle_duration = fields.Integer(string="Throttle: Duration", default=24)
    smtp_routing_throttle_unit = fields.Selection(
        [("seconds", "Seconds"), ("minutes", "Minutes"), ("hours", "Hours"), ("days", "Days")],
        string="Throttle: Unit",
        default="hours",
    )
    smtp_routing_flood_max = fields.Integer(
        string="Anti-flood: After", help="Pause after this many messages. 0: no anti-flood."
    )
    smtp_routing_flood_pause = fields.Integer(
        string="Anti-flood: Pause (s)",
        default=60,
        help="Seconds to wait after the threshold; the counter resets when the server was idle this long.",
    )
    smtp_routing_hourly_max = fields.Integer(string="Per Hour", help="At most this many per clock hour. 0: no cap.")
    smtp_routing_daily_max = fields.Integer(
        string="Per Day", help="At most this many per calendar day (UTC). 0: no cap."
    )
    smtp_routing_batch_max_count = fields.Integer(
        string="Batch: Mails", help="At most this many mails per run. 0: no limit."
    )
    smtp_routing_batch_max_mb = fields.Float(
        string="Batch: MB", help="At most this many megabytes per run. 0: no limit."
    )
    smtp_routing_batch_interval = fields.Integer(
        string="Batch: Every (min)", default=5, help="Minutes between two runs of a full batch."
    )
    smtp_routing_count_recipients = fields.Boolean(
        string="Count Recipients",
        help="Limits count recipients instead of messages (Google and Microsoft count recipients).",
    )
    smtp_routing_cooldown_seconds = fields.Integer(
        string="Skip After a Failure (s)",
        default=60,
        help="After a connection, login, TLS or time-out failure, or a temporary refusal, skip this server for "
        "this long; mail goes to the next server meanwhile.",
    )
    smtp_routing_tls_verify = fields.Boolean(
        string="Verify Certificate",
        default=True,
        help="Check the server's TLS certificate and host name (STARTTLS and SSL/TLS). Switch off only for a "
        "server you trust on a network you control: without it, anyone in between can read the mail and password.",
    )
    smtp_routing_timeout = fields.Integer(
        string="Time-out (s)", default=30, help="Seconds to wait for the server before giving up on it."
    )
    smtp_routing_connections = fields.Integer(
        string="Connections",
        compute="_compute_smtp_routing_connections",
        store=True,
        readonly=False,
        help="How many connections to this server may send at the same time (1 to 16). Several connections "
        "hide the time each mail waits for a distant server; 1 sends one mail after the other. The provider "
        "preset fills in what the provider allows (Microsoft 365: 3).",
    )
    # Status, counters, errors and server replies: administrators only (field groups).
    smtp_routing_health = fields.Selection(
        [
            ("failing", "Failing"),
            ("never", "Never delivered"),
            ("cooling", "Cooling down"),
            ("limited", "Over a limit"),
            ("healthy", "Healthy"),
        ],
        string="Status",
        compute="_compute_smtp_routing_queue_status",
        search="_search_smtp_routing_health",
        groups=ADMINS,
        help="From what actually happened (the delivery history, test emails included). Failing: its latest "
        "attempts failed (connection, login, TLS, time-out...) and none went through since. Never delivered: no "
        "mail went through it in the delivery history. Cooling down: skipped for a while after a failure. "
        "Over a limit: a sending limit is used up until its window resets. Healthy: its latest attempt went "
        "through.",
    )
    smtp_routing_failing_category = fields.Selection(
        CATEGORY_SELECTION, string="Failing With", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_failing_since = fields.Datetime(
        string="Failing Since",
        compute="_compute_smtp_routing_queue_status",
        groups=ADMINS,
        help="The first of the failed attempts since the last mail that went through.",
    )
    smtp_routing_failing_count = fields.Integer(
        string="Failed Attempts in a Row", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_cooldown_until = fields.Datetime(
        string="Cooling Down Until", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_quota = fields.Text(string="Quota Left", compute="_compute_smtp_routing_queue_status", groups=ADMINS)
    smtp_routing_next_slot = fields.Datetime(
        string="Next Free Slot", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_queued_count = fields.Integer(
        string="Queued", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_queue_eta = fields.Datetime(
        string="Queue Out By", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    # What the quota bars show: how much of each window is used now (the maxima are the limit fields).
    smtp_routing_throttle_used = fields.Integer(
        string="Used in Throttle Window", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_hourly_used = fields.Integer(
        string="Used This Hour", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_daily_used = fields.Integer(
        string="Used Today (UTC)", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    # What each bar is, as people say it ("10 per hour"), and why it differs from the sent counts when it does.
    smtp_routing_throttle_caption = fields.Char(
        string="Throttle Window", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_hourly_caption = fields.Char(
        string="Hourly Cap", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    smtp_routing_daily_caption = fields.Char(
        string="Daily Cap", compute="_compute_smtp_routing_queue_status", groups=ADMINS
    )
    # Routing: where this server is used
    smtp_routing_route_ids = fields.Many2many(
        "smtp_routing.route", string="Routes", compute="_compute_smtp_routing_usage", groups=ADMINS
    )
    smtp_routing_send_as_ids = fields.One2many(
        "smtp_routing.send_as", "server_id", string="Send-As Grants", groups=ADMINS
    )
    smtp_routing_user_ids = fields.One2many("res.users", "smtp_routing_server_id", string="Chosen By", groups=ADMINS)
    # Deliverability
    smtp_routing_dns_check_ids = fields.One2many(
        "smtp_routing.dns.check", "server_id", string="Deliverability History", groups=ADMINS
    )
    smtp_routing_dns_checked_at = fields.Datetime(string="DNS Checked On", readonly=True, copy=False, groups=ADMINS)
    smtp_routing_dns_status = fields.Selection(
        [("ok", "DNS good"), ("warn", "DNS could be better"), ("fail", "DNS problems"), ("error", "DNS not checked")],
        string="Deliverability",
        compute="_compute_smtp_routing_dns",
        search="_search_smtp_routing_dns_status",
        groups=ADMINS,
    )
    smtp_routing_dns_report = fields.Text(string="DNS Report", compute="_compute_smtp_routing_dns", groups=ADMINS)
    # Delivery history
    smtp_routing_log_ids = fields.One2many(
        "smtp_routing.delivery.log", "server_id", string="Delivery History", groups=ADMINS
    )
    smtp_routing_sent_24h = fields.Integer(string="Sent (24h)", compute="_compute_smtp_routing_history", groups=ADMINS)
    smtp_routing_failed_24h = fields.Integer(
        string="Failed (24h)", compute="_compute_smtp_routing_history", groups=ADMINS
    )
    smtp_routing_bounced_24h = fields.Integer(
        string="Bounced (24h)",
        compute="_compute_smtp_routing_history",
        help="Bounce reports received in the last 24 hours for mail this server carried.",
        groups=ADMINS,
    )
    smtp_routing_last_error = fields.Char(string="Last Error", compute="_compute_smtp_routing_history", groups=ADMINS)
    smtp_routing_last_error_date = fields.Datetime(
        string="Last Error On", compute="_compute_smtp_routing_history", groups=ADMINS
    )
    smtp_routing_sent_today = fields.Integer(string="Sent Today", compute="_compute_smtp_routing_today", groups=ADMINS)
    smtp_routing_failed_today = fields.Integer(
        string="Failed Today", compute="_compute_smtp_routing_today", groups=ADMINS
    )

    # -- computes ---------------------------------------------------------------
    @api.depends("smtp_routing_provider")
    def _compute_smtp_routing_connections(self):
        """The preset's number of connections; the admin may change it (stored, editable)."""
        for server in self:
            preset = presets.PRESETS.get(server.smtp_routing_provider or "generic") or presets.PRESETS["generic"]
            server.smtp_routing_connections = preset.connections

    @api.depends("smtp_routing_provider")
    def _compute_smtp_routing_provider_note(self):
        for server in self:
            preset = presets.PRESETS.get(server.smtp_routing_provider or "generic")
            limits = presets.describe_limits(preset.limits) if preset else ""
            server.smtp_routing_provider_note = (
                self.env._("Published limits: %(limits)s. %(note)s", limits=limits, note=preset.note)
                if limits
                else (preset.note if preset else False)
            )

    @api.depends("smtp_routing_from_email", "smtp_user", "from_filter", "smtp_authentication")
    def _compute_smtp_routing_warning(self):
        for server in self:
            addresses = [server.smtp_routing_from_email, server.smtp_user]
            addresses += [part.strip() for part in (server.from_filter or "").split(",")]
            consumer = next((a for a in addresses if a and presets.is_consumer_address(a)), None)
            if server._smtp_routing_password_retiring():
                server.smtp_routing_warning = server._smtp_routing_password_retiring_message()
            elif consumer and server.smtp_authentication not in ("gmail", "outlook"):
                server.smtp_routing_warning = self.env._(
                    "%(address)s is a consumer mailbox. Free accounts are banned when they send a company's "
                    "or bulk mail: use an address on your own domain with a professional provider.",
                    address=consumer,
                )
            else:
                server.smtp_routing_warning = False

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

    def _compute_smtp_pass(self):
        """Write-only: the password is never read back, by anyone (see _smtp_login for the one reader)."""
        self.smtp_pass = False

    def _inverse_smtp_pass(self):
        """A typed password is encrypted at once; an empty one keeps the stored password (an untouched form).

        OAuth servers (Gmail, Outlook) take none: Odoo's own check refuses the typed one right after.
        """
        for server in self:
            if not server.smtp_pass or server.smtp_authentication in OAUTH_AUTHENTICATIONS:
                continue
            try:
                server.smtp_routing_pass_encrypted = secrets.encrypt(server.smtp_pass, _keyring())
            except secrets.SecretError as error:
                raise UserError(self._smtp_routing_secret_message(error, server)) from error

    @api.depends("smtp_routing_pass_encrypted")
    def _compute_smtp_routing_pass_state(self):
        """Whether a password is stored and whether the key in use opens it (checked without decrypting)."""
        keyring, key_problem = None, None
        for server in self:
            stored = server.sudo().smtp_routing_pass_encrypted
            server.smtp_routing_pass_set = bool(stored)
            server.smtp_routing_pass_error = False
            if not stored:
                continue
            try:
                keyring = keyring or _keyring()
                secrets.verify(stored, keyring)
            except secrets.SecretError as error:
                key_problem = error
                server.smtp_routing_pass_error = self._smtp_routing_secret_message(error, server)
        if key_problem:
            _logger.warning("smtp_routing: a stored SMTP password cannot be decrypted (%s)", key_problem.code)

    def _smtp_routing_password(self):
        """The decrypted password of this one server, for the connection only (never a field, never returned)."""
        self.ensure_one()
        stored = self.sudo().smtp_routing_pass_encrypted
        if not stored:
            return ""
        try:
            return secrets.decrypt(stored, _keyring())
        except secrets.SecretError as error:
            raise UserError(self._smtp_routing_secret_message(error, self)) from error

    @api.constrains("smtp_authentication", "smtp_routing_pass_encrypted")
    def _check_smtp_routing_oauth_password(self):
        """Odoo's Gmail/Outlook checks read smtp_pass, which always reads empty here: check the stored password."""
        for server in self:
            if server.smtp_authentication in OAUTH_AUTHENTICATIONS and server.sudo().smtp_routing_pass_encrypted:
                raise ValidationError(
                    self.env._(
                        "%(server)s signs in with OAuth and needs no password: press Remove Password (Connection "
                        "tab) first, then switch it to OAuth.",
                        server=server.name,
                    )
                )

    def action_smtp_routing_clear_password(self):
        """The only way to delete a stored password (an empty password field keeps it)."""
        require_admin(self.env)
        self.sudo().write({"smtp_routing_pass_encrypted": False})
        return True

    def _smtp_routing_secret_message(self, error, server=None):
        name = server.display_name if server else ""
        if error.code == "wrong_key":
            return self.env._(
                "The password of %(server)s cannot be decrypted with the key in use. Restore the key it was "
                "encrypted with (environment variable SMTP_ROUTING_KEYS, odoo.conf option smtp_routing_keys, or "
                "the key file in Odoo's data directory), or enter the password again.",
                server=name,
            )
        if error.code == "bad_key":
            return self.env._(
                "The SMTP password key is not valid (%(detail)s). SMTP_ROUTING_KEYS / smtp_routing_keys must hold "
                'comma-separated Fernet keys; generate one with: python3 -c "from cryptography.fernet import '
                'Fernet; print(Fernet.generate_key().decode())"',
                detail=error.detail,
            )
        if error.code == "no_key_file":
            return self.env._(
                "No key to encrypt SMTP passwords: set SMTP_ROUTING_KEYS or smtp_routing_keys, or make Odoo's "
                "data directory writable (%(detail)s).",
                detail=error.detail,
            )
        return self.env._("The stored password of %(server)s is not in the expected encrypted form.", server=name)

    def _smtp_routing_outcome_counts(self, since):
        """{(server id, outcome): attempts since ``since``} for these servers, from the delivery history."""
        return {
            (server.id, outcome): count
            for server, outcome, count in self.env["smtp_routing.delivery.log"]
            .sudo()
            ._read_group([("server_id", "in", self.ids), ("date", ">=", since)], ["server_id", "outcome"], ["__count"])
        }

    def _compute_smtp_routing_history(self):
        counts = self._smtp_routing_outcome_counts(fields.Datetime.now() - timedelta(hours=24))
        Log = self.env["smtp_routing.delivery.log"].sudo()
        for server in self:
            server.smtp_routing_sent_24h = counts.get((server.id, "sent"), 0)
            server.smtp_routing_failed_24h = counts.get((server.id, "failed"), 0)
            server.smtp_routing_bounced_24h = counts.get((server.id, "bounced"), 0)
            last = Log
            if server.id:
                last = Log.search([("server_id", "=", server.id), ("outcome", "=", "failed")], limit=1)
            server.smtp_routing_last_error = last.summary if last else False
            server.smtp_routing_last_error_date = last.date if last else False

    def _smtp_routing_today_start(self):
        """Midnight in the user's time zone, as a naive UTC datetime (what "today" means to the reader)."""
        try:
            tz = pytz.timezone(self.env.context.get("tz") or self.env.user.tz or "UTC")
        except pytz.UnknownTimeZoneError:
            tz = pytz.utc
        today = datetime.now(pytz.utc).astimezone(tz).date()
        midnight = tz.localize(datetime.combine(today, datetime.min.time()))
        return midnight.astimezone(pytz.utc).replace(tzinfo=None)

    def _compute_smtp_routing_today(self):
        counts = self._smtp_routing_outcome_counts(self._smtp_routing_today_start())
        for server in self:
            server.smtp_routing_sent_today = counts.get((server.id, "sent"), 0)
            server.smtp_routing_failed_today = counts.get((server.id, "failed"), 0)

    def _compute_smtp_routing_usage(self):
        lines = self.env["smtp_routing.route.line"].sudo().search([("server_id", "in", self.ids)])
        for server in self:
            server.smtp_routing_route_ids = lines.filtered(lambda line, s=server: line.server_id == s).route_id

    def _smtp_routing_search_computed(self, field_name, operator, value):
        """Search a computed status by computing it for every server (there are few)."""
        if operator not in ("=", "!=", "in", "not in"):
            raise UserError(self.env._("Search the status with = or in."))
        values = {value} if isinstance(value, str) or not value else set(value)
        matching = self.search([]).filtered(lambda server: server[field_name] in values)
        return [("id", "in" if operator in ("=", "in") else "not in", matching.ids)]

    def _search_smtp_routing_health(self, operator, value):
        return self._smtp_routing_search_computed("smtp_routing_health", operator, value)

    def _search_smtp_routing_dns_status(self, operator, value):
        return self._smtp_routing_search_computed("smtp_routing_dns_status", operator, value)

    def _smtp_routing_tls_context(self):
        """The TLS context for this server: verifying unless switched off (None keeps Odoo's behaviour)."""
        self.ensure_one()
        if (
            not self.smtp_routing_tls_verify
            or self.smtp_encryption == "none"
            or self.smtp_authentication in ("certificate", "cli")
        ):
            return None
        ca_file = self.env["ir.config_parameter"].sudo().get_param("smtp_routing.tls_ca_file") or None
        try:
            return verifying_context(ca_file)
        except (OSError, ssl.SSLError) as error:
            raise UserError(
                self.env._(
                    "The CA file in smtp_routing.tls_ca_file (%(path)s) cannot be read: %(error)s",
                    path=ca_file,
                    error=error,
                )
            ) from error

    def _smtp_routing_personal_addresses(self):
        """For a user's own server: ``(host, public addresses)`` to connect to; None for other servers.

        Users choose their own server's host: it must be on the internet, not on Odoo's network
        (loopback, link-local, private ranges), unless the administrator allows it
        (``smtp_routing.personal_servers_allow_private``).
        """
        self.ensure_one()
        if not self.sudo().smtp_routing_owner_id or params.flag(self.env, PERSONAL_ALLOW_PRIVATE, default=False):
            return None
        return self.smtp_host, self._smtp_routing_check_public_host(self.smtp_host, self.smtp_port)

    @api.model
    def _smtp_routing_check_public_host(self, host, port):
        """The public addresses of ``host``; a UserError that says what to do otherwise."""
        try:
            return netpolicy.public_addresses(host, port or 25)
        except netpolicy.HostNotAllowed as error:
            if error.code == "unresolvable":
                message = self.env._(
                    "%(host)s does not resolve to any address: check the spelling of your server's name.", host=host
                )
            else:
                kinds = {
                    "loopback": self.env._("loopback"),
                    "link-local": self.env._("link-local"),
                    "private": self.env._("private"),
                    "unspecified": self.env._("unspecified"),
                    "multicast": self.env._("multicast"),
                    "reserved": self.env._("reserved"),
                }
                message = self.env._(
                    "%(host)s is not on the internet (%(address)s is a %(kind)s address). Your own server must be "
                    "reachable on the internet: enter its public name, or ask your administrator to allow servers on "
                    "private networks (system parameter smtp_routing.personal_servers_allow_private).",
                    host=host,
                    address=error.address,
                    kind=kinds.get(error.kind, error.kind),
                )
            raise UserError(message) from error

    def _smtp_routing_limits(self):
        self.ensure_one()
        unit = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}.get(
            self.smtp_routing_throttle_unit or "hours", 3600
        )
        return limits_tool.Limits(
            throttle_max=max(self.smtp_routing_throttle_max, 0),
            throttle_seconds=max(self.smtp_routing_throttle_duration, 0) * unit,
            flood_max=max(self.smtp_routing_flood_max, 0),
            flood_pause=max(self.smtp_routing_flood_pause, 0),
            hourly_max=max(self.smtp_routing_hourly_max, 0),
            daily_max=max(self.smtp_routing_daily_max, 0),
            batch_max_count=max(self.smtp_routing_batch_max_count, 0),
            batch_max_bytes=int(max(self.smtp_routing_batch_max_mb, 0) * 1024 * 1024),
            batch_interval=max(self.smtp_routing_batch_interval, 0) * 60,
            count_recipients=self.smtp_routing_count_recipients,
        )

    def _smtp_routing_limit_names(self):
        """The limits as named in "reached its ... limit" (translated)."""
        return {
            "throttle": self.env._("throttle"),
            "flood": self.env._("anti-flood"),
            "hourly": self.env._("hourly"),
            "daily": self.env._("daily"),
            "batch": self.env._("batch"),
        }

    def _smtp_routing_recent_failures(self):
        """{server id: (failing since, latest category, failed attempts in a row)} for the servers whose latest
        server-level attempt failed, and the set of servers with a successful delivery on record.

        From the delivery history (test emails included); refusals by a rule and failures that concern one
        mail only (a refused recipient, a message too large) say nothing about the server and are left out.
        """
        if not self.ids:
            return {}, set()
        Log = self.env["smtp_routing.delivery.log"].sudo()
        Log.flush_model()
        self.env.cr.execute(
            """SELECT server_id,
                      MAX(date) FILTER (WHERE outcome = 'sent'),
                      MAX(date) FILTER (WHERE outcome = 'failed')
                 FROM smtp_routing_delivery_log
                WHERE server_id IN %s AND stage != 'policy' AND outcome IN ('sent', 'failed')
                  AND (outcome = 'sent' OR category IS NULL OR category NOT IN %s)
             GROUP BY server_id""",
            [tuple(self.ids), MAIL_LEVEL_CATEGORIES],
        )
        failing, delivered = {}, set()
        for server_id, last_sent, last_failed in self.env.cr.fetchall():
            if last_sent:
                delivered.add(server_id)
            if not last_failed or (last_sent and last_sent >= last_failed):
                continue
            streak = Log.search(
                [
                    ("server_id", "=", server_id),
                    ("stage", "!=", "policy"),
                    ("outcome", "=", "failed"),
                    ("category", "not in", MAIL_LEVEL_CATEGORIES),
                ]
                + ([("date", ">", last_sent)] if last_sent else []),
                order="date desc, id desc",
            )
            failing[server_id] = (streak[-1].date, streak[0].category or "other", len(streak))
        return failing, delivered

    def _smtp_routing_rate_text(self, count, duration, unit):
        """A limit as people say it: "10 per hour", "500 per 24 hours" (translated)."""
        if duration == 1:
            texts = {
                "seconds": self.env._("%(count)s per second", count=count),
                "minutes": self.env._("%(count)s per minute", count=count),
                "hours": self.env._("%(count)s per hour", count=count),
                "days": self.env._("%(count)s per day", count=count),
            }
        else:
            texts = {
                "seconds": self.env._("%(count)s per %(duration)s seconds", count=count, duration=duration),
                "minutes": self.env._("%(count)s per %(duration)s minutes", count=count, duration=duration),
                "hours": self.env._("%(count)s per %(duration)s hours", count=count, duration=duration),
                "days": self.env._("%(count)s per %(duration)s days", count=count, duration=duration),
            }
        return texts.get(unit or "hours", texts["hours"])

    def _smtp_routing_sent_since(self, since):
        """What the limits would have counted of the delivery history since ``since``: mails, or recipients."""
        self.ensure_one()
        if not since or not self.id:
            return 0
        Log = self.env["smtp_routing.delivery.log"].sudo()
        domain = [("server_id", "=", self.id), ("outcome", "=", "sent"), ("date", ">=", since)]
        if self.smtp_routing_count_recipients:
            [(total,)] = Log._read_group(domain, aggregates=["recipient_count:sum"])
            return total or 0
        return Log.search_count(domain)

    def _smtp_routing_bar_caption(self, rate, counted, since):
        """``rate``, and a plain reason when the bar shows less than the history counts in the same window."""
        if since is None:
            return self.env._("%(rate)s - window not started: it starts with the next mail", rate=rate)
        sent = self._smtp_routing_sent_since(since)
        if sent > counted:
            return self.env._(
                "%(rate)s - counting since the limit was set (%(sent)s went out in this window in all)",
                rate=rate,
                sent=sent,
            )
        return rate

    def _compute_smtp_routing_queue_status(self):
        now = db_now(self.env.cr)  # the clock the queue's windows use
        failing, delivered = self._smtp_routing_recent_failures()
        rows = self.env["smtp_routing.server.state"].sudo()._smtp_routing_read(self)
        queued = dict(
            self.env["mail.mail"]
            .sudo()
            ._read_group(
                [("state", "=", "outgoing"), ("smtp_routing_server_id", "in", self.ids)],
                ["smtp_routing_server_id"],
                ["__count"],
            )
        )
        labels = {
            "throttle": self.env._("Throttle"),
            "flood": self.env._("Anti-flood"),
            "hourly": self.env._("This hour"),
            "daily": self.env._("Today"),
            "batch": self.env._("This batch"),
        }
        for server in self:
            row = rows.get(server.id) or {}
            limits = server._smtp_routing_limits()
            state = limits_tool.refresh(limits, state_from_row(row), now)  # the windows as they stand now
            left = limits_tool.remaining(limits, state, now)
            cooldown = row.get("cooldown_until")
            cooldown = cooldown if cooldown and cooldown > now else False
            exhausted = [resets for value, resets in left.values() if value <= 0 and resets]
            server.smtp_routing_cooldown_until = cooldown
            server.smtp_routing_throttle_used = state.throttle_count
            server.smtp_routing_hourly_used = state.hour_count
            server.smtp_routing_daily_used = state.day_count
            server.smtp_routing_throttle_caption = (
                server._smtp_routing_bar_caption(
                    server._smtp_routing_rate_text(
                        limits.throttle_max, server.smtp_routing_throttle_duration, server.smtp_routing_throttle_unit
                    ),
                    state.throttle_count,
                    state.throttle_start,
                )
                if limits.throttle_max and limits.throttle_seconds
                else False
            )
            server.smtp_routing_hourly_caption = (
                server._smtp_routing_bar_caption(
                    self.env._("%(count)s per clock hour", count=limits.hourly_max), state.hour_count, state.hour_start
                )
                if limits.hourly_max
                else False
            )
            server.smtp_routing_daily_caption = (
                server._smtp_routing_bar_caption(
                    self.env._("%(count)s per day (UTC)", count=limits.daily_max), state.day_count, state.day_start
                )
                if limits.daily_max
                else False
            )
            since, category, failures = failing.get(server.id) or (False, False, 0)
            server.smtp_routing_failing_since = since
            server.smtp_routing_failing_category = category
            server.smtp_routing_failing_count = failures
            if cooldown:
                server.smtp_routing_health = "cooling"
            elif since:
                server.smtp_routing_health = "failing"
            elif exhausted:
                server.smtp_routing_health = "limited"
            elif server.id not in delivered:
                server.smtp_routing_health = "never"
            else:
                server.smtp_routing_health = "healthy"
            server.smtp_routing_quota = "\n".join(
                self.env._("%(limit)s: %(left)s left", limit=labels[name], left=max(value, 0))
                + (self.env._(" (resets %(when)s)", when=format_datetime(self.env, resets)) if resets else "")
                for name, (value, resets) in left.items()
            ) or self.env._("No limit")
            server.smtp_routing_next_slot = max([cooldown] if cooldown else exhausted or [False]) or False
            count = queued.get(server, 0)
            server.smtp_routing_queued_count = count
            server.smtp_routing_queue_eta = limits_tool.eta(limits, state, max(now, cooldown or now), count) or False

    def _compute_smtp_routing_dns(self):
        for server in self:
            latest = {}
            for check in server.smtp_routing_dns_check_ids.sorted(lambda c: (c.date, c.id), reverse=True):
                latest.setdefault(check.domain, check)
            checks = list(latest.values())
            order = ["fail", "error", "warn", "ok"]
            server.smtp_routing_dns_status = min((c.status for c in checks), key=order.index) if checks else False
            server.smtp_routing_dns_report = (
                "\n\n".join(
                    f"{c.domain}:\n{c.report}" + (f"\n{self.env._('To publish:')}\n{c.fixes}" if c.fixes else "")
                    for c in sorted(checks, key=lambda c: c.domain)
                )
                or False
            )

    def _smtp_routing_sender_domains(self):
        """The domains this server sends for: its From filter, its From email, else the company's."""
        self.ensure_one()
        domains = []
        for part in [p.strip() for p in (self.from_filter or "").split(",")] + [self.smtp_routing_from_email]:
            if part:
                domain = email_domain_extract(email_normalize(part) or "") or ("" if "@" in part else part.lower())
                if domain and domain not in domains:
                    domains.append(domain)
        if not domains:
            company_email = (self.company_id or self.env.company).email
            domain = email_domain_extract(email_normalize(company_email or "") or "")
            if domain:
                domains.append(domain)
        return domains

    @api.model
    def _smtp_routing_dns_lookup(self):
        """DNS as receivers see it; ``smtp_routing.dns_nameserver`` (host[:port]) overrides the system's."""
        import dns.resolver

        setting = self.env["ir.config_parameter"].sudo().get_param(DNS_NAMESERVER)
        resolver = dns.resolver.Resolver(configure=not setting)
        if setting:
            try:
                host, port = hostport.parse_nameserver(setting)
            except hostport.HostPortError as error:
                raise UserError(
                    self.env._(
                        "The system parameter %(key)s must be an IP address with an optional port, not %(value)r.",
                        key=DNS_NAMESERVER,
                        value=setting,
                    )
                ) from error
            resolver.nameservers = [host]
            resolver.port = port
        resolver.lifetime = 5.0
        return dns_checks.resolver_lookup(resolver)

    def action_smtp_routing_dkim_keys(self):
        """The DKIM keys, from the Deliverability tab (their menu is under Technical, in developer mode only)."""
        require_admin(self.env)
        return self.env["ir.actions.act_window"]._for_xml_id("smtp_routing.smtp_routing_dkim_key_action")

    def action_smtp_routing_check_dns(self):
        """Check SPF, DKIM and DMARC of every domain the servers send for; keep a history row when it changes."""
        require_admin(self.env)
        lookup = self._smtp_routing_dns_lookup()
        Check = self.env["smtp_routing.dns.check"].sudo()
        keys = self.env["smtp_routing.dkim.key"].sudo().search([("active", "=", True)])
        for server in self:
            try:
                ips = (
                    [server.smtp_host]
                    if netpolicy.is_ip(server.smtp_host)
                    else (lookup(server.smtp_host, "A") + lookup(server.smtp_host, "AAAA") if server.smtp_host else [])
                )
            except dns_checks.DnsTemporaryError:
                ips = []
            provider = server.smtp_routing_provider if server.smtp_routing_provider != "generic" else None
            for domain in server._smtp_routing_sender_domains():
                selectors = keys.filtered(lambda k, d=domain: k.domain == d).mapped("selector")
                try:
                    diagnosis = dns_checks.diagnose(domain, lookup, ips=ips, provider=provider, selectors=selectors)
                    status = diagnosis.status
                    report = "\n".join(
                        f"[{f.status.upper()}] {_dns_line(f.check, f.summary)}" for f in diagnosis.findings
                    )
                    fixes = "\n".join(f.fix for f in diagnosis.findings if f.fix) or False
                except Exception as error:  # noqa: BLE001 - a DNS failure is a result to show, not a crash
                    status, report, fixes = "error", self.env._("DNS check failed: %(error)s", error=error), False
                last = Check.search([("server_id", "=", server.id), ("domain", "=", domain)], limit=1)
                if not last or (last.status, last.report, last.fixes or False) != (status, report, fixes):
                    Check.create(
                        {"server_id": server.id, "domain": domain, "status": status, "report": report, "fixes": fixes}
                    )
            server.sudo().smtp_routing_dns_checked_at = fields.Datetime.now()
        return True

    @api.model
    def _cron_smtp_routing_check_dns(self):
        self.search([("smtp_routing_owner_id", "=", False)]).action_smtp_routing_check_dns()

    # -- constraints and onchanges ------------------------------------------------------
    @api.constrains("smtp_host", "smtp_authentication")
    def _check_smtp_routing_host(self):
        for server in self:
            if server.smtp_authentication == "cli":
                continue
            if not (server.smtp_host or "").strip():
                raise ValidationError(
                    self.env._("Enter the SMTP host of %(server)s, e.g. smtp.example.com.", server=server.name)
                )

    @api.constrains("smtp_port", "smtp_authentication")
    def _check_smtp_routing_port(self):
        for server in self:
            if server.smtp_authentication != "cli" and not 1 <= (server.smtp_port or 0) <= 65535:
                raise ValidationError(
                    self._smtp_routing_host_message(hostport.HostPortError("bad_port", server.smtp_port))
                )

    @api.constrains("smtp_routing_from_email", "smtp_routing_sender_email")
    def _check_smtp_routing_identity(self):
        for server in self:
            for label, value in (
                (self.env._("From email"), server.smtp_routing_from_email),
                (self.env._("Sender address"), server.smtp_routing_sender_email),
            ):
                if value and not email_normalize(value, strict=True):
                    raise ValidationError(
                        self.env._(
                            "%(field)s of %(server)s is not a valid email address: %(value)s",
                            field=label,
                            server=server.name,
                            value=value,
                        )
                    )

    @api.constrains("smtp_routing_from_name")
    def _check_smtp_routing_from_name(self):
        for server in self:
            if server.smtp_routing_from_name and any(c in server.smtp_routing_from_name for c in "\r\n"):
                raise ValidationError(self.env._("The From name cannot contain line breaks."))

    @api.onchange("smtp_routing_provider")
    def _onchange_smtp_routing_provider(self):
        preset = presets.PRESETS.get(self.smtp_routing_provider or "generic")
        if not preset or preset.code == "generic":
            return
        self.smtp_host = preset.host
        self.smtp_port = preset.port
        self.smtp_encryption = preset.encryption
        if preset.code == "sendgrid" and not self.smtp_user:
            self.smtp_user = "apikey"
        oauth_method = PRESET_OAUTH.get(preset.code)
        available = dict(self._fields["smtp_authentication"].selection)
        if oauth_method in available and not self.sudo().smtp_routing_pass_encrypted:
            # Microsoft and Google end password sign-in: their presets sign in with OAuth (Odoo's consent flow)
            self.smtp_authentication = oauth_method
            self.from_filter = self.smtp_user or self.from_filter

    @api.onchange("smtp_encryption")
    def _onchange_encryption(self):
        """Stock Odoo silently resets the port to 25 (465 for SSL/TLS) when the encryption changes.

        Here a typed port stays; only a port that is the usual one of another encryption (25, 465, 587, or none)
        follows the new encryption (a preset's own port for its encryption), and a notice says so.
        """
        result = {}
        if self.smtp_encryption == "ssl" and "SMTP_SSL" not in smtplib.__all__:
            result = super()._onchange_encryption()  # its warning; the port is decided below
        port = self.smtp_port
        preset = presets.PRESETS.get(self.smtp_routing_provider or "generic")
        if preset and preset.code != "generic" and self.smtp_encryption == preset.encryption:
            usual = preset.port
        else:
            usual = {"ssl": 465, "starttls": 587}.get(self.smtp_encryption, 25)
        if port and port not in (25, 465, 587):
            self.smtp_port = port  # typed by hand: kept
            return result
        self.smtp_port = usual
        if port and port != usual and "warning" not in result:
            result["warning"] = {
                "title": self.env._("Port changed"),
                "message": self.env._(
                    "The port changed from %(old)s to %(new)s, the usual port for this encryption. Change it back "
                    "if your server listens elsewhere.",
                    old=port,
                    new=usual,
                ),
            }
        return result

    # -- CRUD -----------------------------------------------------------------------
    def _smtp_routing_normalize_vals(self, vals):
        """Split ``[host]:port`` / ``host:port`` typed into the host field; validate the host."""
        if not vals.get("smtp_host"):
            return vals
        try:
            parsed = hostport.parse_host(vals["smtp_host"])
        except hostport.HostPortError as error:
            raise ValidationError(self._smtp_routing_host_message(error)) from error
        vals = {**vals, "smtp_host": parsed.host}
        if parsed.port is not None:
            vals["smtp_port"] = parsed.port
        return vals

    def _smtp_routing_host_message(self, error):
        messages = {
            "empty": self.env._("Enter the SMTP host, e.g. smtp.example.com."),
            "space": self.env._("The SMTP host %(value)r cannot contain spaces or line breaks.", value=error.value),
            "bad_port": self.env._(
                "The SMTP port in %(value)r must be a number between 1 and 65535 (usually 587 for STARTTLS, 465 for "
                "SSL/TLS, 25 for relays).",
                value=error.value,
            ),
        }
        return messages.get(
            error.code,
            self.env._(
                "%(value)r is not a valid host name. Use a name like smtp.example.com, an IP address, or the "
                "[host]:port notation, e.g. [smtp.example.com]:465.",
                value=error.value,
            ),
        )

    @api.model_create_multi
    def create(self, vals_list):
        vals_list = [self._smtp_routing_normalize_vals(vals) for vals in vals_list]
        servers = super().create(vals_list)
        # Odoo runs constraints that mix stored fields and smtp_pass (Gmail, Outlook) before the password
        # is set; run those on smtp_pass again now that the typed password is known.
        typed = servers.browse([s.id for s, vals in zip(servers, vals_list, strict=True) if vals.get("smtp_pass")])
        typed._validate_fields(["smtp_pass"])
        # what was typed is not kept, not even in the cache
        servers.invalidate_recordset(["smtp_pass", *self._smtp_routing_token_fields()])
        servers.filtered("smtp_routing_is_default")._smtp_routing_unset_other_defaults()
        return servers

    def write(self, vals):
        result = super().write(self._smtp_routing_normalize_vals(vals))
        if "smtp_pass" in vals:
            self.invalidate_recordset(["smtp_pass"])
        tokens = self._smtp_routing_token_fields()
        if tokens and set(vals) & set(tokens):
            self.invalidate_recordset(tokens)
        if "smtp_authentication" in vals and vals["smtp_authentication"] not in OAUTH_AUTHENTICATIONS:
            # no longer OAuth: its tokens go (Odoo's onchange empties them; the form cannot send empty values)
            self.sudo().filtered("smtp_routing_oauth_encrypted").write(
                {"smtp_routing_oauth_encrypted": False, "smtp_routing_oauth_connected": False}
            )
        if vals.get("smtp_routing_is_default"):
            self._smtp_routing_unset_other_defaults()
        return result

    def _smtp_routing_unset_other_defaults(self):
        for server in self:
            others = self.search(
                [
                    ("id", "!=", server.id),
                    ("smtp_routing_is_default", "=", True),
                    ("company_id", "=", server.company_id.id),
                ]
            )
            if others:
                super(IrMailServer, others).write({"smtp_routing_is_default": False})

    # -- actions ----------------------------------------------------------------------
    def test_smtp_connection(self, autodetect_max_email_size=False):
        require_admin(self.env)
        try:
            return super().test_smtp_connection(autodetect_max_email_size=autodetect_max_email_size)
        except UserError as error:
            if len(self) != 1:
                raise
            raise UserError(
                self.env._(
                    "Tried %(host)s:%(port)s (%(encryption)s).\n%(error)s",
                    host=self.smtp_host,
                    port=self.smtp_port,
                    encryption=dict(self._fields["smtp_encryption"]._description_selection(self.env)).get(
                        self.smtp_encryption, self.smtp_encryption
                    ),
                    error=error.args[0] if error.args else error,
                )
            ) from error

    def action_smtp_routing_apply_preset_limits(self):
        """Set the Limits tab to the provider's published limits, a little below them (one click)."""
        require_admin(self.env)
        self.ensure_one()
        preset = presets.PRESETS.get(self.smtp_routing_provider or "generic")
        values = presets.suggested_limits(preset) if preset else {}
        if not values:
            raise UserError(
                self.env._(
                    "%(provider)s publishes no sending limits to apply: set the Limits tab by hand, from what your "
                    "provider told you.",
                    provider=preset.label if preset else self.env._("This provider"),
                )
            )
        self.write(values)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "title": self.env._("Limits applied"),
                "message": self.env._(
                    "%(server)s now keeps a little below what %(provider)s publishes: %(limits)s.",
                    server=self.name,
                    provider=preset.label,
                    limits=presets.describe_limits(preset.limits),
                ),
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

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

    def action_smtp_routing_test_email(self):
        require_admin(self.env)
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Send a Test Email"),
            "res_model": "smtp_routing.test.email",
            "view_mode": "form",
            "target": "new",
            "context": {"default_server_id": self.id},
        }

    def action_smtp_routing_history(self, filters=("filter_last_24h",)):
        """This server's delivery history, with the given search filters on."""
        require_admin(self.env)
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("smtp_routing.smtp_routing_delivery_log_action")
        action["display_name"] = self.env._("Delivery History: %(server)s", server=self.name)
        action["domain"] = [("server_id", "=", self.id)]
        action["context"] = {f"search_default_{name}": 1 for name in filters}
        return action

    def action_smtp_routing_history_sent(self):
        return self.action_smtp_routing_history(("filter_today", "filter_sent"))

    def action_smtp_routing_history_failed(self):
        return self.action_smtp_routing_history(("filter_today", "filter_failed"))

    def action_smtp_routing_queue(self):
        """The mail waiting for this server (deferred or not yet sent)."""
        require_admin(self.env)
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("mail.action_view_mail_mail")
        action["display_name"] = self.env._("Queued for %(server)s", server=self.name)
        action["domain"] = [("state", "=", "outgoing"), ("smtp_routing_server_id", "=", self.id)]
        action["context"] = {}
        return action

    def action_smtp_routing_explain(self):
        require_admin(self.env)
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("smtp_routing.smtp_routing_route_explain_action")
        action["context"] = {"default_company_id": (self.company_id or self.env.company).id}
        return action

    @api.model
    def _smtp_routing_rotate_keys(self):
        """Re-encrypt every stored password with the primary key (after adding a new key first)."""
        keyring = _keyring()
        servers = self.sudo().with_context(active_test=False).search([("smtp_routing_pass_encrypted", "!=", False)])
        for server in servers:
            try:
                rotated = secrets.rotate(server.smtp_routing_pass_encrypted, keyring)
            except secrets.SecretError as error:
                raise UserError(self._smtp_routing_secret_message(error, server)) from error
            server.write({"smtp_routing_pass_encrypted": rotated})
        return len(servers)

    def action_smtp_routing_rotate_keys(self):
        require_admin(self.env)
        count = self._smtp_routing_rotate_keys()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": self.env._(
                    "%(count)s SMTP password(s) re-encrypted with the current key (%(fingerprint)s).",
                    count=count,
                    fingerprint=_keyring().fingerprint,
                ),
            },
        }

    # -- routing --------------------------------------------------------------------------
    def _smtp_routing_spec(self):
        self.ensure_one()
        return routing_tool.Server(
            id=self.id,
            name=self.name,
            from_filter=self.from_filter or None,
            company_id=self.company_id.id or None,
            user_selectable=self.smtp_routing_user_selectable,
            owner_id=self.smtp_routing_owner_id.id or None,
        )

    @api.model
    def _smtp_routing_order(self, servers):
        """The company's default server(s) first, then the others in their given (priority) order."""
        company = self.env.company
        defaults = servers.filtered(
            lambda s: s.smtp_routing_is_default and s.company_id in (company, self.env["res.company"])
        )
        if not defaults:
            return servers
        return defaults.sorted(lambda s: (not s.company_id, s.sequence, s.id)) + (servers - defaults)

    def _find_mail_server(self, email_from, mail_servers=None):
        """Prefer the company's default server wherever Odoo would take "the first server".

        Users' personal servers are never picked here: they carry their owner's personal mail only.
        """
        if mail_servers is None:
            mail_servers = self.sudo().search([], order="sequence")
        if len(mail_servers) > 1:
            mail_servers = mail_servers.filtered(lambda s: not s.smtp_routing_owner_id)
        return super()._find_mail_server(email_from, mail_servers=self._smtp_routing_order(mail_servers))

    # -- sending: identity, tagging, delivery log -----------------------------------------------
    @api.constrains(
        "smtp_routing_throttle_max",
        "smtp_routing_throttle_duration",
        "smtp_routing_flood_max",
        "smtp_routing_flood_pause",
        "smtp_routing_hourly_max",
        "smtp_routing_daily_max",
        "smtp_routing_batch_max_count",
        "smtp_routing_batch_max_mb",
        "smtp_routing_batch_interval",
        "smtp_routing_cooldown_seconds",
        "smtp_routing_timeout",
        "smtp_routing_connections",
    )
    def _check_smtp_routing_limits(self):
        for server in self:
            numbers = {
                self.env._("Throttle messages"): server.smtp_routing_throttle_max,
                self.env._("Anti-flood threshold"): server.smtp_routing_flood_max,
                self.env._("Per hour"): server.smtp_routing_hourly_max,
                self.env._("Per day"): server.smtp_routing_daily_max,
                self.env._("Batch mails"): server.smtp_routing_batch_max_count,
                self.env._("Batch MB"): server.smtp_routing_batch_max_mb,
                self.env._("Batch interval"): server.smtp_routing_batch_interval,
                self.env._("Cooldown"): server.smtp_routing_cooldown_seconds,
            }
            for label, value in numbers.items():
                if value < 0:
                    raise ValidationError(
                        self.env._(
                            "%(field)s of %(server)s cannot be negative (use 0 to switch it off).",
                            field=label,
                            server=server.name,
                        )
                    )
            if server.smtp_routing_throttle_max and server.smtp_routing_throttle_duration <= 0:
                raise ValidationError(
                    self.env._(
                        "The throttle of %(server)s needs a duration of at least 1 %(unit)s.",
                        server=server.name,
                        unit=server.smtp_routing_throttle_unit,
                    )
                )
            if server.smtp_routing_flood_max and server.smtp_routing_flood_pause <= 0:
                raise ValidationError(
                    self.env._("The anti-flood of %(server)s needs a pause of at least 1 second.", server=server.name)
                )
            if not 1 <= server.smtp_routing_timeout <= 600:
                raise ValidationError(
                    self.env._("The time-out of %(server)s must be between 1 and 600 seconds.", server=server.name)
                )
            if not 1 <= server.smtp_routing_connections <= 16:
                raise ValidationError(
                    self.env._(
                        "The connections of %(server)s must be between 1 and 16 (1: one mail after the other).",
                        server=server.name,
                    )
                )

    def _smtp_login(self, connection, smtp_user, smtp_password):
        """The one place a stored password is decrypted: for this server's login, on this connection.

        OAuth servers: Odoo's modules sign in (refreshing the access token when it expired) with their
        tokens decrypted for this server, in this thread, for this call only; the XOAUTH2 reply is checked.
        """
        if len(self) == 1 and self.id and self.smtp_authentication == "login":
            smtp_password = self._smtp_routing_password() or smtp_password
        if len(self) == 1 and self.id and self.smtp_authentication in OAUTH_AUTHENTICATIONS:
            if self._smtp_routing_token_fields():
                self._smtp_routing_check_connected()
            with self._smtp_routing_tokens_revealed(), checked_xoauth2(connection):
                return super()._smtp_login(connection, smtp_user, smtp_password)
        return super()._smtp_login(connection, smtp_user, smtp_password)

    # -- OAuth tokens (write-only, encrypted; see the bridge modules) -------------------------------------
    def _smtp_routing_token_fields(self):
        """Odoo's token fields that a bridge module made write-only on this model (installed modules only)."""
        return [name for name, field in self._fields.items() if field.compute == TOKEN_COMPUTE]

    def _smtp_routing_oauth_tokens(self, missing_ok=False):
        """{token field: value} of this one server, decrypted (for signing in only)."""
        self.ensure_one()
        stored = self.sudo().smtp_routing_oauth_encrypted
        if not stored:
            return {}
        try:
            return json.loads(secrets.decrypt(stored, _keyring()))
        except secrets.SecretError as error:
            if missing_ok:
                return {}
            raise UserError(self._smtp_routing_secret_message(error, self)) from error

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
            try:
                encrypted = secrets.encrypt(json.dumps(tokens, sort_keys=True), _keyring()) if tokens else False
            except secrets.SecretError as error:
                raise UserError(self._smtp_routing_secret_message(error, server)) from error
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

    def connect(
        self,
        host=None,
        port=None,
        user=None,
        password=None,
        encryption=None,
        smtp_from=None,
        ssl_certificate=None,
        ssl_private_key=None,
        smtp_debug=False,
        mail_server_id=None,
        allow_archived=False,
    ):
        kwargs = dict(
            host=host,
            port=port,
            user=user,
            password=password,
            encryption=encryption,
            smtp_from=smtp_from,
            ssl_certificate=ssl_certificate,
            ssl_private_key=ssl_private_key,
            smtp_debug=smtp_debug,
            mail_server_id=mail_server_id,
            allow_archived=allow_archived,
        )
        # Callable over RPC (and send_email() comes here without a session): nobody but administrators and
        # the system may aim Odoo at a host, or open a session with a server's login. Code acting for a user
        # sends through sudo() records, as Odoo's own mail does.
        require_admin(self.env)
        if modules.module.current_test:
            return super().connect(**kwargs)
        if not mail_server_id and not host:
            # Resolve the server here (as super() would) so the session knows which server it is.
            server, smtp_from = self.sudo()._find_mail_server(smtp_from)
            mail_server_id = server.id if server else None
            kwargs.update(smtp_from=smtp_from, mail_server_id=mail_server_id)
        server = self.sudo().browse(mail_server_id) if mail_server_id else None
        timeout = server.smtp_routing_timeout if server else None
        started = time.monotonic()
        try:
            pinned = server._smtp_routing_personal_addresses() if server else None
            with per_server_connection(timeout, server._smtp_routing_tls_context() if server else None, pinned):
                connection = super().connect(**kwargs)
        except Exception as error:
            self.env["smtp_routing.delivery.log"]._smtp_routing_record(
                server_id=mail_server_id,
                error=error,
                duration=time.monotonic() - started,
                stage="connect",
                email_from=smtp_from,
            )
            if server:
                server._smtp_routing_note_sign_in(error)
            raise
        if connection is not None:
            connection.smtp_routing_server_id = mail_server_id
            make_quit_safe(connection)
            if server:
                server._smtp_routing_note_sign_in(None)
        return connection

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
        if classify(error).category != "oauth_revoked":
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

    def _smtp_routing_identity_from(self, current_from):
        """The From to use for mail without an author-specific From, or None to keep it."""
        self.ensure_one()
        if not self.smtp_routing_from_email:
            return None
        current = email_normalize(current_from or "")
        default_from = email_normalize(self._get_default_from_address() or "")
        if current and current != default_from:
            return None
        return email.utils.formataddr((self.smtp_routing_from_name or "", self.smtp_routing_from_email))

    def _prepare_email_message(self, message, smtp_session):
        smtp_from, smtp_to_list, message = self._smtp_routing_prepare_identity(message, smtp_session)
        keep_raw(message, UNFOLDED_HEADERS)
        self._smtp_routing_dkim_sign(message)
        return smtp_from, smtp_to_list, message

    def _smtp_routing_prepare_identity(self, message, smtp_session):
        server_id = getattr(smtp_session, "smtp_routing_server_id", None) if smtp_session else None
        if not server_id:
            return super()._prepare_email_message(message, smtp_session)
        server = self.sudo().browse(server_id)
        if server.smtp_routing_sender_email and not message["Sender"]:
            message["Sender"] = server.smtp_routing_sender_email
        identity = server._smtp_routing_identity_from(message["From"])
        if not identity:
            return super()._prepare_email_message(message, smtp_session)
        # The session's smtp_from decides the From header in super(); the session
        # is shared by the whole batch, so set it for this message only.
        del message["From"]
        message["From"] = identity
        session_from = smtp_session.smtp_from
        smtp_session.smtp_from = identity
        try:
            return super()._prepare_email_message(message, smtp_session)
        finally:
            smtp_session.smtp_from = session_from

    @api.model
    def _smtp_routing_check_size(self, message, server_id, smtp_session):
        """Refuse before sending a message over the server's limit (its Max Email Size, or the SIZE it advertises)."""
        limits = []
        if server_id:
            server = self.sudo().browse(server_id)
            if server.max_email_size:
                limits.append(int(server.max_email_size * 1024 * 1024))
        features = getattr(getattr(smtp_session, "__obj__", None), "esmtp_features", None) or {}
        size_text = str(features.get("size", ""))
        if size_text.isascii() and size_text.isdigit() and int(size_text):
            limits.append(int(size_text))
        if not limits:
            return
        # the encoded payloads are what goes on the wire: summing them is cheap and close
        size = sum(len(str(part.get_payload())) for part in message.walk() if not part.is_multipart())
        size += len(str(message.items()))
        limit = min(limits)
        if size > limit:
            raise MessageTooLarge(
                self.env._(
                    "The message is about %(size).1f MB; the server accepts at most %(limit).1f MB. Refused before "
                    "sending: send large files as links, or raise the server's limit.",
                    size=size / 1048576,
                    limit=limit / 1048576,
                )
            )

    @api.model
    def _smtp_routing_dkim_sign(self, message):
        """Sign with the DKIM key of the From domain, once the headers are final (after Odoo's rewrites)."""
        keys = self.env["smtp_routing.dkim.key"]._smtp_routing_signing_keys()
        if not keys:
            return
        domain = email_domain_extract(email_normalize(message["From"] or "") or "")
        if domain not in keys:
            return
        selector, key_id = keys[domain]
        pem = self.env["smtp_routing.dkim.key"].sudo().browse(key_id)._private_pem(raise_if_missing=False)
        if not pem:
            _logger.warning("smtp_routing: DKIM key %s for %s cannot be read; mail sent unsigned", selector, domain)
            return
        del message["DKIM-Signature"]
        buffer = io.BytesIO()
        # the same generator smtplib.send_message() uses, so the signed bytes are the sent bytes
        email.generator.BytesGenerator(buffer).flatten(message, linesep="\r\n")
        pipelining.remember_flattened(message, buffer.getvalue())  # sent as these bytes plus the signature
        value = dkim_tool.sign(buffer.getvalue(), domain, selector, pem)
        # written as is, folded only at its spaces: the email package would turn a long h= list into encoded words
        message["DKIM-Signature"] = RawHeader("DKIM-Signature", dkim_tool.foldable(value), max_line=78)

    @api.model
    def send_email(
        self,
        message,
        mail_server_id=None,
        smtp_server=None,
        smtp_port=None,
        smtp_user=None,
        smtp_password=None,
        smtp_encryption=None,
        smtp_ssl_certificate=None,
        smtp_ssl_private_key=None,
        smtp_debug=False,
        smtp_session=None,
    ):
        mail_id = message[MAIL_ID_HEADER]
        del message[MAIL_ID_HEADER]
        kwargs = dict(
            mail_server_id=mail_server_id,
            smtp_server=smtp_server,
            smtp_port=smtp_port,
            smtp_user=smtp_user,
            smtp_password=smtp_password,
            smtp_encryption=smtp_encryption,
            smtp_ssl_certificate=smtp_ssl_certificate,
            smtp_ssl_private_key=smtp_ssl_private_key,
            smtp_debug=smtp_debug,
            smtp_session=smtp_session,
        )
        if modules.module.current_test:
            return super().send_email(message, **kwargs)
        server_id = getattr(smtp_session, "smtp_routing_server_id", None) or mail_server_id
        recipients = [
            address
            for _name, address in email.utils.getaddresses(
                [str(value) for header in ("To", "Cc", "Bcc") for value in (message.get_all(header) or [])]
            )
            if address
        ]
        details = {
            "server_id": server_id,
            "mail_id": int(mail_id) if mail_id and str(mail_id).isdigit() else False,
            "message_id": message["Message-Id"],
            "subject": message["Subject"],
            "email_from": message["From"],
            "recipients": recipients,
        }
        Log = self.env["smtp_routing.delivery.log"]
        # A queue run's lanes (sending.run.LaneSession) send later, in another thread: the run records the
        # attempt when the server has answered.
        handed_over = hasattr(smtp_session, "smtp_routing_details")
        if handed_over:
            smtp_session.smtp_routing_details = details
        started = time.monotonic()
        try:
            self._smtp_routing_check_size(message, server_id, smtp_session)
            result = super().send_email(message, **kwargs)
        except Exception as error:
            Log._smtp_routing_record(error=error, duration=time.monotonic() - started, **details)
            raise
        if not handed_over:
            Log._smtp_routing_record(duration=time.monotonic() - started, **details)
        return result
