# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
"""Install: encrypt the plaintext passwords Odoo stored. Uninstall: put them back.

While smtp_routing is installed, the ``smtp_pass`` column stays NULL and the
ciphertext lives in ``smtp_routing_pass_encrypted``. Uninstalling writes the
plaintext back into ``smtp_pass`` so that mail keeps working with stock Odoo;
if a password cannot be decrypted (key lost), uninstalling stops and says so
rather than losing it. Users' own servers are archived: stock Odoo knows
nothing of their owners and would route other people's mail through them.

OAuth tokens (Odoo's ``google_gmail_*`` / ``microsoft_outlook_*`` columns) are
handled the same way by the bridge modules' hooks (``encrypt_oauth_tokens``,
``restore_oauth_tokens``): the columns are emptied into one ciphertext,
``smtp_routing_oauth_encrypted``, and written back on uninstall.
"""

import json
import logging

from odoo.exceptions import UserError
from odoo.tools import SQL, sql

from .models.smtp_routing_oauth_mixin import TOKEN_FIELDS
from .models.smtp_routing_secret_mixin import _keyring
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
    restore_oauth_tokens(env, TOKEN_FIELDS)  # normally done already by the bridges' own uninstall
    archive_personal_servers(env)


def _token_columns(env, names):
    return [name for name in names if sql.column_exists(env.cr, "ir_mail_server", name)]


def encrypt_oauth_tokens(env, names):
    """Move the plaintext tokens of ``names`` into each server's ciphertext (bridge install)."""
    env.flush_all()
    columns = _token_columns(env, names)
    if not columns:
        return 0
    cr = env.cr
    present = SQL(" OR ").join(
        SQL("(%s IS NOT NULL AND %s != '')", SQL.identifier(c), SQL.identifier(c)) for c in columns
    )
    cr.execute(
        SQL(
            "SELECT id, smtp_routing_oauth_encrypted, %s FROM ir_mail_server WHERE %s",
            SQL(", ").join(SQL.identifier(c) for c in columns),
            present,
        )
    )
    rows = cr.fetchall()
    if not rows:
        return 0
    keyring = _keyring()
    for server_id, stored, *values in rows:
        tokens = json.loads(secrets.decrypt(stored, keyring)) if stored else {}
        tokens.update({name: value for name, value in zip(columns, values, strict=True) if value})
        connected = any(value for name, value in tokens.items() if name.endswith("refresh_token"))
        cr.execute(
            SQL(
                "UPDATE ir_mail_server SET smtp_routing_oauth_encrypted = %s, smtp_routing_oauth_connected = %s, "
                "%s WHERE id = %s",
                secrets.encrypt(json.dumps(tokens, sort_keys=True), keyring),
                connected,
                SQL(", ").join(SQL("%s = NULL", SQL.identifier(c)) for c in columns),
                server_id,
            )
        )
    env["ir.mail_server"].invalidate_model()
    _logger.info("smtp_routing: encrypted the OAuth tokens of %s server(s)", len(rows))
    return len(rows)


def restore_oauth_tokens(env, names):
    """Write the tokens of ``names`` back into Odoo's columns (uninstall), and drop them from the ciphertext.

    Refuses, as for passwords, when a server's tokens cannot be decrypted (the key is lost): stock Odoo
    would have no token, and the administrator can reconnect the account or restore the key first.
    """
    env.flush_all()
    columns = _token_columns(env, names)
    if not columns or not sql.column_exists(env.cr, "ir_mail_server", "smtp_routing_oauth_encrypted"):
        return 0
    cr = env.cr
    cr.execute(
        "SELECT id, name, smtp_routing_oauth_encrypted FROM ir_mail_server "
        "WHERE smtp_routing_oauth_encrypted IS NOT NULL AND smtp_routing_oauth_encrypted != ''"
    )
    rows = cr.fetchall()
    if not rows:
        return 0
    keyring = _keyring()
    restored, lost = [], []
    for server_id, name, stored in rows:
        try:
            restored.append((server_id, json.loads(secrets.decrypt(stored, keyring))))
        except secrets.SecretError:
            lost.append(name)
    if lost:
        raise UserError(
            env._(
                "The OAuth tokens of %(servers)s cannot be decrypted with the key in use, and uninstalling would "
                "lose them. Restore the key (SMTP_ROUTING_KEYS, smtp_routing_keys or the key file in Odoo's data "
                "directory), or reconnect these accounts, then uninstall.",
                servers=", ".join(lost),
            )
        )
    for server_id, tokens in restored:
        kept = {name: value for name, value in tokens.items() if name not in columns}
        connected = any(value for name, value in kept.items() if name.endswith("refresh_token"))
        cr.execute(
            SQL(
                "UPDATE ir_mail_server SET %s, smtp_routing_oauth_encrypted = %s, smtp_routing_oauth_connected = %s "
                "WHERE id = %s",
                SQL(", ").join(SQL("%s = %s", SQL.identifier(c), tokens.get(c) or None) for c in columns),
                secrets.encrypt(json.dumps(kept, sort_keys=True), keyring) if kept else None,
                connected,
                server_id,
            )
        )
    env["ir.mail_server"].invalidate_model()
    _logger.info("smtp_routing: restored the OAuth tokens of %s server(s) for stock Odoo", len(restored))
    return len(restored)


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
