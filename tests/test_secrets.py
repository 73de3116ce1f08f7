import multiprocessing
import os
import stat
import threading
import time

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


# -- the key file: created atomically, never empty or half-written ---------------------------------------


def _slow_generate(monkeypatch, seconds=0.2):
    """Widen the window between "a worker decides to create the key" and "the key is on disk"."""
    real = secrets.generate_key

    def slow():
        key = real()
        time.sleep(seconds)
        return key

    monkeypatch.setattr(secrets, "generate_key", slow)


def test_key_file_race_between_threads_gives_everyone_the_same_complete_key(tmp_path, monkeypatch):
    _slow_generate(monkeypatch)
    workers = 8
    barrier = threading.Barrier(workers)
    results, errors = [], []

    def worker():
        barrier.wait()
        try:
            results.append(secrets.load_keyring({}, None, str(tmp_path)).keys)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == workers and len(set(results)) == 1
    on_disk = (tmp_path / secrets.KEY_FILE).read_text().strip().encode()
    assert results[0] == (on_disk,)
    assert sorted(p.name for p in (tmp_path / "smtp_routing").iterdir()) == ["secret.key", "secret.key.lock"]


def _load_in_child(data_dir, queue):
    try:
        real = secrets.generate_key
        secrets.generate_key = lambda: (real(), time.sleep(0.2))[0]
        queue.put(("ok", secrets.load_keyring({}, None, data_dir).keys[0].decode()))
    except Exception as error:  # noqa: BLE001 - reported to the parent
        queue.put(("error", repr(error)))


def test_key_file_race_between_processes(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_load_in_child, args=(str(tmp_path), queue)) for _ in range(4)]
    for child in children:
        child.start()
    outcomes = [queue.get(timeout=30) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert [kind for kind, _ in outcomes] == ["ok"] * 4, outcomes
    assert len({key for _, key in outcomes}) == 1
    assert (tmp_path / secrets.KEY_FILE).read_text().strip() == outcomes[0][1]


def test_crash_while_creating_the_key_leaves_no_key_file(tmp_path, monkeypatch):
    def crash():
        raise KeyboardInterrupt("worker killed while creating the key")

    monkeypatch.setattr(secrets, "generate_key", crash)
    with pytest.raises(KeyboardInterrupt):
        secrets.load_keyring({}, None, str(tmp_path))
    monkeypatch.undo()
    leftovers = [p.name for p in (tmp_path / "smtp_routing").iterdir() if p.name != "secret.key.lock"]
    assert leftovers == [], "neither an empty key file nor a temporary file is left behind"
    keyring = secrets.load_keyring({}, None, str(tmp_path))
    assert (tmp_path / secrets.KEY_FILE).read_text().strip().encode() == keyring.keys[0]


def test_empty_leftover_key_file_is_replaced_by_a_complete_key(tmp_path):
    path = tmp_path / secrets.KEY_FILE
    path.parent.mkdir(parents=True)
    path.write_text("")  # what an older version left after a crash: no key, so nothing was ever encrypted with it
    keyring = secrets.load_keyring({}, None, str(tmp_path))
    assert path.read_text().strip().encode() == keyring.keys[0]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secrets.load_keyring({}, None, str(tmp_path)).keys == keyring.keys


def test_damaged_key_file_is_kept_and_explained(tmp_path):
    path = tmp_path / secrets.KEY_FILE
    path.parent.mkdir(parents=True)
    path.write_text("dGhpcyBpcyBub3QgYSB3aG9sZSBrZXk")  # half a key: never overwritten, it may be restorable
    with pytest.raises(SecretError) as caught:
        secrets.load_keyring({}, None, str(tmp_path))
    assert caught.value.code == "bad_key"
    assert str(path) in caught.value.detail
    assert path.read_text() == "dGhpcyBpcyBub3QgYSB3aG9sZSBrZXk"


# -- checking a stored value without decrypting it ---------------------------------------------------------


def test_verify_checks_the_key_without_giving_the_plaintext(keyring):
    stored = secrets.encrypt("pw", keyring)
    assert secrets.verify(stored, keyring) is None
    assert secrets.verify(False, keyring) is None
    other = secrets.parse_keys(secrets.generate_key(), "other")
    with pytest.raises(SecretError) as caught:
        secrets.verify(stored, other)
    assert caught.value.code == "wrong_key"
    with pytest.raises(SecretError) as caught:
        secrets.verify("plain", keyring)
    assert caught.value.code == "not_encrypted"
    rotation = secrets.parse_keys(other.keys[0].decode() + "," + keyring.keys[0].decode(), "rotation")
    assert secrets.verify(stored, rotation) is None
