# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import email_domain_extract, email_normalize


class SmtpRoutingSendAs(models.Model):
    """A user may send as an address (a shared mailbox like support@) or a whole domain."""

    _name = "smtp_routing.send_as"
    _description = "Send-As Permission"
    _order = "address"

    address = fields.Char(required=True, help="An address (support@practice.example) or a domain (practice.example).")
    user_ids = fields.Many2many("res.users", string="Users", domain=[("share", "=", False)])
    server_id = fields.Many2one(
        "ir.mail_server", string="Only Through", ondelete="cascade", help="Leave empty to allow it through any server."
    )
    active = fields.Boolean(default=True)
    note = fields.Char()

    @api.constrains("address")
    def _check_address(self):
        for grant in self:
            value = (grant.address or "").strip().lower()
            is_domain = "@" not in value and "." in value and " " not in value
            if not (email_normalize(value, strict=True) or is_domain) or any(c in value for c in "\r\n"):
                raise ValidationError(
                    self.env._(
                        "%(value)s is neither an email address nor a domain (e.g. support@practice.example or "
                        "practice.example).",
                        value=grant.address,
                    )
                )

    @api.model
    def _smtp_routing_granted_servers(self, user, email_from):
        """None: no grant. An empty recordset: granted through any server. Else: only through these servers."""
        address = email_normalize(email_from or "")
        if not address or not user:
            return None
        domain = email_domain_extract(address)
        grants = (
            self.sudo()
            .search([("user_ids", "in", user.ids)])
            .filtered(lambda g: g.address.strip().lower() in (address, domain))
        )
        if not grants:
            return None
        if any(not grant.server_id for grant in grants):
            return self.env["ir.mail_server"]
        return grants.mapped("server_id")
