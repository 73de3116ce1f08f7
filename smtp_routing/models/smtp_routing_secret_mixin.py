# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Write-only secrets, encrypted at rest: the one place that loads the key and words its problems.

A model that keeps a secret (a server's password, a DKIM private key, what a user types in the
personal-server wizard) inherits ``smtp_routing.secret.mixin``, declares a write-only field made
with :func:`secret_field` and names its ciphertext field in ``_smtp_routing_secret_fields``:

- the write-only field always reads empty, for everyone; a typed value is encrypted at once into
  the ciphertext field (an empty value keeps what is stored);
- :meth:`_smtp_routing_reveal` decrypts it for the code that needs it (a login, a signature), and
  never for a form;
- :meth:`_smtp_routing_rotate_secrets` re-encrypts what is stored with the primary key.

The key comes from :func:`_keyring` (environment, ``odoo.conf`` or the data-dir key file, see
``tools.secrets``), never from the database. Odoo's ``google.gmail.mixin`` is the pattern: fields
and their handling in an abstract model that each concrete model inherits.
"""

import os

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config

from ..tools import secrets

ADMINS = "base.group_system"
_keyring_cache = {}


def _keyring():
    """The keyring in force (environment, odoo.conf, or the data-dir key file), cached per process."""
    source = (os.environ.get(secrets.ENV_VAR, ""), config.get(secrets.CONFIG_OPTION) or "", config["data_dir"])
    if source not in _keyring_cache:
        _keyring_cache.clear()
        _keyring_cache[source] = secrets.load_keyring(config_value=source[1], data_dir=source[2])
    return _keyring_cache[source]


def secret_field(**kwargs):
    """A write-only field of a model that inherits the mixin: computed (reads empty), its inverse encrypts
    into the ciphertext field named in ``_smtp_routing_secret_fields``, never copied nor exported."""
    return fields.Char(
        compute="_compute_smtp_routing_secret",
        inverse="_inverse_smtp_routing_secret",
        store=False,
        readonly=False,
        copy=False,
        exportable=False,
        **kwargs,
    )


class SmtpRoutingSecretMixin(models.AbstractModel):
    _name = "smtp_routing.secret.mixin"
    _description = "Write-only Encrypted Secrets"

    # {write-only field: the field that keeps its ciphertext}, per inheriting model
    _smtp_routing_secret_fields = {}

    def _compute_smtp_routing_secret(self):
        """Write-only: a secret is never read back, by anyone (see _smtp_routing_reveal for its readers)."""
        for name in self._smtp_routing_secret_fields:
            self[name] = False

    def _inverse_smtp_routing_secret(self):
        """A typed secret is encrypted at once; an empty one keeps the stored secret (an untouched form)."""
        for record in self:
            for name, stored in record._smtp_routing_secret_fields.items():
                value = record[name]
                if value and record._smtp_routing_secret_accepted(name, value):
                    record.sudo()[stored] = record._smtp_routing_encrypt(value)

    def _smtp_routing_secret_accepted(self, name, value):
        """Whether this record takes the typed ``value`` of ``name`` (False: it is dropped). Raise to refuse it."""
        return True

    def _smtp_routing_encrypt(self, plaintext):
        """``plaintext`` encrypted with the primary key; a UserError that says what to do when there is no key."""
        try:
            return secrets.encrypt(plaintext, _keyring())
        except secrets.SecretError as error:
            raise UserError(self._smtp_routing_secret_message(error, self[:1] or None)) from error

    def _smtp_routing_decrypt(self, stored, missing_ok=False):
        """The plaintext of ``stored``; None (``missing_ok``) or a UserError when the key in use cannot open it."""
        try:
            return secrets.decrypt(stored, _keyring())
        except secrets.SecretError as error:
            if missing_ok:
                return None
            raise UserError(self._smtp_routing_secret_message(error, self[:1] or None)) from error

    def _smtp_routing_reveal(self, name, missing_ok=False):
        """The decrypted secret ``name`` of this one record ("" when none is stored), for the code that uses it."""
        self.ensure_one()
        stored = self.sudo()[self._smtp_routing_secret_fields[name]]
        if not stored:
            return ""
        return self._smtp_routing_decrypt(stored, missing_ok=missing_ok)

    def _smtp_routing_secret_message(self, error, server=None, field=None):
        # field: the ciphertext field that failed, when known (models with several secrets word each their way)
        name = server.display_name if server else ""
        if error.code == "wrong_key":
            return self.env._(
                "The password of %(server)s cannot be decrypted with the key in use. Restore the key it was "
                "encrypted with (environment variable SMTP_ROUTING_KEYS, odoo.conf option smtp_routing_keys, or "
                "the key file in Odoo's data directory), or enter the password again.",
                server=name,
            )
        if error.code == "bad_key":
            return self.env._(
                "The SMTP password key is not valid (%(detail)s). SMTP_ROUTING_KEYS / smtp_routing_keys must hold "
                'comma-separated Fernet keys; generate one with: python3 -c "from cryptography.fernet import '
                'Fernet; print(Fernet.generate_key().decode())"',
                detail=error.detail,
            )
        if error.code == "no_key_file":
            return self.env._(
                "No key to encrypt SMTP passwords: set SMTP_ROUTING_KEYS or smtp_routing_keys, or make Odoo's "
                "data directory writable (%(detail)s).",
                detail=error.detail,
            )
        return self.env._("The stored password of %(server)s is not in the expected encrypted form.", server=name)

    @api.model
    def _smtp_routing_rotate_secrets(self, field_names=None):
        """Re-encrypt with the primary key every stored value of ``field_names`` (default: this model's
        ciphertext fields), archived records included; returns how many records were re-encrypted."""
        keyring = _keyring()
        field_names = field_names or list(self._smtp_routing_secret_fields.values())
        Model = self.sudo().with_context(active_test=False)
        domain = ["|"] * (len(field_names) - 1) + [(name, "!=", False) for name in field_names]
        records = Model.search(domain)
        for record in records:
            values = {}
            for name in field_names:
                if record[name]:
                    try:
                        values[name] = secrets.rotate(record[name], keyring)
                    except secrets.SecretError as error:
                        raise UserError(self._smtp_routing_secret_message(error, record, field=name)) from error
            record.write(values)
        return len(records)
