# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import SUPERUSER_ID, api, fields, models

from . import send_as_trust
from .smtp_routing_route import PURPOSE_SELECTION

# Stamped by the server from env.uid and from what an administrator's template chose; never taken from callers.
STAMPS = (
    "smtp_routing_acting_uid",
    "smtp_routing_from_trusted",
    "smtp_routing_from_author",
    "smtp_routing_server_trusted",
    "smtp_routing_route_trusted",
)
# Values a caller chooses that the Send-As check judges (against the acting user).
CHOSEN = ("email_from", "mail_server_id", "smtp_routing_route_id", "record_company_id")


class MailMessage(models.Model):
    _inherit = "mail.message"

    # On the message (mail.mail inherits them): all the mails of one message share them.
    smtp_routing_route_id = fields.Many2one(
        "smtp_routing.route",
        string="Route",
        ondelete="set null",
        help="Route chosen by the template or in the composer ('Email Other').",
    )
    smtp_routing_purpose = fields.Selection(
        PURPOSE_SELECTION, string="Purpose", help="Left empty, the purpose is deduced when the mail is sent."
    )
    # Send-As is bound to the user who created the message (or last changed its From, server, route or
    # company): the RPC caller, the composer's user. Callers name the author (author_id), never this.
    smtp_routing_acting_uid = fields.Many2one(
        "res.users",
        string="Sent By",
        readonly=True,
        copy=False,
        ondelete="set null",
        help="The user who created this message or chose its From, server, route or company. Send-As "
        "permissions are checked for this user, whoever the author shown is.",
    )
    smtp_routing_from_trusted = fields.Boolean(
        string="From Set by a Template",
        readonly=True,
        copy=False,
        help="The From was rendered by a template an administrator wrote: it is not checked against the sender.",
    )
    smtp_routing_from_author = fields.Boolean(
        string="From Taken from the Author",
        readonly=True,
        copy=False,
        help="No From was given: Odoo took the address of the author the sender named ('post on behalf of').",
    )
    smtp_routing_server_trusted = fields.Boolean(string="Server Set by a Template", readonly=True, copy=False)
    smtp_routing_route_trusted = fields.Boolean(string="Route Set by a Template", readonly=True, copy=False)

    def _smtp_routing_stamp(self, vals):
        """Stamp the acting user and what a trusted template chose, for the chosen values in ``vals``."""
        from_trusted, server_trusted, route_trusted = send_as_trust.covers(
            self.env, vals.get("email_from"), vals.get("mail_server_id"), vals.get("smtp_routing_route_id")
        )
        stamps = {"smtp_routing_acting_uid": self.env.uid}
        if "email_from" in vals:
            stamps["smtp_routing_from_trusted"] = from_trusted
            stamps["smtp_routing_from_author"] = send_as_trust.is_named_author(self.env, vals["email_from"])
        if "mail_server_id" in vals:
            stamps["smtp_routing_server_trusted"] = server_trusted
        if "smtp_routing_route_id" in vals:
            stamps["smtp_routing_route_trusted"] = route_trusted
        return stamps

    @api.model_create_multi
    def create(self, vals_list):
        stamped = []
        for vals in vals_list:
            vals = {key: value for key, value in vals.items() if key not in STAMPS}
            vals.update(self._smtp_routing_stamp(vals))
            stamped.append(vals)
        return super().create(stamped)

    def write(self, vals):
        if any(key in vals for key in STAMPS):
            vals = {key: value for key, value in vals.items() if key not in STAMPS}
        if self.env.uid != SUPERUSER_ID and any(key in vals for key in CHOSEN):
            vals = {**vals, **self._smtp_routing_stamp(vals)}
        return super().write(vals)
