# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Why a mail waits became codes rendered in the reader's language (``smtp_routing_deferral``); the text
written before stays readable: its column moves to ``smtp_routing_deferred_reason_text``."""


def migrate(cr, version):
    cr.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'mail_mail' "
        "AND column_name IN ('smtp_routing_deferred_reason', 'smtp_routing_deferred_reason_text')"
    )
    columns = {row[0] for row in cr.fetchall()}
    if columns == {"smtp_routing_deferred_reason"}:
        cr.execute(
            "ALTER TABLE mail_mail RENAME COLUMN smtp_routing_deferred_reason TO smtp_routing_deferred_reason_text"
        )
