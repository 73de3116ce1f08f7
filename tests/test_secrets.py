import os
import stat

import pytest

from smtp_routing.tools import secrets
from smtp_routing.tools.secrets import SecretError


@pytest.fixture
def keyring():
    return secrets.parse_keys(secrets.generate_key(), "test")


def test_round_trip_and_ciphertext_hides_plaintext(keyring):
    stored = secrets.encrypt("Sup3r-Secret-ñ", keyring)
    assert stored.startswith(secrets.PREFIX)
    assert "Sup3r" not in stored
    assert secrets.decrypt(stored, keyring) == "Sup3r-Secret-ñ"
    # Fernet tokens are randomised: the same password never encrypts twice the same way
    assert secrets.encrypt("Sup3r-Secret-ñ", keyring) != stored


def test_empty_stays_empty(keyring):
    assert secrets.encrypt("", keyring) is False
    assert secrets.encrypt(None, keyring) is False
    assert secrets.decrypt(False, keyring) is False


def test_wrong_key_is_reported(keyring):
    other = secrets.parse_keys(secrets.generate_key(), "other")
    with pytest.raises(SecretError) as caught:
        secrets.decrypt(secrets.encrypt("pw", keyring), other)
    assert caught.value.code == "wrong_key"


def test_plaintext_is_not_taken_for_ciphertext(keyring):
    with pytest.raises(SecretError) as caught:
        secrets.decrypt("plain-password", keyring)
    assert caught.value.code == "not_encrypted"


def test_rotation_old_key_still_decrypts_then_new_key_alone(keyring):
    old_value = secrets.encrypt("pw", keyring)
    new_key = secrets.generate_key()
    both = secrets.parse_keys(new_key + "," + keyring.keys[0].decode(), "rotation")
    assert secrets.decrypt(old_value, both) == "pw"
    rotated = secrets.rotate(old_value, both)
    only_new = secrets.parse_keys(new_key, "new")
    assert secrets.decrypt(rotated, only_new) == "pw"
    with pytest.raises(SecretError):
        secrets.decrypt(old_value, only_new)


@pytest.mark.parametrize("text", ["", " , ", "not-a-key", "c2hvcnQ="])
def test_malformed_keys_are_refused(text):
    with pytest.raises(SecretError) as caught:
        secrets.parse_keys(text, "environment")
    assert caught.value.code == "bad_key"


def test_key_sources_in_order(tmp_path):
    env_key, conf_key = secrets.generate_key(), secrets.generate_key()
    assert secrets.load_keyring({secrets.ENV_VAR: env_key}, conf_key, str(tmp_path)).source == "environment"
    assert secrets.load_keyring({}, conf_key, str(tmp_path)).source == "config"
    from_file = secrets.load_keyring({}, None, str(tmp_path))
    path = tmp_path / secrets.KEY_FILE
    assert from_file.source == str(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # the same file gives the same key next time (another worker, a restart)
    assert secrets.load_keyring({}, None, str(tmp_path)).keys == from_file.keys


def test_key_file_not_created_when_asked_not_to(tmp_path):
    with pytest.raises(SecretError) as caught:
        secrets.load_keyring({}, None, str(tmp_path), create=False)
    assert caught.value.code == "no_key_file"


def test_fingerprint_is_stable_and_not_the_key(keyring):
    assert keyring.fingerprint == secrets.parse_keys(keyring.keys[0].decode(), "again").fingerprint
    assert keyring.fingerprint not in keyring.keys[0].decode()
    assert len(keyring.fingerprint) == 8
