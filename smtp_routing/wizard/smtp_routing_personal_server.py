# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, sql

from ..models import params
from ..models.ir_mail_server import PERSONAL_ALLOW_PRIVATE
from ..models.res_users import PERSONAL_SERVERS
from ..models.smtp_routing_secret_mixin import secret_field


class SmtpRoutingPersonalServer(models.TransientModel):
    """A user enters their own SMTP server (where the administrator allows it).

    The server is created by the system on the user's behalf, owned by the user,
    limited to the user's own address, and carries only that user's personal
    mail. Its host must be on the internet (no loopback, link-local or private
    address) unless the administrator allows private networks. The password is
    encrypted the moment the wizard receives it (even this wizard's own table
    never holds it in clear), and can be replaced, never read back.
    """

    _name = "smtp_routing.personal.server"
    _inherit = "smtp_routing.secret.mixin"
    _description = "My Own Outgoing Server"
    _smtp_routing_secret_fields = {"smtp_pass": "smtp_pass_encrypted"}

    smtp_host = fields.Char(string="Server", required=True, help="e.g. smtp.office365.com or [mail.example.com]:465")
    smtp_port = fields.Integer(string="Port", default=587, required=True)
    smtp_encryption = fields.Selection(
        [("none", "None"), ("starttls", "STARTTLS"), ("ssl", "SSL/TLS")], default="starttls", required=True
    )
    smtp_user = fields.Char(string="Login", default=lambda self: self.env.user.email)
    smtp_pass = secret_field(string="Password")
    smtp_pass_encrypted = fields.Char(string="Encrypted Password", groups="base.group_system", readonly=True)
    password_stored = fields.Boolean(readonly=True, help="Your server already has a password: an empty field keeps it.")

    def _auto_init(self):
        result = super()._auto_init()
        self._smtp_routing_drop_plaintext_column()
        return result

    def _smtp_routing_drop_plaintext_column(self):
        """Earlier versions kept the typed password in clear in this (transient) table: drop that column."""
        if sql.column_exists(self.env.cr, self._table, "smtp_pass"):
            self.env.cr.execute(SQL("ALTER TABLE %s DROP COLUMN smtp_pass", SQL.identifier(self._table)))

    @api.model
    def default_get(self, fields_list):
        values = super().default_get(fields_list)
        own = self.env.user.sudo().smtp_routing_server_id
        if own.smtp_routing_owner_id == self.env.user:
            values.update(
                smtp_host=own.smtp_host,
                smtp_port=own.smtp_port,
                smtp_encryption=own.smtp_encryption,
                smtp_user=own.smtp_user,
                password_stored=bool(own.smtp_routing_pass_encrypted),
            )
        return values

    def action_save(self):
        self.ensure_one()
        user = self.env.user
        if not params.flag(self.env, PERSONAL_SERVERS, default=False):
            raise UserError(self.env._("Your administrator does not allow personal outgoing servers."))
        own_address = user.sudo().smtp_routing_approved_email  # never a self-written address (Send-As)
        if user.share or not own_address:
            raise UserError(
                self.env._(
                    "Your server may send from your approved address only, and you have none yet: ask an "
                    "administrator to approve your email address (in your user, field Approved Sending Address)."
                )
            )
        Server = self.env["ir.mail_server"].sudo()
        address = Server._smtp_routing_normalize_vals({"smtp_host": self.smtp_host, "smtp_port": self.smtp_port})
        if not params.flag(self.env, PERSONAL_ALLOW_PRIVATE, default=False):
            Server._smtp_routing_check_public_host(address["smtp_host"], address["smtp_port"])
        values = {
            "name": self.env._("%(user)s's mailbox", user=user.name),
            "smtp_host": address["smtp_host"],
            "smtp_port": address["smtp_port"],
            "smtp_encryption": self.smtp_encryption,
            "smtp_user": self.smtp_user,
            "from_filter": own_address,
            "smtp_routing_owner_id": user.id,
            "smtp_routing_user_selectable": False,
            "company_id": user.company_id.id,
            "sequence": 100,
        }
        encrypted = self.sudo().smtp_pass_encrypted
        if encrypted:
            values["smtp_routing_pass_encrypted"] = encrypted
        own = Server.search([("smtp_routing_owner_id", "=", user.id)], limit=1)
        if own:
            own.write(values)
        else:
            own = Server.create(values)
        user.sudo().smtp_routing_server_id = own
        return {"type": "ir.actions.act_window_close"}
