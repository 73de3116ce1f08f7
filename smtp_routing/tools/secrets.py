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

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass

try:
    import fcntl
except ImportError:  # Windows: os.link still keeps two workers from both creating a key
    fcntl = None

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "srenc1:"
ENV_VAR = "SMTP_ROUTING_KEYS"
CONFIG_OPTION = "smtp_routing_keys"
KEY_FILE = os.path.join("smtp_routing", "secret.key")
LOCK_FILE = "secret.key.lock"


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
    text = _read_key_file(path)
    if text is None or not text.strip():
        if not create:
            raise SecretError("no_key_file", path)
        text = _create_key_file(path)
    try:
        return parse_keys(text, path)
    except SecretError as error:
        raise SecretError(
            "bad_key",
            f"the key file {path} is damaged: restore it from your backups (it is needed to decrypt the stored "
            "passwords), or delete it if no password was ever saved with it",
        ) from error


def _read_key_file(path):
    """The key file's text, or None when there is none."""
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SecretError("no_key_file", f"{path}: {error}") from error


@contextlib.contextmanager
def _creation_lock(directory):
    """Serialise key creation between the processes of this machine (the key file is per machine)."""
    with open(os.path.join(directory, LOCK_FILE), "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _create_key_file(path):
    """Create the key file atomically and return its text.

    The key is written and synced to a temporary file first, which then appears
    under its final name in one step: ``os.link`` fails if the name exists (so
    two workers never both create a key: the loser reads the winner's). Nobody
    ever reads an empty or half-written key, and a crash leaves no key file at
    all. An empty file left by an older version is replaced: no value can have
    been encrypted with no key.
    """
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with _creation_lock(directory):
            text = _read_key_file(path)
            if text is not None and text.strip():
                return text  # another worker created it meanwhile
            key = generate_key()
            descriptor, temporary = tempfile.mkstemp(prefix=".secret.key.", dir=directory)  # mode 0600
            try:
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(key + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                if text is None:
                    try:
                        os.link(temporary, path)
                    except FileExistsError:
                        return _read_key_file(path)  # created by a process that does not take the lock
                else:
                    os.replace(temporary, path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            _sync_directory(directory)
            return _read_key_file(path)
    except OSError as error:
        raise SecretError("no_key_file", f"{path}: {error}") from error


def _sync_directory(directory):
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the file itself is synced
    try:
        os.fsync(descriptor)
    except OSError:  # pylint: disable=except-pass  # a directory fsync is best effort, as the open above
        pass
    finally:
        os.close(descriptor)


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


def verify(stored, keyring):
    """Check that a key of the keyring authenticates ``stored``, without decrypting it.

    Raises ``SecretError`` (``not_encrypted``, ``wrong_key``); empty is fine. Used to
    tell an administrator that a password cannot be decrypted, without producing it.
    """
    if not stored:
        return None
    if not is_encrypted(stored):
        raise SecretError("not_encrypted")
    token = stored[len(PREFIX) :].encode("ascii")
    for key in keyring.keys:
        try:
            Fernet(key).extract_timestamp(token)
        except (InvalidToken, ValueError):
            continue
        return None
    raise SecretError("wrong_key", "no configured key decrypts this value")


def decrypt(stored, keyring):
    if not stored:
        return False
    return _with_token(stored, keyring, MultiFernet.decrypt).decode("utf-8")


def rotate(stored, keyring):
    """Re-encrypt with the primary key (the value must decrypt with one of the keys)."""
    if not stored:
        return False
    return PREFIX + _with_token(stored, keyring, MultiFernet.rotate).decode("ascii")
