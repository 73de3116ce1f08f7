# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import SUPERUSER_ID, api, fields, models

from . import params, send_as_trust
from .smtp_routing_send_as import SEND_AS_STRICT

TEMPLATE_EDITORS = "mail.group_mail_template_editor"

# Who last set one of these decides whether the template's From, server and route are trusted.
SENDER_FIELDS = ("email_from", "mail_server_id", "smtp_routing_route_id", "smtp_routing_check_send_as")


class MailTemplate(models.Model):
    _inherit = "mail.template"

    smtp_routing_route_id = fields.Many2one(
        "smtp_routing.route",
        string="Route",
        ondelete="set null",
        help="Send mail from this template through this route ('Email Other'), whatever the routing rules say.",
    )
    smtp_routing_check_send_as = fields.Boolean(
        string="Check Send-As",
        help="Check the From this template renders against the Send-As permissions of the user who sends it. "
        "Off: a From set by an administrator (e.g. the record's salesperson) is trusted, as in Odoo.",
    )
    smtp_routing_sender_uid = fields.Many2one(
        "res.users",
        string="From Set By",
        readonly=True,
        copy=False,
        ondelete="set null",
        help="Who last changed this template's From, server, route or Send-As check. Only a template whose "
        "From an administrator set may send as someone else than the user who sends it.",
    )
    smtp_routing_sender_trusted = fields.Boolean(
        string="From Trusted", compute="_compute_smtp_routing_sender_trusted", compute_sudo=True
    )

    @api.depends("smtp_routing_sender_uid", "smtp_routing_check_send_as")
    def _compute_smtp_routing_sender_trusted(self):
        for template in self:
            template.smtp_routing_sender_trusted = template._smtp_routing_trusted_sender()

    def _smtp_routing_trusted_sender(self):
        """An administrator (or Odoo's own data, loaded by the superuser) set the From, server and route."""
        self.ensure_one()
        template = self.sudo()
        if template.smtp_routing_check_send_as:
            return False
        author = template.smtp_routing_sender_uid or template.write_uid  # templates older than smtp_routing
        return bool(author) and (author.id == SUPERUSER_ID or author.has_group("base.group_system"))

    def _smtp_routing_trusted_server(self):
        """The template's server and route: set by an administrator, or, outside strict mode, by a template
        editor (Odoo lets template editors choose a template's outgoing server)."""
        self.ensure_one()
        template = self.sudo()
        author = template.smtp_routing_sender_uid or template.write_uid
        if not author:
            return False
        if author.id == SUPERUSER_ID or author.has_group("base.group_system"):
            return True
        return not params.flag(self.env, SEND_AS_STRICT, default=False) and author.has_group(TEMPLATE_EDITORS)

    def _smtp_routing_remember(self, froms=()):
        """Remember, for this transaction and user, what this template chose, as far as it is trusted."""
        if not self:
            return
        template = self.sudo()
        if froms and self._smtp_routing_trusted_sender():
            send_as_trust.remember(self.env, froms)
        if (template.mail_server_id or template.smtp_routing_route_id) and self._smtp_routing_trusted_server():
            send_as_trust.remember(
                self.env, server_id=template.mail_server_id.id, route_id=template.smtp_routing_route_id.id
            )

    @api.model_create_multi
    def create(self, vals_list):
        vals_list = [
            {
                **{k: v for k, v in vals.items() if k != "smtp_routing_sender_uid"},
                "smtp_routing_sender_uid": self.env.uid,
            }
            for vals in vals_list
        ]
        return super().create(vals_list)

    def write(self, vals):
        vals = {key: value for key, value in vals.items() if key != "smtp_routing_sender_uid"}
        if any(key in vals for key in SENDER_FIELDS):
            vals["smtp_routing_sender_uid"] = self.env.uid
        return super().write(vals)

    def _render_field(self, field, res_ids, *args, **kwargs):
        results = super()._render_field(field, res_ids, *args, **kwargs)
        if field == "email_from" and len(self) == 1:
            self._smtp_routing_remember(results.values())
        return results

    def _generate_template_static_values(self, res_ids, render_fields, render_results=None):
        render_results = super()._generate_template_static_values(res_ids, render_fields, render_results)
        if "mail_server_id" in render_fields:
            self._smtp_routing_remember()
            if self.smtp_routing_route_id:
                for values in render_results.values():
                    values["smtp_routing_route_id"] = self.smtp_routing_route_id.id
        return render_results
