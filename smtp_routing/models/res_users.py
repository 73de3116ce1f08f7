# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import json

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import consteq, sql

from ..tools import send_as
from . import params

PERSONAL_SERVERS = "smtp_routing.allow_personal_servers"
PERSONAL_OAUTH = "smtp_routing.allow_personal_oauth"
PERSONAL_OAUTH_SERVERS = {
    "outlook": {
        "label": "Microsoft 365",
        "preset": "microsoft365",
        "host": "smtp.office365.com",
        "uri_field": "microsoft_outlook_uri",
        "limit_param": "smtp_routing.personal_outlook_per_minute",
        "limit": 10,
    },
    "gmail": {
        "label": "Google",
        "preset": "google_workspace",
        "host": "smtp.gmail.com",
        "uri_field": "google_gmail_uri",
        "limit_param": "smtp_routing.personal_gmail_per_minute",
        "limit": 30,
    },
}


class ResUsers(models.Model):
    _inherit = "res.users"

    smtp_routing_server_id = fields.Many2one(
        "ir.mail_server",
        string="Outgoing Mail Server",
        ondelete="set null",
        domain=[("smtp_routing_user_selectable", "=", True)],
        help="Your personal mail to clients goes through this server. Empty: the company's routing decides.",
    )

    smtp_routing_personal_allowed = fields.Boolean(compute="_compute_smtp_routing_personal_allowed")
    smtp_routing_approved_email = fields.Char(
        string="Approved Sending Address",
        groups="base.group_erp_manager",
        copy=False,
        help="The address this user may send from as their own. Set when an administrator creates the user or "
        "changes their email; a user changing their own email does not change it.",
    )

    def _auto_init(self):
        """Installing: the addresses users have now are the approved ones."""
        new = not sql.column_exists(self.env.cr, self._table, "smtp_routing_approved_email")
        result = super()._auto_init()
        if new:
            self.env.cr.execute(
                "UPDATE res_users u SET smtp_routing_approved_email = p.email_normalized "
                "FROM res_partner p WHERE p.id = u.partner_id AND p.email_normalized IS NOT NULL"
            )
        return result

    @api.model_create_multi
    def create(self, vals_list):
        vals_list = [{k: v for k, v in vals.items() if k != "smtp_routing_approved_email"} for vals in vals_list]
        users = super().create(vals_list)
        if self.env.user._is_admin():  # whoever may create users approves the address they give them
            for user in users.sudo():
                user.smtp_routing_approved_email = send_as.normalize(user.email) or False
        return users

    def write(self, vals):
        if vals.get("smtp_routing_approved_email"):
            approved = send_as.normalize(vals["smtp_routing_approved_email"])
            if not approved:
                raise ValidationError(
                    self.env._(
                        "The approved sending address must be one email address (e.g. ana@practice.example), not "
                        "%(value)r.",
                        value=vals["smtp_routing_approved_email"],
                    )
                )
            vals = {**vals, "smtp_routing_approved_email": approved}
        return super().write(vals)

    def _smtp_routing_approve_email(self):
        """An administrator set these users' email: it becomes their approved sending address."""
        if self.env.user._is_admin():
            for user in self.sudo():
                user.smtp_routing_approved_email = send_as.normalize(user.email) or False

    def _compute_smtp_routing_personal_allowed(self):
        allowed = params.flag(self.env, PERSONAL_SERVERS, default=False)
        for user in self:
            user.smtp_routing_personal_allowed = allowed and not user.share

    @property
    def SELF_READABLE_FIELDS(self):
        return super().SELF_READABLE_FIELDS + ["smtp_routing_server_id", "smtp_routing_personal_allowed"]

    @property
    def SELF_WRITEABLE_FIELDS(self):
        return super().SELF_WRITEABLE_FIELDS + ["smtp_routing_server_id"]

    @api.constrains("smtp_routing_server_id", "email", "company_ids")
    def _check_smtp_routing_server(self):
        """Checked on the server side: a user's own preference write runs as superuser.

        The messages name a server only to whoever may read it: a user learns nothing
        (name, host) about other users' servers or servers not offered to them.
        """
        for user in self.filtered("smtp_routing_server_id"):
            server = user.smtp_routing_server_id.sudo()
            if server.smtp_routing_owner_id:
                if server.smtp_routing_owner_id != user:
                    raise ValidationError(
                        self.env._(
                            "This is another user's personal server: pick one of the servers your administrator offers."
                        )
                    )
                continue
            visible = bool(server.with_user(self.env.user)._filtered_access("read"))
            unavailable = not server.smtp_routing_user_selectable or not server.active
            other_company = server.company_id and server.company_id not in user.company_ids
            if (unavailable or other_company) and not visible:
                raise ValidationError(
                    self.env._(
                        "This server is not available to users: pick one of the servers your administrator offers."
                    )
                )
            if unavailable:
                raise ValidationError(
                    self.env._(
                        "%(server)s is not available to users: pick one of the servers your administrator offers.",
                        server=server.name,
                    )
                )
            if other_company:
                raise ValidationError(
                    self.env._(
                        "%(server)s belongs to another company: pick one of the servers your administrator offers.",
                        server=server.name,
                    )
                )
            own = user.sudo().smtp_routing_approved_email or user.email or ""
            if not server._match_from_filter(own, server.from_filter):
                raise ValidationError(
                    self.env._(
                        "%(server)s may not send as %(email)s (its From filter is %(filter)s): pick a server for your "
                        "own address.",
                        server=server.name,
                        email=own or "?",
                        filter=server.from_filter,
                    )
                )

    def action_smtp_routing_test_own_server(self):
        """Send a test email to the user's own address through the user's server (From = To = the user)."""
        self.ensure_one()
        if self != self.env.user and not self.env.user.has_group("base.group_system"):
            raise AccessError(self.env._("You can only test your own server."))
        if not self.smtp_routing_server_id:
            raise ValidationError(self.env._("Pick an outgoing mail server first, and save."))
        if not self.email:
            raise ValidationError(self.env._("Add your email address first: the test is sent to it."))
        # a user's own server must be on the internet: say so before any connection is tried
        self.smtp_routing_server_id.sudo()._smtp_routing_personal_addresses()
        wizard = (
            self.env["smtp_routing.test.email"]
            .sudo()
            .create(
                {
                    "server_id": self.smtp_routing_server_id.id,
                    "email_to": self.email,
                    "email_from_override": self.email_formatted,
                }
            )
        )
        wizard.action_send()
        if wizard.state == "sent":
            message, kind = self.env._("Test email sent to %(email)s.", email=self.email), "success"
        else:
            # the outcome, never the remote server's reply (its banner and texts are for administrators)
            labels = dict(wizard._fields["result_category"]._description_selection(self.env))
            hint = wizard.result_hint or ""
            if wizard.result_category in ("config", "other"):
                hint = self.env._("Check your server's settings, or ask your administrator to look at its history.")
            message = self.env._(
                "The test failed: %(problem)s. %(hint)s",
                problem=labels.get(wizard.result_category, wizard.result_category),
                hint=hint,
            )
            kind = "danger"
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"message": message, "type": kind, "sticky": kind == "danger"},
        }

    def action_smtp_routing_personal_server(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("My Own Outgoing Server"),
            "res_model": "smtp_routing.personal.server",
            "view_mode": "form",
            "target": "new",
        }

    # -- a user's own Microsoft 365 / Google account over OAuth (buttons added by the bridge modules) -----------
    def _smtp_routing_connect_own_account(self, method):
        """Create (or reuse) the user's own OAuth server and send them to the provider's consent page.

        The server belongs to the user, sends only as the user's address, carries only the user's personal
        mail, and is throttled (``smtp_routing.personal_outlook_per_minute``, 10;
        ``smtp_routing.personal_gmail_per_minute``, 30). Odoo's own consent flow is admin-only: the bridge
        modules let its callback accept the owner of the server named in the (signed) state.
        """
        self.ensure_one()
        user = self.env.user
        if self != user:
            raise AccessError(self.env._("You can only connect your own account."))
        if user.share or not user.email:
            raise UserError(
                self.env._("Add your email address in your preferences first: it is the account to connect.")
            )
        if not params.flag(self.env, PERSONAL_OAUTH, default=True):
            raise UserError(self.env._("Your administrator does not allow connecting your own mail account."))
        spec = PERSONAL_OAUTH_SERVERS[method]
        Server = self.env["ir.mail_server"].sudo()
        own = Server.with_context(active_test=False).search(
            [("smtp_routing_owner_id", "=", user.id), ("smtp_authentication", "=", method)], limit=1
        )
        values = {
            "smtp_user": user.email,
            "from_filter": user.email,
            "smtp_routing_owner_id": user.id,
            "smtp_routing_user_selectable": False,
            "active": True,
        }
        if not own:
            per_minute = params.integer(self.env, spec["limit_param"], spec["limit"])
            own = Server.create(
                {
                    **values,
                    "name": self.env._("%(user)s's %(provider)s mailbox", user=user.name, provider=spec["label"]),
                    "smtp_routing_provider": spec["preset"],
                    "smtp_host": spec["host"],
                    "smtp_port": 587,
                    "smtp_encryption": "starttls",
                    "smtp_authentication": method,
                    "company_id": user.company_id.id,
                    "sequence": 100,
                    "smtp_routing_throttle_max": max(per_minute, 0),
                    "smtp_routing_throttle_duration": 1,
                    "smtp_routing_throttle_unit": "minutes",
                    "smtp_routing_count_recipients": True,
                }
            )
        else:
            own.write(values)
        user.sudo().smtp_routing_server_id = own
        url = own[spec["uri_field"]]
        if not url:
            raise UserError(
                self.env._(
                    "Signing in with %(provider)s is not set up yet: ask your administrator to enter the %(provider)s "
                    "application's client ID and secret in Settings.",
                    provider=spec["label"],
                )
            )
        return {"type": "ir.actions.act_url", "url": url, "target": "self"}

    @api.model
    def _smtp_routing_own_server_from_state(self, state, method):
        """The current user's own OAuth server named by a consent callback's ``state``, checked; else None.

        None sends the callback to Odoo's own (administrators') flow. The state must name an ir.mail_server
        of this user with this sign-in method, with the server's CSRF token (an HMAC only Odoo can make).
        """
        try:
            data = json.loads(state or "")
            model, server_id, token = data["model"], int(data["id"]), data["csrf_token"]
        except (ValueError, TypeError, KeyError):
            return None
        if model != "ir.mail_server":
            return None
        server = self.env["ir.mail_server"].sudo().browse(server_id).exists()
        if not server or server.smtp_routing_owner_id != self.env.user or server.smtp_authentication != method:
            return None
        expected = server._get_outlook_csrf_token() if method == "outlook" else server._get_gmail_csrf_token()
        if not token or not consteq(str(token), expected):
            return None
        return server
