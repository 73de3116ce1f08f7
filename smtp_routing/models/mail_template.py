# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import fields, models


class MailTemplate(models.Model):
    _inherit = "mail.template"

    smtp_routing_route_id = fields.Many2one(
        "smtp_routing.route",
        string="Route",
        ondelete="set null",
        help="Send mail from this template through this route ('Email Other'), whatever the routing rules say.",
    )

    def _generate_template_static_values(self, res_ids, render_fields, render_results=None):
        render_results = super()._generate_template_static_values(res_ids, render_fields, render_results)
        if "mail_server_id" in render_fields and self.smtp_routing_route_id:
            for values in render_results.values():
                values["smtp_routing_route_id"] = self.smtp_routing_route_id.id
        return render_results
