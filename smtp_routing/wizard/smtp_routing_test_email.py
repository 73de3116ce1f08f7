# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import email.utils
from datetime import timedelta

from odoo import api, fields, models, modules
from odoo.exceptions import UserError
from odoo.tools import email_normalize

from ..models import params
from ..models.access import require_admin
from ..models.smtp_routing_delivery_log import CATEGORY_SELECTION
from ..models.smtp_routing_reservation import backend
from ..tools import limits as limits_tool
from ..tools.smtp_errors import classified

HOURLY_MAX_PARAM = "smtp_routing.test_email_hourly_max"
HOURLY_MAX = 10  # test emails per user and hour
SLOT = (1, 1, 0)  # what a test email counts under the limits: (units, mails, bytes), as tools.limits.Item()


class SmtpRoutingTestEmail(models.TransientModel):
    """Send a real test email through one server and show what happened."""

    _name = "smtp_routing.test.email"
    _description = "Send a Test Email"

    server_id = fields.Many2one("ir.mail_server", required=True, ondelete="cascade")
    email_to = fields.Char(
        string="Send To",
        default=lambda self: self.env.user.email,
        help="The test email is really delivered to this address.",
    )
    user_has_email = fields.Boolean(default=lambda self: bool(self.env.user.email))
    email_from = fields.Char(string="From", compute="_compute_email_from")
    email_from_override = fields.Char(help="From used instead of the server's (a user testing their own server).")
    state = fields.Selection([("draft", "Draft"), ("sent", "Sent"), ("failed", "Failed")], default="draft")
    result_category = fields.Selection(CATEGORY_SELECTION, string="Problem", readonly=True)
    result_code = fields.Char(string="Server Code", readonly=True)
    result_reply = fields.Text(string="Server Reply", readonly=True)
    result_hint = fields.Text(string="What to Check", readonly=True)
    result_message_id = fields.Char(string="Message-Id", readonly=True)

    @api.depends("server_id", "email_from_override")
    def _compute_email_from(self):
        for wizard in self:
            wizard.email_from = wizard._test_from() if wizard.server_id else False

    def _test_from(self):
        if self.email_from_override:
            return self.email_from_override
        server = self.server_id.sudo()
        if server.smtp_routing_from_email:
            return email.utils.formataddr((server.smtp_routing_from_name or "", server.smtp_routing_from_email))
        try:
            return server._get_test_email_from()
        except UserError:
            return False

    def _hint(self, category):
        server = self.server_id.sudo()
        return self.env["smtp_routing.delivery.log"]._smtp_routing_hint(category, server.smtp_host, server.smtp_port)

    def _build_message(self, email_from):
        server = self.server_id
        body = self.env._(
            'This is a test email from Odoo, sent through the outgoing server "%(server)s" '
            "(%(host)s:%(port)s, %(encryption)s) by %(user)s.\n\nIf you can read this, the server works.",
            server=server.name,
            host=server.smtp_host,
            port=server.smtp_port,
            encryption=dict(server._fields["smtp_encryption"]._description_selection(self.env)).get(
                server.smtp_encryption, server.smtp_encryption
            ),
            user=self.env.user.name,
        )
        return self.env["ir.mail_server"].build_email(
            email_from=email_from,
            email_to=[self.email_to],
            subject=self.env._("Test email from Odoo: %(server)s", server=server.name),
            body=body,
        )

    def _check_may_send(self):
        """Refuse before connecting: an archived server, or a user who sent too many tests this hour."""
        server = self.server_id.sudo()
        if not server.active:
            raise UserError(
                self.env._("%(server)s is archived: unarchive it before sending a test email.", server=server.name)
            )
        most = max(params.integer(self.env, HOURLY_MAX_PARAM, HOURLY_MAX), 1)
        sent = self.sudo().search_count(
            [
                ("create_uid", "=", self.env.uid),
                ("state", "in", ("sent", "failed")),
                ("create_date", ">=", fields.Datetime.now() - timedelta(hours=1)),
            ]
        )
        if sent >= most:
            raise UserError(
                self.env._(
                    "You sent %(count)s test emails in the last hour (at most %(most)s): wait a while before the "
                    "next one.",
                    count=sent,
                    most=most,
                )
            )

    def _reserve_slot(self):
        """A test email is a mail like any other: it takes a slot under the server's limits (given back if
        it does not go). Returns (reservation, ledger row id), or (None, None) when the server has no limits.

        The slot is a row of the reservation ledger (``smtp_routing.reservation``) held by this request's
        PostgreSQL backend, opened in the transaction that counts it: if the worker dies before the test ends
        (killed at its time limit while a server hangs), the next queue run gives the slot back, unless the
        message had started to go (``action_send`` marks the row at risk once connected, before sending)."""
        server = self.server_id.sudo()
        if not server._smtp_routing_limits().any:
            return None, None
        reservation, row_id = (
            self.env["smtp_routing.reservation"]
            .sudo()
            ._smtp_routing_open(
                server, [limits_tool.Item()], backend(self.env.cr), lambda r: SLOT if r.grants else (0, 0, 0)
            )
        )
        if not reservation.grants:
            raise UserError(
                self.env._(
                    "%(server)s reached its %(limit)s limit: a test email now would go over it. Next free slot: "
                    "%(slot)s UTC.",
                    server=server.name,
                    limit=server._smtp_routing_limit_names().get(reservation.blocked_by, reservation.blocked_by),
                    slot=fields.Datetime.to_string(reservation.next_slot) if reservation.next_slot else "-",
                )
            )
        return reservation, row_id

    def action_send(self):
        require_admin(self.env)  # connects with the server's login as superuser (users' own test runs it as sudo)
        self.ensure_one()
        if not self.email_to:
            if not self.env.user.email:
                raise UserError(
                    self.env._(
                        "Your user has no email address, so there is no default recipient: enter the address to send "
                        "the test email to, or add your email in your Preferences."
                    )
                )
            raise UserError(self.env._("Enter the address to send the test email to."))
        if not email_normalize(self.email_to, strict=True):
            raise UserError(self.env._("%(address)s is not a valid email address.", address=self.email_to))
        email_from = self._test_from()
        if not email_from:
            raise UserError(
                self.env._("No From address for the test: set the server's From email, or add an email to your user.")
            )
        self._check_may_send()
        message = self._build_message(email_from)
        IrMailServer = self.env["ir.mail_server"].sudo().with_context(smtp_routing_source="test")
        Reservation = self.env["smtp_routing.reservation"].sudo()
        session = None
        reservation, row_id = (None, None) if modules.module.current_test else self._reserve_slot()
        try:
            if modules.module.current_test:
                raise UserError(self.env._("Test emails cannot be sent while Odoo runs its test suite."))
            session = IrMailServer.connect(mail_server_id=self.server_id.id, smtp_from=email_from, allow_archived=True)
            if row_id:
                # from now on the message may reach the server: a worker killed past here keeps the slot counted
                Reservation._smtp_routing_at_risk(row_id, *SLOT)
            message_id = IrMailServer.send_email(message, mail_server_id=self.server_id.id, smtp_session=session)
        except Exception as error:  # noqa: BLE001 - every failure is shown and recorded, never raised
            if reservation is not None:
                # the slot goes back and the ledger row is closed, in one transaction
                Reservation._smtp_routing_close(self.server_id.sudo(), row_id, reservation.state, *SLOT)
            outcome = classified(error)  # as connect() or send_email() recorded it in the history
            self.write(
                {
                    "state": "failed",
                    "result_category": outcome.category,
                    "result_code": outcome.code or False,
                    "result_reply": outcome.text,
                    "result_hint": self._hint(outcome.category),
                }
            )
        else:
            if row_id:
                Reservation._smtp_routing_close(self.server_id.sudo(), row_id, reservation.state, 0, 0, 0)  # sent
            self.write({"state": "sent", "result_message_id": message_id, "result_category": False})
        finally:
            if session is not None:
                try:
                    session.quit()
                except Exception:  # noqa: BLE001 - the session may already be gone
                    session.close()
        self.env["smtp_routing.delivery.log"]._smtp_routing_flush()
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": self.env._("Send a Test Email"),
        }
