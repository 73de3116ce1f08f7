# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import UserError

from ..models import params
from ..models.res_users import PERSONAL_SERVERS


class SmtpRoutingPersonalServer(models.TransientModel):
    """A user enters their own SMTP server (where the administrator allows it).

    The server is created by the system on the user's behalf, owned by the user,
    limited to the user's own address, and carries only that user's personal
    mail. The password is stored encrypted and can be replaced, never read back.
    """

    _name = "smtp_routing.personal.server"
    _description = "My Own Outgoing Server"

    smtp_host = fields.Char(string="Server", required=True, help="e.g. smtp.office365.com or [mail.example.com]:465")
    smtp_port = fields.Integer(string="Port", default=587, required=True)
    smtp_encryption = fields.Selection(
        [("none", "None"), ("starttls", "STARTTLS"), ("ssl", "SSL/TLS")], default="starttls", required=True
    )
    smtp_user = fields.Char(string="Login", default=lambda self: self.env.user.email)
    smtp_pass = fields.Char(string="Password")

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
                    "administrator to approve your email address (Settings > Users > Approved Sending Address)."
                )
            )
        values = {
            "name": self.env._("%(user)s's mailbox", user=user.name),
            "smtp_host": self.smtp_host,
            "smtp_port": self.smtp_port,
            "smtp_encryption": self.smtp_encryption,
            "smtp_user": self.smtp_user,
            "from_filter": own_address,
            "smtp_routing_owner_id": user.id,
            "smtp_routing_user_selectable": False,
            "company_id": user.company_id.id,
            "sequence": 100,
        }
        if self.smtp_pass:
            values["smtp_pass"] = self.smtp_pass
        Server = self.env["ir.mail_server"].sudo()
        own = Server.search([("smtp_routing_owner_id", "=", user.id)], limit=1)
        if own:
            own.write(values)
        else:
            own = Server.create(values)
        user.sudo().smtp_routing_server_id = own
        return {"type": "ir.actions.act_window_close"}
