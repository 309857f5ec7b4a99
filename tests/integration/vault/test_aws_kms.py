"""The AWS KMS adapter against moto's KMS server on loopback (the real boto3 client code)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from souk.settings import Settings
from souk.vault_wiring import build_key_management
from tests.unit.payments.vault.fakes import MemorySecrets, MemoryVaultTables
from transactional.payments.vault.aws_kms import AwsKms
from transactional.payments.vault.cards import CardSecret, CardVault
from transactional.payments.vault.kms import (
    UnknownKeyVersion,
    VaultError,
    VaultUnavailable,
    WrappedKey,
)
from transactional.payments.vault.rotation import rotate

DATA_KEY = bytes(range(32))
CONTEXT = {"purpose": "card", "token": "tok_1"}
ALIAS = "alias/souk-card-vault-test"


@pytest.fixture(scope="module")
def kms_url() -> Iterator[str]:
    """moto's server on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials: moto accepts any, boto3 needs some."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)


def client(url: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=url,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_wrap_unwrap_bound_to_context_and_versions(kms_url: str) -> None:
    kms = AwsKms(client(kms_url), ALIAS + "-1")
    with pytest.raises(UnknownKeyVersion):
        kms.current_key_id()  # no key behind the alias yet
    first = kms.new_key_version()
    wrapped = kms.wrap(DATA_KEY, CONTEXT)
    assert wrapped.kek_id == first and DATA_KEY not in wrapped.blob
    assert kms.unwrap(wrapped, CONTEXT) == DATA_KEY
    with pytest.raises(VaultError):
        kms.unwrap(wrapped, {"purpose": "card", "token": "tok_2"})

    second = kms.new_key_version()
    assert second != first and kms.current_key_id() == second
    assert kms.unwrap(wrapped, CONTEXT) == DATA_KEY  # the old version still opens
    rewrapped = kms.rewrap(wrapped, CONTEXT)  # inside KMS
    assert rewrapped.kek_id == second and kms.unwrap(rewrapped, CONTEXT) == DATA_KEY
    # Another process resolves the alias to the new version.
    assert AwsKms(client(kms_url), ALIAS + "-1").current_key_id() == second


def test_a_vault_on_kms_rotates_and_every_card_still_opens(kms_url: str) -> None:
    kms = AwsKms(client(kms_url), ALIAS + "-2")
    kms.new_key_version()
    secrets = MemorySecrets()
    vault = CardVault(kms, secrets)
    tables = MemoryVaultTables(secrets)
    numbers = {f"tok_{n}": f"4000000000000{n:03d}" for n in range(7)}
    for token, number in numbers.items():
        tables.cards[token] = vault.seal(token, CardSecret(number, 6, 2032))
    fingerprint = vault.fingerprint(numbers["tok_0"])

    report = rotate(kms, tables, batch_size=3)

    assert report.rewrapped == len(numbers) + 1
    assert set(tables.versions()) == {report.kek_id}
    fresh = CardVault(AwsKms(client(kms_url), ALIAS + "-2"), secrets)
    assert {t: fresh.open(t, tables.envelope(t)).number for t in numbers} == numbers
    assert fresh.fingerprint(numbers["tok_0"]) == fingerprint


def test_settings_wire_the_kms_adapter(kms_url: str, credentials: None, tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=tmp_path,
        vault_kek_source="aws-kms",
        vault_kms_url=kms_url,
        vault_kms_key_id=ALIAS + "-3",
    )
    kms = build_key_management(settings)
    assert isinstance(kms, AwsKms)
    kms.new_key_version()
    assert kms.unwrap(kms.wrap(DATA_KEY, CONTEXT), CONTEXT) == DATA_KEY
    assert not (tmp_path / "vault").exists()  # no local key file with KMS


def test_an_unreachable_kms_is_a_retryable_error(credentials: None) -> None:
    from tests.integration.http import free_port

    kms = AwsKms(client(f"http://127.0.0.1:{free_port()}"), ALIAS)
    with pytest.raises(VaultUnavailable):
        kms.unwrap(WrappedKey("arn:aws:kms:eu-west-1:1:key/x", b"blob"), CONTEXT)
