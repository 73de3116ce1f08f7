# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import email.generator
import email.utils
import logging
import smtplib
import ssl
import time

from odoo import api, fields, models, modules
from odoo.exceptions import UserError, ValidationError
from odoo.tools import email_normalize

from ..sending.transport import checked_xoauth2, make_quit_safe, per_server_connection, verifying_context
from ..tools import hostport, netpolicy, planning, presets, secrets
from ..tools.headers import keep_raw
from ..tools.smtp_errors import MessageTooLarge, classified
from . import params
from .access import require_admin
from .smtp_routing_delivery_log import CATEGORY_SELECTION
from .smtp_routing_oauth_mixin import OAUTH_AUTHENTICATIONS, PRESET_OAUTH
from .smtp_routing_secret_mixin import _keyring, secret_field

_logger = logging.getLogger(__name__)

# What a queue run tells send_email() about the message it sends (Odoo's send_email() signature is fixed:
# the run passes them on the environment of the call, as Odoo passes send_validated_to): the mail.mail id.
MAIL_ID_CONTEXT = "smtp_routing_mail_id"
# Set by send_email() for its own call: the server the message goes through (for _prepare_email_message).
SERVER_ID_CONTEXT = "smtp_routing_sending_server_id"


def attempt_details(message, server_id, mail_id):
    """What the delivery log records of one SMTP attempt, read from the message before it leaves."""
    recipients = [
        address
        for _name, address in email.utils.getaddresses(
            [str(value) for header in ("To", "Cc", "Bcc") for value in (message.get_all(header) or [])]
        )
        if address
    ]
    return {
        "server_id": server_id,
        "mail_id": mail_id or False,
        "message_id": message["Message-Id"],
        "subject": message["Subject"],
        "email_from": message["From"],
        "recipients": recipients,
    }


# written as they are, never refolded into encoded words (Gmail reads List-Unsubscribe byte for byte)
UNFOLDED_HEADERS = ("List-Unsubscribe", "List-Unsubscribe-Post")
PERSONAL_ALLOW_PRIVATE = "smtp_routing.personal_servers_allow_private"
ADMINS = "base.group_system"


class IrMailServer(models.Model):
    _name = "ir.mail_server"
    _inherit = ["ir.mail_server", "smtp_routing.oauth.mixin"]  # which inherits smtp_routing.secret.mixin
    _smtp_routing_secret_fields = {"smtp_pass": "smtp_routing_pass_encrypted"}

    company_id = fields.Many2one(
        "res.company",
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
    smtp_pass = secret_field(
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
    # OAuth (Odoo's Gmail and Outlook servers, through the bridge modules): smtp_routing.oauth.mixin
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

    smtp_routing_bulk_volume = fields.Char(
        string="Bulk Volume (24h)",
        compute="_compute_smtp_routing_bulk_volume",
        help="Mail sent in the last 24 hours to Gmail, Yahoo and Outlook.com, against the 5,000 a day from which "
        "they apply their bulk-sender rules. Shown for servers of bulk routes.",
        groups="base.group_system",  # counters are for administrators only
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

    def _smtp_routing_secret_accepted(self, name, value):
        """OAuth servers (Gmail, Outlook) take no password: Odoo's own check refuses the typed one right after."""
        return self.smtp_authentication not in OAUTH_AUTHENTICATIONS

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
        return self._smtp_routing_reveal("smtp_pass")

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

    def _compute_smtp_routing_history(self):
        self.env["smtp_routing.delivery.log"]._smtp_routing_history(self)

    def _compute_smtp_routing_today(self):
        self.env["smtp_routing.delivery.log"]._smtp_routing_today(self)

    def _compute_smtp_routing_bulk_volume(self):
        lines = self.env["smtp_routing.route.line"].sudo().search([("server_id", "in", self.ids)])
        bulk_servers = lines.filtered(lambda line: line.route_id.carries_bulk).server_id
        for server in self:
            if server.id and server in bulk_servers:
                Log = self.env["smtp_routing.delivery.log"]
                server.smtp_routing_bulk_volume = Log._smtp_routing_bulk_volume_text(
                    Log._smtp_routing_bulk_volumes(server.ids)
                )
            else:
                server.smtp_routing_bulk_volume = False

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
        return self.env["smtp_routing.server.state"]._smtp_routing_limits(self)

    def _smtp_routing_limit_names(self):
        return self.env["smtp_routing.server.state"]._smtp_routing_limit_names()

    def _compute_smtp_routing_queue_status(self):
        self.env["smtp_routing.server.state"]._smtp_routing_queue_status(self)

    def _compute_smtp_routing_dns(self):
        self.env["smtp_routing.dns.check"]._smtp_routing_dns_status(self)

    def action_smtp_routing_dkim_keys(self):
        """The DKIM keys, from the Deliverability tab (their menu is under Technical, in developer mode only)."""
        require_admin(self.env)
        return self.env["ir.actions.act_window"]._for_xml_id("smtp_routing.smtp_routing_dkim_key_action")

    def action_smtp_routing_check_dns(self):
        """Check SPF, DKIM and DMARC of every domain the servers send for; keep a history row when it changes."""
        require_admin(self.env)
        self.env["smtp_routing.dns.check"].sudo()._smtp_routing_check_servers(self)
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

    def _smtp_routing_unset_other_defaults(self):  # pylint: disable=missing-return
        # not an override: super() here is Odoo's write(), skipping ours (which would come back here)
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
        """Re-encrypt every stored secret with the primary key (after adding a new key first): the servers'
        passwords and OAuth tokens, and the DKIM keys, so that none is lost when the old key is dropped.
        Returns how many records were re-encrypted."""
        servers = self._smtp_routing_rotate_secrets(["smtp_routing_pass_encrypted", "smtp_routing_oauth_encrypted"])
        return servers + self.env["smtp_routing.dkim.key"]._smtp_routing_rotate_secrets()

    def action_smtp_routing_rotate_keys(self):
        require_admin(self.env)
        count = self._smtp_routing_rotate_keys()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "success",
                "message": self.env._(
                    "%(count)s record(s) with stored secrets (SMTP passwords, OAuth tokens, DKIM keys) re-encrypted "
                    "with the current key (%(fingerprint)s).",
                    count=count,
                    fingerprint=_keyring().fingerprint,
                ),
            },
        }

    # -- routing --------------------------------------------------------------------------
    def _smtp_routing_spec(self):
        self.ensure_one()
        return planning.Server(
            id=self.id,
            name=self.name,
            from_filter=self.from_filter or None,
            company_id=self.company_id.id or None,
            user_selectable=self.smtp_routing_user_selectable,
            owner_id=self.smtp_routing_owner_id.id or None,
            sequence=self.sequence,
            is_default=self.smtp_routing_is_default,
        )

    def _find_mail_server(self, email_from, mail_servers=None):
        """Prefer the company's default server wherever Odoo would take "the first server".

        Users' personal servers are never picked here: they carry their owner's personal mail only.
        """
        if mail_servers is None:
            mail_servers = self.sudo().search([], order="sequence")
        if len(mail_servers) > 1:
            mail_servers = mail_servers.filtered(lambda s: not s.smtp_routing_owner_id)
        if len(mail_servers) > 1:  # "the first server" is the company's default one (tools.planning)
            ordered = planning.default_first([s._smtp_routing_spec() for s in mail_servers], self.env.company.id)
            mail_servers = mail_servers.browse([s.id for s in ordered])
        return super()._find_mail_server(email_from, mail_servers=mail_servers)

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
            # Resolve the server here (as super() would), for its time-out, TLS and pinned addresses.
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
            # classified here, once: the history, the queue run and the test dialog read this Outcome
            self.env["smtp_routing.delivery.log"]._smtp_routing_record(
                server_id=mail_server_id,
                outcome=classified(error),
                duration=time.monotonic() - started,
                stage="connect",
                email_from=smtp_from,
            )
            if server:
                server._smtp_routing_note_sign_in(error)
            raise
        if connection is not None:
            make_quit_safe(connection)
            if server:
                server._smtp_routing_note_sign_in(None)
        return connection

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
        server_id = self.env.context.get(SERVER_ID_CONTEXT)  # set by send_email() for this call only
        if not server_id or not smtp_session:
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
        self.env["smtp_routing.dkim.key"]._smtp_routing_sign(message)

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
        # The server is an argument (a queue run names the server it sends through); without a session or a
        # server, the one Odoo's connect() will choose for this From.
        server_id = mail_server_id
        if not server_id and not smtp_session and not smtp_server:
            server = self.sudo()._find_mail_server(message["From"])[0]
            server_id = server.id if server else None
        details = attempt_details(message, server_id, self.env.context.get(MAIL_ID_CONTEXT))
        Log = self.env["smtp_routing.delivery.log"]
        # A queue run's lanes (sending.run.LaneSession) send later, in another thread: the run records the
        # attempt when the server has answered.
        handed_over = getattr(type(smtp_session), "smtp_routing_records_attempts", False) is True
        started = time.monotonic()
        try:
            self._smtp_routing_check_size(message, server_id, smtp_session)
            sender = self.with_context(**{SERVER_ID_CONTEXT: server_id}) if server_id else self
            result = super(IrMailServer, sender).send_email(message, **kwargs)
        except Exception as error:
            # classified here, once (kept on the error): the queue run and the test dialog read the same Outcome
            Log._smtp_routing_record(outcome=classified(error), duration=time.monotonic() - started, **details)
            raise
        if not handed_over:
            Log._smtp_routing_record(duration=time.monotonic() - started, **details)
        return result
