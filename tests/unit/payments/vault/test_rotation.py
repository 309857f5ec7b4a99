"""Rotation on the fakes: a new KEK version, every data key re-wrapped in batches, all open."""

from __future__ import annotations

from pathlib import Path

from tests.unit.payments.vault.fakes import MemorySecrets, MemoryVaultTables
from transactional.payments.vault.cards import CardSecret, CardVault
from transactional.payments.vault.local_kms import LocalKeyring
from transactional.payments.vault.rotation import rotate, stale_count

NUMBERS = [f"42424242424242{n:02d}" for n in range(23)]


def test_rotation_rewraps_every_data_key_in_batches_and_cards_still_open(tmp_path: Path) -> None:
    keyring = LocalKeyring.from_file(tmp_path / "kek.json")
    secrets = MemorySecrets()
    vault = CardVault(keyring, secrets)
    tables = MemoryVaultTables(secrets)
    for index, number in enumerate(NUMBERS):
        tables.cards[f"tok_{index:03d}"] = vault.seal(
            f"tok_{index:03d}", CardSecret(number, 1, 2031)
        )
    fingerprint = vault.fingerprint(NUMBERS[0])
    started: list[tuple[str, int]] = []

    old = keyring.current_key_id()
    report = rotate(
        keyring, tables, batch_size=5, on_start=lambda kek, total: started.append((kek, total))
    )

    new = keyring.current_key_id()
    assert new != old and report.kek_id == new
    assert report.rewrapped == len(NUMBERS) + 1  # + the fingerprint key
    assert started == [(new, len(NUMBERS) + 1)]
    assert tables.versions() == {new: len(NUMBERS) + 1}
    assert stale_count(tables, new) == 0
    assert max(tables.batches) == 5
    # A fresh process (fresh vault, same stores) opens every card and keeps fingerprints.
    fresh = CardVault(LocalKeyring.from_file(tmp_path / "kek.json"), secrets)
    for index, number in enumerate(NUMBERS):
        token = f"tok_{index:03d}"
        assert fresh.open(token, tables.envelope(token)).number == number
    assert fresh.fingerprint(NUMBERS[0]) == fingerprint


def test_rewrap_only_moves_stragglers_to_the_current_version(tmp_path: Path) -> None:
    keyring = LocalKeyring.from_file(tmp_path / "kek.json")
    secrets = MemorySecrets()
    vault = CardVault(keyring, secrets)
    tables = MemoryVaultTables(secrets)
    tables.cards["tok_a"] = vault.seal("tok_a", CardSecret(NUMBERS[0], 1, 2031))
    new = keyring.new_key_version()
    tables.cards["tok_b"] = vault.seal("tok_b", CardSecret(NUMBERS[1], 1, 2031))

    report = rotate(keyring, tables, new_version=False)

    assert (report.kek_id, report.rewrapped) == (new, 2)  # tok_a and the fingerprint key
    assert tables.versions() == {new: 3}
    assert rotate(keyring, tables, new_version=False).rewrapped == 0
