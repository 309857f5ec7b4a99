"""In-memory fakes of the vault's stores: named secrets and the wrapped keys of sealed cards."""

from __future__ import annotations

import threading

from transactional.payments.vault.cards import SealedCard
from transactional.payments.vault.envelope import Envelope
from transactional.payments.vault.kms import WrappedKey
from transactional.payments.vault.rotation import KINDS, RecordKind, WrappedRecord


class MemorySecrets:
    """Named wrapped secrets in a dictionary; the first writer wins."""

    def __init__(self) -> None:
        self.secrets: dict[str, WrappedKey] = {}
        self._lock = threading.Lock()

    def load(self, name: str) -> WrappedKey | None:
        return self.secrets.get(name)

    def add(self, name: str, wrapped: WrappedKey) -> WrappedKey:
        with self._lock:
            return self.secrets.setdefault(name, wrapped)


class MemoryVaultTables:
    """Sealed cards by token and the named secrets, as the rotation sees them."""

    def __init__(self, secrets: MemorySecrets) -> None:
        self.cards: dict[str, SealedCard] = {}
        self.secrets = secrets
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def envelope(self, token: str) -> Envelope:
        return self.cards[token].envelope

    def _records(self, kind: RecordKind) -> dict[str, WrappedKey]:
        if kind == "secret":
            return dict(self.secrets.secrets)
        return {token: card.envelope.data_key for token, card in self.cards.items()}

    def stale(
        self, kind: RecordKind, kek_id: str, after: str | None, limit: int
    ) -> list[WrappedRecord]:
        with self._lock:
            rows = sorted(self._records(kind).items())
        chosen = [
            WrappedRecord(kind, ref, wrapped)
            for ref, wrapped in rows
            if wrapped.kek_id != kek_id and ref > (after or "")
        ]
        return chosen[:limit]

    def replace(self, kind: RecordKind, pairs: list[tuple[WrappedRecord, WrappedKey]]) -> int:
        done = 0
        with self._lock:
            for record, new in pairs:
                if kind == "secret":
                    if self.secrets.secrets.get(record.ref) == record.wrapped:
                        self.secrets.secrets[record.ref] = new
                        done += 1
                    continue
                card = self.cards[record.ref]
                if card.envelope.data_key == record.wrapped:
                    envelope = Envelope(card.envelope.ciphertext, new)
                    self.cards[record.ref] = SealedCard(
                        envelope, card.last4, card.brand, card.fingerprint
                    )
                    done += 1
            self.batches.append(len(pairs))
        return done

    def versions(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind in KINDS:
            for wrapped in self._records(kind).values():
                counts[wrapped.kek_id] = counts.get(wrapped.kek_id, 0) + 1
        return counts
