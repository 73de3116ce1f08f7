# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
import logging

from odoo import models

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

