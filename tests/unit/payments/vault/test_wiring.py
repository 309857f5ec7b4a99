"""The vault's key manager from settings: a key file under SOUK_HOME, or keys in settings."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from souk.settings import Settings
from souk.vault_wiring import build_key_management, key_file_path
from transactional.payments.vault.kms import VaultError
from transactional.payments.vault.local_kms import LocalKeyring


def settings(home: Path, **values: Any) -> Settings:
    return Settings(_env_file=None, home=home, **values)  # type: ignore[call-arg]


@pytest.fixture(autouse=True)
def no_vault_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SOUK_VAULT_* of the environment (e.g. the integration session's) do not apply here."""
    for name in ("SOUK_VAULT_KEY_FILE", "SOUK_VAULT_KEK", "SOUK_VAULT_KEK_SOURCE"):
        monkeypatch.delenv(name, raising=False)


def test_the_default_is_a_key_file_under_souk_home_created_0600(tmp_path: Path) -> None:
    local = settings(tmp_path)
    kms = build_key_management(local)
    assert isinstance(kms, LocalKeyring) and kms.current_key_id().startswith("local-")
    path = key_file_path(local)
    assert path == tmp_path.resolve() / "vault" / "kek.json"
    assert path.stat().st_mode & 0o777 == 0o600
    elsewhere = settings(tmp_path, vault_key_file=tmp_path / "keys" / "k.json")
    build_key_management(elsewhere)
    assert (tmp_path / "keys" / "k.json").exists()


def test_keys_from_settings_are_never_shown(tmp_path: Path) -> None:
    key = base64.b64encode(b"k" * 32).decode()
    configured = settings(tmp_path, vault_kek_source="settings", vault_kek=f"prod-1={key}")
    assert build_key_management(configured).current_key_id() == "prod-1"
    assert key not in repr(configured) and key not in str(configured)
    assert not (tmp_path / "vault").exists()
    with pytest.raises(VaultError, match="SOUK_VAULT_KEK"):
        build_key_management(settings(tmp_path, vault_kek_source="settings"))


def test_an_unknown_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vault_kek_source"):
        settings(tmp_path, vault_kek_source="vault9000")
