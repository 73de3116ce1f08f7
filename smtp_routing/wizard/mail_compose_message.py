# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import api, fields, models
from odoo.exceptions import UserError

from ..models import send_as_trust
from ..models.smtp_routing_send_as import Judge
from ..tools import send_as


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

    @api.depends("composition_mode", "model")
    def _compute_smtp_routing_route_choice(self):
        """Whether any route may be chosen. Depends on fields every composer has: the form's first onchange only
        computes fields whose dependencies it sets (without any, the choice read False until a save)."""
        available = bool(self.env["smtp_routing.route"].sudo().search_count([("allow_in_composer", "=", True)]))
        for composer in self:
            composer.smtp_routing_route_choice = available

    def _prepare_mail_values_static(self):
        values = super()._prepare_mail_values_static()
        if self.smtp_routing_route_id:
            values["smtp_routing_route_id"] = self.smtp_routing_route_id.id
        if self.composition_mode == "mass_mail" and (self.res_domain or len(self._evaluate_res_ids()) > 1):
            values["smtp_routing_purpose"] = "bulk"  # one record from a list is one letter, not a mailshot
        return values

    def _render_field(self, field, *args, **kwargs):
        """The composer renders its template's own From itself (batch and mass mode): remember it."""
        results = super()._render_field(field, *args, **kwargs)
        if field == "email_from" and len(self) == 1 and self.template_id:
            if self.email_from == self.template_id.email_from:
                self.template_id._smtp_routing_remember(results.values())
        return results

    def _action_send_mail(self, auto_commit=False):
        for composer in self:
            composer._smtp_routing_remember_template()
            composer._smtp_routing_check_send_as()
        return super()._action_send_mail(auto_commit=auto_commit)

    def _smtp_routing_rendered_here(self):
        """One record, comment mode: the composer holds its From already rendered."""
        return self.composition_mode == "comment" and not self.composition_batch

    def _smtp_routing_remember_template(self):
        """What the template chooses is trusted for this send, as far as its author is (see mail.template)."""
        template = self.template_id
        if not template:
            return
        template._smtp_routing_remember()  # its server and route; its From when it is rendered
        if self._smtp_routing_rendered_here() and self.email_from and template._smtp_routing_trusted_sender():
            # the From was rendered when the template was picked: render it again to recognise it
            template._render_field("email_from", self._evaluate_res_ids() or [0])

    def _smtp_routing_check_send_as(self):
        """Refuse, before anything is posted or sent, a From, server, route or company the user may not choose.

        A From still to be rendered per record (batch and mass mode) is judged per mail by the queue.
        """
        user = self.env.user
        judge = Judge(self.env)
        template = self.template_id
        from_trusted = server_trusted = route_trusted = False
        if template and template._smtp_routing_trusted_sender():
            from_trusted = self.email_from == template.email_from
        if template and template._smtp_routing_trusted_server():
            server_trusted = self.mail_server_id == template.mail_server_id
            route_trusted = self.smtp_routing_route_id == template.smtp_routing_route_id
        email_from = self.email_from
        if self._smtp_routing_rendered_here():
            from_trusted = from_trusted or send_as_trust.covers(self.env, email_from)[0]
        elif email_from and ("{{" in email_from or "<t" in email_from or "${" in email_from):
            email_from = None  # dynamic: each rendered From is judged by the queue
        mailing = self.mass_mailing_id if "mass_mailing_id" in self._fields else None
        if mailing:
            mailing_from, mailing_server = judge.mailing_trusted(user, mailing, self.email_from, self.mail_server_id)
            from_trusted, server_trusted = from_trusted or mailing_from, server_trusted or mailing_server
        company = self.record_company_id if self._smtp_routing_rendered_here() else self.env["res.company"]
        document_company = None
        if company and company.id not in judge.actor(user).company_ids and self.model:
            res_ids = self._evaluate_res_ids()
            if len(res_ids) == 1:
                record = self.env[self.model].browse(res_ids).sudo()
                if hasattr(record, "_mail_get_companies"):
                    document_company = record._mail_get_companies()[record.id].id
        request = send_as.MailRequest(
            email_from=email_from,
            from_trusted=from_trusted,
            server=judge.server_facts(self.mail_server_id),
            server_trusted=server_trusted,
            route=judge.route_facts(self.smtp_routing_route_id),
            route_trusted=route_trusted,
            company_id=company.id or None,
            document_company_id=document_company,
        )
        problem = judge.problem(user, request)
        if problem:
            raise UserError(problem)
