"""The card vault's adapters from settings: the KEK source and the PostgreSQL stores."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine

from souk.settings import Settings
from transactional.payments.vault.cards import CardVault
from transactional.payments.vault.kms import KeyManagement, VaultError
from transactional.payments.vault.repository import SqlVaultSecrets


def key_file_path(settings: Settings) -> Path:
    """Where the local keyring lives: SOUK_VAULT_KEY_FILE, else SOUK_HOME/vault/kek.json."""
    return settings.vault_key_file or settings.state_dir / "vault" / "kek.json"


def build_key_management(settings: Settings) -> KeyManagement:
    """The key manager SOUK_VAULT_KEK_SOURCE names."""
    source = settings.vault_kek_source
    if source == "settings":
        from transactional.payments.vault.local_kms import LocalKeyring

        if not settings.vault_kek:
            raise VaultError("SOUK_VAULT_KEK_SOURCE=settings needs SOUK_VAULT_KEK")
        return LocalKeyring.from_setting(settings.vault_kek)
    if source == "aws-kms":
        import boto3
        from botocore.config import Config

        from transactional.payments.vault.aws_kms import AwsKms

        client = boto3.client(
            "kms",
            region_name=settings.vault_kms_region,
            endpoint_url=settings.vault_kms_url,
            # Bounded: a checkout waits on this (3 tries in all, short timeouts).
            config=Config(
                connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}
            ),
        )
        return AwsKms(client, settings.vault_kms_key_id)
    from transactional.payments.vault.local_kms import LocalKeyring

    return LocalKeyring.from_file(key_file_path(settings))


def build_card_vault(settings: Settings, bind: Engine | Connection) -> CardVault:
    """The card vault over the configured key manager and the database at ``bind``."""
    return CardVault(build_key_management(settings), SqlVaultSecrets(bind))
