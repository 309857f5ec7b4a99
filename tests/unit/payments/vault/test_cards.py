"""The card vault over the local KMS: sealing, opening, fingerprints, and nothing in reprs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit.payments.vault.fakes import MemorySecrets
from transactional.checkout.model import Card as CheckoutCard
from transactional.payments.model import Card
from transactional.payments.sandbox import VaultEntry
from transactional.payments.vault.cards import CardSecret, CardVault
from transactional.payments.vault.envelope import Envelope
from transactional.payments.vault.kms import VaultError
from transactional.payments.vault.local_kms import LocalKeyring

NUMBER = "4242424242424242"


@pytest.fixture
def vault(tmp_path: Path) -> CardVault:
    return CardVault(LocalKeyring.from_file(tmp_path / "kek.json"), MemorySecrets())


def test_a_sealed_card_opens_to_its_number_and_expiry(vault: CardVault) -> None:
    sealed = vault.seal("tok_1", CardSecret(NUMBER, 12, 2035))
    assert (sealed.last4, sealed.brand) == ("4242", "visa")
    assert sealed.fingerprint.startswith("fp_")
    assert vault.open("tok_1", sealed.envelope) == CardSecret(NUMBER, 12, 2035)
    blob = sealed.envelope.ciphertext + sealed.envelope.data_key.blob
    assert NUMBER.encode() not in blob and b"2035" not in blob


def test_each_card_gets_its_own_data_key_and_nonce(vault: CardVault) -> None:
    one = vault.seal("tok_1", CardSecret(NUMBER, 12, 2035))
    two = vault.seal("tok_1", CardSecret(NUMBER, 12, 2035))
    assert one.envelope.ciphertext != two.envelope.ciphertext
    assert one.envelope.data_key.blob != two.envelope.data_key.blob


def test_a_sealed_card_does_not_open_under_another_token(vault: CardVault) -> None:
    sealed = vault.seal("tok_1", CardSecret(NUMBER, 12, 2035))
    with pytest.raises(VaultError) as error:
        vault.open("tok_2", sealed.envelope)
    assert NUMBER not in str(error.value)
    flipped = bytearray(sealed.envelope.ciphertext)
    flipped[-1] ^= 1
    with pytest.raises(VaultError, match="tampered"):
        vault.open("tok_1", Envelope(bytes(flipped), sealed.envelope.data_key))


def test_the_fingerprint_recognises_a_card_however_typed_but_is_keyed(
    vault: CardVault, tmp_path: Path
) -> None:
    same = {vault.fingerprint(n) for n in (NUMBER, "4242 4242 4242 4242", "4242-4242-4242-4242")}
    assert len(same) == 1
    assert vault.fingerprint("5555555555554444") not in same
    assert NUMBER not in same.pop()
    # Another vault (another fingerprint key) gives another digest: no offline dictionary.
    other = CardVault(LocalKeyring.from_file(tmp_path / "other.json"), MemorySecrets())
    assert other.fingerprint(NUMBER) != vault.fingerprint(NUMBER)


def test_the_fingerprint_key_is_created_once_and_stored_wrapped(tmp_path: Path) -> None:
    secrets = MemorySecrets()
    keyring = LocalKeyring.from_file(tmp_path / "kek.json")
    first = CardVault(keyring, secrets).fingerprint(NUMBER)
    assert list(secrets.secrets) == ["fingerprint"]
    assert CardVault(keyring, secrets).fingerprint(NUMBER) == first  # another process


def test_no_repr_shows_the_number_or_expiry(vault: CardVault) -> None:
    secret = CardSecret(NUMBER, 12, 2035)
    sealed = vault.seal("tok_1", secret)
    entry = VaultEntry(
        token="tok_1",
        number=NUMBER,
        brand="visa",
        last4="4242",
        exp_month=12,
        exp_year=2035,
        holder="Ada",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    typed = Card(NUMBER, 12, 2035, "739", "Ada")
    checkout_card = CheckoutCard(NUMBER, 12, 2035, "739")
    for shown in map(repr, (secret, sealed, entry, vault, typed, checkout_card)):
        assert NUMBER not in shown and "2035" not in shown and "739" not in shown
