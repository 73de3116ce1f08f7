# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import UserError


class MailComposeMessage(models.TransientModel):
    _inherit = "mail.compose.message"

    smtp_routing_route_id = fields.Many2one(
        "smtp_routing.route",
        string="Send Through",
        compute="_compute_smtp_routing_route_id",
        store=True,
        readonly=False,
        domain=[("allow_in_composer", "=", True)],
        help="Routes the administrator lets you choose ('Email Other'); empty: the routing rules decide.",
    )
    smtp_routing_route_choice = fields.Boolean(compute="_compute_smtp_routing_route_choice")

    @api.depends("template_id")
    def _compute_smtp_routing_route_id(self):
        for composer in self:
            composer.smtp_routing_route_id = composer.template_id.smtp_routing_route_id

    def _compute_smtp_routing_route_choice(self):
        available = bool(self.env["smtp_routing.route"].sudo().search_count([("allow_in_composer", "=", True)]))
        for composer in self:
            composer.smtp_routing_route_choice = available

    def _prepare_mail_values_static(self):
        values = super()._prepare_mail_values_static()
        if self.smtp_routing_route_id:
            values["smtp_routing_route_id"] = self.smtp_routing_route_id.id
        if self.composition_mode == "mass_mail":
            values["smtp_routing_purpose"] = "bulk"
        return values

    def _action_send_mail(self, auto_commit=False):
        for composer in self:
            composer._smtp_routing_check_send_as()
        return super()._action_send_mail(auto_commit=auto_commit)

    def _smtp_routing_check_send_as(self):
        """Refuse, before anything is sent, a From the user may not use."""
        user = self.env.user
        if self.env.su or user.share or not self.email_from:
            return
        problem = self.env["mail.mail"]._smtp_routing_send_as_problem(
            user, self.email_from, self.record_alias_domain_id if "record_alias_domain_id" in self._fields else False
        )
        if problem:
            raise UserError(problem)
