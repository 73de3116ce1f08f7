# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Routing explanations became codes rendered in the reader's language (``smtp_routing_plan``); the text
written before stays readable: its column moves to ``smtp_routing_explanation_text``."""


def migrate(cr, version):
    cr.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'mail_mail' "
        "AND column_name IN ('smtp_routing_explanation', 'smtp_routing_explanation_text')"
    )
    columns = {row[0] for row in cr.fetchall()}
    if columns == {"smtp_routing_explanation"}:
        cr.execute("ALTER TABLE mail_mail RENAME COLUMN smtp_routing_explanation TO smtp_routing_explanation_text")
