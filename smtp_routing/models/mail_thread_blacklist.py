# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
from odoo import models

from ..tools.bounces import counts_towards_blacklist
from .mail_thread import BOUNCE_CLASS_KEY


class MailThreadBlacklist(models.AbstractModel):
    _inherit = "mail.thread.blacklist"

    def _message_receive_bounce(self, email, partner):
        """A soft or policy bounce leaves the bounce counter (what leads to the blacklist) as it was."""
        if counts_towards_blacklist(self.env.context.get(BOUNCE_CLASS_KEY)):
            return super()._message_receive_bounce(email, partner)
        counters = {record: record.message_bounce for record in self}
        result = super()._message_receive_bounce(email, partner)
        for record, counter in counters.items():
            if record.message_bounce != counter:
                record.message_bounce = counter
        return result
