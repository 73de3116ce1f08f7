# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging

from odoo import api, models
from odoo.tools import email_normalize

from ..tools import unsubscribe
from ..tools.bounces import counts_towards_blacklist
from .mail_thread import BOUNCE_CLASS_KEY

_logger = logging.getLogger(__name__)


class MailBlacklist(models.Model):
    _inherit = "mail.blacklist"

    def _add(self, email, message=None):
        """While Odoo handles a soft or policy bounce, nothing is blacklisted because of it."""
        bounce_class = self.env.context.get(BOUNCE_CLASS_KEY)
        if not counts_towards_blacklist(bounce_class):
            _logger.info("smtp_routing: %s not blacklisted: a %s bounce is not about the address", email, bounce_class)
            return self.browse()
        return super()._add(email, message=message)

    # -- one-click unsubscribe (RFC 8058) for bulk mail without one -------------------------------------------
    @api.model
    def _smtp_routing_secret(self):
        return (self.env["ir.config_parameter"].sudo().get_param("database.secret") or "").encode()

    @api.model
    def _smtp_routing_unsubscribe_url(self, address, base_url):
        """The one-click link that blacklists ``address``, signed with the database secret."""
        token = unsubscribe.make_token(email_normalize(address) or address, self._smtp_routing_secret())
        return f"{base_url.rstrip('/')}/smtp_routing/unsubscribe/{token}"

    @api.model
    def _smtp_routing_unsubscribe_address(self, token):
        """The address a link's token names, or None when the token is not ours."""
        return unsubscribe.read_token(token, self._smtp_routing_secret())

    @api.model
    def _smtp_routing_unsubscribe(self, address):
        return self.sudo()._add(
            address,
            message=self.env._("Unsubscribed with the one-click link of a bulk mail (List-Unsubscribe)."),
        )
