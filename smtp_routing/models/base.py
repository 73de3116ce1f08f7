# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Export checks the whole path, on every model.

Stock ``export_data`` reads each path (``smtp_routing_server_id/smtp_user``) through
the ORM's attribute access, which checks field groups only when a value is not
cached yet, and never for computed values: a user could export through a relation
what ``read`` refuses. Here every segment of every path is checked like ``read``
checks it (field groups, and read access to each related model), and secrets
(passwords, private keys, OAuth tokens) are never exported, not even by administrators.
"""

from odoo import models
from odoo.exceptions import UserError
from odoo.models import fix_import_export_id_paths

SECRET_FIELDS = {
    "ir.mail_server": frozenset(
        {
            "smtp_pass",
            "smtp_routing_pass_encrypted",
            "smtp_ssl_private_key",
            "google_gmail_authorization_code",
            "google_gmail_refresh_token",
            "google_gmail_access_token",
            "microsoft_outlook_refresh_token",
            "microsoft_outlook_access_token",
        }
    ),
    "smtp_routing.dkim.key": frozenset({"private_key", "private_key_encrypted"}),
    "smtp_routing.personal.server": frozenset({"smtp_pass", "smtp_pass_encrypted"}),
}
_ID_PARTS = ("id", ".id")


class Base(models.AbstractModel):
    _inherit = "base"

    def export_data(self, fields_to_export):
        for path in fields_to_export:
            self._smtp_routing_check_export_path(fix_import_export_id_paths(path))
        return super().export_data(fields_to_export)

    def _smtp_routing_check_export_path(self, path):
        """Raise unless the current user may read every field along ``path`` (a list of names)."""
        model = self
        for index, name in enumerate(path):
            if name in _ID_PARTS:
                return
            field_name = name.split(".", 1)[0]  # properties: "attributes.colour"
            field = model._fields.get(field_name)
            if field is None:
                return  # unknown: Odoo's export says so itself
            model.check_field_access_rights("read", [field_name])
            if field_name in SECRET_FIELDS.get(model._name, ()):
                raise UserError(
                    self.env._(
                        "%(field)s (%(model)s) holds a secret: it is never exported. Remove it from the export.",
                        field=field._description_string(self.env),
                        model=model._name,
                    )
                )
            following = path[index + 1] if index + 1 < len(path) else None
            if not field.relational or following is None or following in _ID_PARTS:
                return
            model = self.env[field.comodel_name]
            model.check_access("read")
