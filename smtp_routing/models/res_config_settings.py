# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools import hostport
from . import params
from .res_users import PERSONAL_SERVERS
from .smtp_routing_delivery_log import DEFAULT_RETENTION_DAYS, RETENTION_PARAM
from .smtp_routing_dns_check import DNS_NAMESERVER
from .smtp_routing_send_as import ENFORCE_SEND_AS, SEND_AS_COMPANY_EMAIL, SEND_AS_STRICT


class ResConfigSettings(models.TransientModel):
    """A section in Settings: shortcuts, and the system parameters an admin may want to change.

    The parameters are read and written here by hand: a Boolean or Integer ``config_parameter`` field
    deletes the parameter when switched off or set to 0, which would bring back a default of "on" or 90.
    """

    _inherit = "res.config.settings"

    smtp_routing_allow_personal_servers = fields.Boolean(string="Users' Own Servers")
    smtp_routing_enforce_send_as = fields.Boolean(string="Check Send-As Permissions", default=True)
    smtp_routing_send_as_company_email = fields.Boolean(string="Company Address Without Permission", default=True)
    smtp_routing_send_as_strict = fields.Boolean(string="Strict Send-As")
    smtp_routing_log_retention_days = fields.Integer(string="Keep Delivery History (days)", default=90)
    smtp_routing_dns_nameserver = fields.Char(string="DNS Server for Checks")

    @api.model
    def get_values(self):
        res = super().get_values()
        res.update(
            smtp_routing_allow_personal_servers=params.flag(self.env, PERSONAL_SERVERS, default=False),
            smtp_routing_enforce_send_as=params.flag(self.env, ENFORCE_SEND_AS, default=True),
            smtp_routing_send_as_company_email=params.flag(self.env, SEND_AS_COMPANY_EMAIL, default=True),
            smtp_routing_send_as_strict=params.flag(self.env, SEND_AS_STRICT, default=False),
            smtp_routing_log_retention_days=params.integer(self.env, RETENTION_PARAM, DEFAULT_RETENTION_DAYS),
            smtp_routing_dns_nameserver=self.env["ir.config_parameter"].sudo().get_param(DNS_NAMESERVER) or False,
        )
        if self.env["ir.mail_server"].sudo().search_count([], limit=1):
            # Odoo's own "Use Custom Email Servers" box: mail goes through the servers here, so it is ticked
            res["external_email_server_default"] = True
        return res

    def set_values(self):
        res = super().set_values()
        set_param = self.env["ir.config_parameter"].sudo().set_param
        set_param(PERSONAL_SERVERS, "1" if self.smtp_routing_allow_personal_servers else "0")
        set_param(ENFORCE_SEND_AS, "1" if self.smtp_routing_enforce_send_as else "0")
        set_param(SEND_AS_COMPANY_EMAIL, "1" if self.smtp_routing_send_as_company_email else "0")
        set_param(SEND_AS_STRICT, "1" if self.smtp_routing_send_as_strict else "0")
        set_param(RETENTION_PARAM, str(self.smtp_routing_log_retention_days))
        set_param(DNS_NAMESERVER, (self.smtp_routing_dns_nameserver or "").strip() or False)
        return res

    @api.constrains("smtp_routing_dns_nameserver")
    def _check_smtp_routing_dns_nameserver(self):
        for settings in self.filtered("smtp_routing_dns_nameserver"):
            try:
                hostport.parse_nameserver(settings.smtp_routing_dns_nameserver.strip())
            except ValueError as error:
                raise ValidationError(
                    self.env._(
                        "The DNS server for checks must be an IP address, optionally with a port "
                        "(192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53), not %(value)r.",
                        value=settings.smtp_routing_dns_nameserver,
                    )
                ) from error

    @api.constrains("smtp_routing_log_retention_days")
    def _check_smtp_routing_log_retention_days(self):
        if any(settings.smtp_routing_log_retention_days < 0 for settings in self):
            raise ValidationError(self.env._("Keep the delivery history for 0 days (for ever) or more."))
