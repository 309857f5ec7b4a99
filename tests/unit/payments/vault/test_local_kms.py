"""The local KMS adapter: a 0600 key file created on first use, versions, binding, tampering."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from transactional.payments.vault.kms import UnknownKeyVersion, VaultError, WrappedKey
from transactional.payments.vault.local_kms import LocalKeyring

DATA_KEY = bytes(range(32))
CONTEXT = {"purpose": "card", "token": "tok_1"}


def test_the_key_file_is_created_once_with_owner_only_permissions(tmp_path: Path) -> None:
    path = tmp_path / "home" / "vault" / "kek.json"
    keyring = LocalKeyring.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    again = LocalKeyring.from_file(path)  # a second process: same file, same key
    assert path.read_text() == first
    assert again.unwrap(keyring.wrap(DATA_KEY, CONTEXT), CONTEXT) == DATA_KEY
    assert keyring.current_key_id() == again.current_key_id()
    # Another file has other version ids: its blobs are "unknown" here, not "tampered".
    other = LocalKeyring.from_file(tmp_path / "other.json")
    with pytest.raises(UnknownKeyVersion, match="same SOUK_VAULT_KEY_FILE"):
        keyring.unwrap(other.wrap(DATA_KEY, CONTEXT), CONTEXT)


def test_a_wrapped_key_opens_only_in_its_own_context(tmp_path: Path) -> None:
    keyring = LocalKeyring.from_file(tmp_path / "kek.json")
    wrapped = keyring.wrap(DATA_KEY, CONTEXT)
    assert DATA_KEY not in wrapped.blob
    with pytest.raises(VaultError, match="failed authentication"):
        keyring.unwrap(wrapped, {"purpose": "card", "token": "tok_2"})
    tampered = WrappedKey(wrapped.kek_id, wrapped.blob[:-1] + bytes([wrapped.blob[-1] ^ 1]))
    with pytest.raises(VaultError, match="failed authentication"):
        keyring.unwrap(tampered, CONTEXT)
    with pytest.raises(UnknownKeyVersion):
        keyring.unwrap(WrappedKey("local-9", wrapped.blob), CONTEXT)


def test_a_new_version_becomes_current_and_old_blobs_still_open(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    keyring = LocalKeyring.from_file(path)
    first = keyring.current_key_id()
    old = keyring.wrap(DATA_KEY, CONTEXT)
    second = keyring.new_key_version()
    new = keyring.wrap(DATA_KEY, CONTEXT)
    assert (old.kek_id, new.kek_id) == (first, second) and first != second
    assert keyring.unwrap(old, CONTEXT) == keyring.unwrap(new, CONTEXT) == DATA_KEY
    rewrapped = keyring.rewrap(old, CONTEXT)
    assert rewrapped.kek_id == second and keyring.unwrap(rewrapped, CONTEXT) == DATA_KEY
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(path.read_text())["keys"]) == {first, second}


def test_another_process_rotating_is_seen_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    server = LocalKeyring.from_file(path)
    cli = LocalKeyring.from_file(path)
    rotated = cli.new_key_version()
    # The server wraps with the new version at once and opens what the rotation wrapped.
    assert server.current_key_id() == rotated
    assert server.unwrap(cli.wrap(DATA_KEY, CONTEXT), CONTEXT) == DATA_KEY


def test_keys_from_settings_last_one_current_never_echoed() -> None:
    one, two = (base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2))
    keyring = LocalKeyring.from_setting(f"old={one}, new={two}")
    assert keyring.current_key_id() == "new"
    assert keyring.wrap(DATA_KEY, CONTEXT).kek_id == "new"
    assert one not in repr(keyring) and two not in repr(keyring)
    short = base64.b64encode(b"x" * 16).decode()
    for bad in (f"a={short}", f"a={one},a={two}", one, "a=???"):
        with pytest.raises(VaultError) as error:
            LocalKeyring.from_setting(bad)
        assert short not in str(error.value) and one not in str(error.value)
    with pytest.raises(VaultError, match="SOUK_VAULT_KEK"):
        keyring.new_key_version()


def test_a_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    path.write_text('{"current": "local-1", "keys": {"local-1": "c2hvcnQ="}}')
    with pytest.raises(VaultError, match="corrupt"):
        LocalKeyring.from_file(path)
