"""SMTP passwords encrypted at rest, with a key that never lives in the database.

A *keyring* is one or more Fernet keys (AES-128-CBC + HMAC-SHA256). The first key
encrypts; every key decrypts, so a key can be rotated: put the new key first,
keep the old one after it, re-encrypt (``rotate``), then drop the old key.

Where the keys come from, first match wins (see ``load_keyring``):

1. the environment variable ``SMTP_ROUTING_KEYS`` (comma-separated keys);
2. the server configuration option ``smtp_routing_keys`` (odoo.conf);
3. a key file, ``<data_dir>/smtp_routing/secret.key``, created with mode 0600
   on first use (single-machine installs). Several machines sharing one
   database must share the key: set 1. or 2. on all of them.

Stored values look like ``srenc1:<fernet token>``; anything else is not ours.
"""

import hashlib
import os
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "srenc1:"
ENV_VAR = "SMTP_ROUTING_KEYS"
CONFIG_OPTION = "smtp_routing_keys"
KEY_FILE = os.path.join("smtp_routing", "secret.key")


class SecretError(Exception):
    """``code``: bad_key (a configured key is malformed), wrong_key (no key
    decrypts the value), not_encrypted, no_key_file (cannot create the key file)."""

    def __init__(self, code, detail=""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Keyring:
    keys: tuple
    source: str  # "environment", "config" or the key file path

    def _fernet(self):
        return MultiFernet([Fernet(key) for key in self.keys])

    @property
    def fingerprint(self):
        """A short, non-secret id of the primary key (for logs and the UI)."""
        return hashlib.sha256(self.keys[0]).hexdigest()[:8]


def generate_key():
    return Fernet.generate_key().decode("ascii")


def parse_keys(text, source):
    keys = tuple(part.strip().encode("ascii") for part in (text or "").split(",") if part.strip())
    if not keys:
        raise SecretError("bad_key", f"no key in {source}")
    for key in keys:
        try:
            Fernet(key)
        except (ValueError, TypeError) as error:
            raise SecretError("bad_key", f"a key in {source} is not a valid Fernet key") from error
    return Keyring(keys, source)


def load_keyring(environ=None, config_value=None, data_dir=None, create=True):
    """The keyring in force: environment, then configuration, then the key file."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_VAR, "").strip():
        return parse_keys(environ[ENV_VAR], "environment")
    if config_value and str(config_value).strip():
        return parse_keys(str(config_value), "config")
    if not data_dir:
        raise SecretError("no_key_file", "no data directory to keep a key file in")
    path = os.path.join(data_dir, KEY_FILE)
    if not os.path.exists(path):
        if not create:
            raise SecretError("no_key_file", path)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker created it meanwhile
        except OSError as error:
            raise SecretError("no_key_file", f"{path}: {error}") from error
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(generate_key() + "\n")
    with open(path) as handle:
        return parse_keys(handle.read(), path)


def is_encrypted(value):
    return bool(value) and isinstance(value, str) and value.startswith(PREFIX)


def encrypt(plaintext, keyring):
    """Ciphertext to store; empty stays empty (OAuth servers need an empty password)."""
    if not plaintext:
        return False
    token = keyring._fernet().encrypt(plaintext.encode("utf-8"))
    return PREFIX + token.decode("ascii")


def _with_token(stored, keyring, operation):
    """Apply a MultiFernet operation to a stored value's token, mapping its errors."""
    if not is_encrypted(stored):
        raise SecretError("not_encrypted")
    try:
        return operation(keyring._fernet(), stored[len(PREFIX) :].encode("ascii"))
    except (InvalidToken, ValueError) as error:
        raise SecretError("wrong_key", "no configured key decrypts this value") from error


def decrypt(stored, keyring):
    if not stored:
        return False
    return _with_token(stored, keyring, MultiFernet.decrypt).decode("utf-8")


def rotate(stored, keyring):
    """Re-encrypt with the primary key (the value must decrypt with one of the keys)."""
    if not stored:
        return False
    return PREFIX + _with_token(stored, keyring, MultiFernet.rotate).decode("ascii")
