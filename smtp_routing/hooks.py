# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Install: encrypt the plaintext passwords Odoo stored. Uninstall: put them back.

While smtp_routing is installed, the ``smtp_pass`` column stays NULL and the
ciphertext lives in ``smtp_routing_pass_encrypted``. Uninstalling writes the
plaintext back into ``smtp_pass`` so that mail keeps working with stock Odoo;
if a password cannot be decrypted (key lost), uninstalling stops and says so
rather than losing it. Users' own servers are archived: stock Odoo knows
nothing of their owners and would route other people's mail through them.
"""

import logging

from odoo.exceptions import UserError

from .models.ir_mail_server import _keyring
from .tools import secrets

_logger = logging.getLogger(__name__)


def post_init_hook(env):
    encrypt_plaintext_passwords(env)


def encrypt_plaintext_passwords(env):
    env.flush_all()
    cr = env.cr
    cr.execute("SELECT id, smtp_pass FROM ir_mail_server WHERE smtp_pass IS NOT NULL AND smtp_pass != ''")
    rows = cr.fetchall()
    if not rows:
        return 0
    keyring = _keyring()
    for server_id, plaintext in rows:
        stored = plaintext if secrets.is_encrypted(plaintext) else secrets.encrypt(plaintext, keyring)
        cr.execute(
            "UPDATE ir_mail_server SET smtp_routing_pass_encrypted = %s, smtp_pass = NULL WHERE id = %s",
            [stored, server_id],
        )
    env["ir.mail_server"].invalidate_model(["smtp_pass", "smtp_routing_pass_encrypted"])
    _logger.info("smtp_routing: encrypted %s SMTP password(s) with key %s", len(rows), keyring.fingerprint)
    return len(rows)


def uninstall_hook(env):
    restore_plaintext_passwords(env)
    archive_personal_servers(env)


def archive_personal_servers(env):
    """Users' own servers become inactive (kept, with their password, for an administrator to decide)."""
    env.flush_all()
    env.cr.execute(
        "UPDATE ir_mail_server SET active = FALSE, smtp_routing_is_default = FALSE "
        "WHERE smtp_routing_owner_id IS NOT NULL AND active"
    )
    count = env.cr.rowcount
    env["ir.mail_server"].invalidate_model(["active", "smtp_routing_is_default"])
    if count:
        _logger.info("smtp_routing: archived %s personal SMTP server(s) of users", count)
    return count


def restore_plaintext_passwords(env):
    env.flush_all()
    cr = env.cr
    cr.execute(
        "SELECT id, name, smtp_routing_pass_encrypted FROM ir_mail_server "
        "WHERE smtp_routing_pass_encrypted IS NOT NULL AND smtp_routing_pass_encrypted != ''"
    )
    rows = cr.fetchall()
    if not rows:
        return 0
    keyring = _keyring()
    restored, lost = [], []
    for server_id, name, stored in rows:
        try:
            restored.append((secrets.decrypt(stored, keyring), server_id))
        except secrets.SecretError:
            lost.append(name)
    if lost:
        raise UserError(
            env._(
                "smtp_routing cannot be uninstalled: the passwords of %(servers)s cannot be decrypted with the "
                "key in use, and uninstalling would lose them. Restore the key (SMTP_ROUTING_KEYS, "
                "smtp_routing_keys or the key file in Odoo's data directory) or enter these passwords again, "
                "then uninstall.",
                servers=", ".join(lost),
            )
        )
    for plaintext, server_id in restored:
        cr.execute("UPDATE ir_mail_server SET smtp_pass = %s WHERE id = %s", [plaintext, server_id])
    _logger.info("smtp_routing: restored %s SMTP password(s) for stock Odoo", len(restored))
    return len(restored)
