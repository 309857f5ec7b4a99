"""Migration 0010_vault on a scratch database: plain rows sealed, plain columns gone."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from souk.settings import get_settings
from souk.stack.endpoints import Endpoints
from tests.integration.vault.scan import pg_dump
from transactional.payments.vault.cards import CardVault
from transactional.payments.vault.envelope import Envelope
from transactional.payments.vault.kms import WrappedKey
from transactional.payments.vault.local_kms import LocalKeyring
from transactional.payments.vault.repository import SqlVaultSecrets
from transactional.shared.db import create_db_engine, sqlalchemy_url
from transactional.shared.migrations import alembic_config, upgrade_database

PLAIN = {"tok_a": ("4242424242424242", 12, 2031), "tok_b": ("378282246310005", 3, 2033)}


@pytest.fixture
def scratch_url(endpoints: Endpoints) -> Iterator[str]:
    """A new empty database on the test server, dropped afterwards."""
    name = f"souk_vault_{secrets.token_hex(4)}"
    admin = create_engine(sqlalchemy_url(endpoints.database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            make_url(endpoints.database_url)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _plain_rows(url: str) -> None:
    db = create_db_engine(url, pool_size=1)
    try:
        with db.begin() as connection:
            for token, (number, month, year) in PLAIN.items():
                connection.execute(
                    text(
                        "INSERT INTO sandbox_gateway_vault (token, number, brand, last4, "
                        "exp_month, exp_year, holder, created_at, owner) VALUES (:token, "
                        ":number, 'visa', :last4, :month, :year, 'Ada', :at, NULL)"
                    ),
                    {
                        "token": token,
                        "number": number,
                        "last4": number[-4:],
                        "month": month,
                        "year": year,
                        "at": datetime.now(UTC),
                    },
                )
    finally:
        db.dispose()


def _open_all(url: str, kms: LocalKeyring) -> dict[str, tuple[str, int, int]]:
    db = create_db_engine(url, pool_size=1)
    try:
        vault = CardVault(kms, SqlVaultSecrets(db))
        with db.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT token, sealed, data_key, kek_id, fingerprint FROM sandbox_gateway_vault"
                )
            ).all()
        opened = {}
        for row in rows:
            envelope = Envelope(bytes(row.sealed), WrappedKey(row.kek_id, bytes(row.data_key)))
            secret = vault.open(row.token, envelope)
            opened[row.token] = (secret.number, secret.exp_month, secret.exp_year)
            assert row.fingerprint == vault.fingerprint(secret.number)
        return opened
    finally:
        db.dispose()


def _table_file(url: str) -> bytes:
    db = create_db_engine(url, pool_size=1)
    try:
        with db.connect() as connection:
            connection.execute(text("CHECKPOINT"))
            path = connection.execute(
                text(
                    "SELECT current_setting('data_directory') || '/' || "
                    "pg_relation_filepath('sandbox_gateway_vault')"
                )
            ).scalar_one()
    finally:
        db.dispose()
    return Path(path).read_bytes()


def test_plain_rows_are_sealed_and_the_number_column_is_dropped(
    scratch_url: str, tmp_path: Path
) -> None:
    upgrade_database(scratch_url, "0008")
    _plain_rows(scratch_url)
    kms = LocalKeyring.from_file(tmp_path / "kek.json")
    config = alembic_config(scratch_url)
    config.attributes["vault_kms"] = kms

    command.upgrade(config, "0010_vault")

    assert _open_all(scratch_url, kms) == PLAIN
    dump = pg_dump(scratch_url)
    assert "sandbox_gateway_vault" in dump and "tok_a" in dump  # the dump is real
    for number, _, _ in PLAIN.values():
        assert number not in dump
    # Not even the table's file keeps the dropped numbers (rewritten by the migration).
    assert not any(number.encode() in _table_file(scratch_url) for number, _, _ in PLAIN.values())
    with pytest.raises(RuntimeError, match="sealed cards"):
        command.downgrade(alembic_config(scratch_url), "0008")


def test_without_a_given_key_manager_the_settings_one_seals(
    scratch_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "settings-kek.json"
    monkeypatch.setenv("SOUK_VAULT_KEK_SOURCE", "file")
    monkeypatch.setenv("SOUK_VAULT_KEY_FILE", str(key_file))
    get_settings.cache_clear()
    try:
        upgrade_database(scratch_url, "0008")
        _plain_rows(scratch_url)
        upgrade_database(scratch_url, "0010_vault")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert _open_all(scratch_url, LocalKeyring.from_file(key_file)) == PLAIN


def test_an_empty_vault_downgrades_and_upgrades_again(scratch_url: str) -> None:
    upgrade_database(scratch_url, "0010_vault")  # no rows: no key manager needed
    command.downgrade(alembic_config(scratch_url), "0008")
    upgrade_database(scratch_url, "0010_vault")
    db = create_db_engine(scratch_url, pool_size=1)
    try:
        with db.connect() as connection:
            columns = set(
                connection.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'sandbox_gateway_vault'"
                    )
                ).scalars()
            )
    finally:
        db.dispose()
    assert "sealed" in columns and "number" not in columns
