# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models


class MailThread(models.AbstractModel):
    _inherit = "mail.thread"

    def _get_message_create_valid_field_names(self):
        """Let message_post() (and the composer in comment mode) carry the route and purpose."""
        return super()._get_message_create_valid_field_names() | {"smtp_routing_route_id", "smtp_routing_purpose"}
