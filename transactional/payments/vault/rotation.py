"""Key rotation without downtime: a new KEK version, then every data key re-wrapped to it.

Re-wrapping goes in batches, each committed on its own, with a compare-and-set on the old
wrapped key (a row changed meanwhile is left for the next pass). Readers never wait: every
KEK version stays known to the key manager, so a row opens before and after its batch.
Passes repeat until one finds nothing stale, which also catches data keys a process still
wrapped with the previous version while the rotation ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from transactional.payments.vault.cards import card_context, secret_context
from transactional.payments.vault.kms import KeyContext, KeyManagement, WrappedKey

RecordKind = Literal["secret", "card"]
KINDS: tuple[RecordKind, ...] = ("secret", "card")
MAX_PASSES = 5


@dataclass(frozen=True)
class WrappedRecord:
    """One stored wrapped data key: a vault secret by name, or a card by token."""

    kind: RecordKind
    ref: str
    wrapped: WrappedKey


class WrappedKeyStore(Protocol):
    """Every wrapped data key the vault stores, for re-wrapping."""

    def stale(
        self, kind: RecordKind, kek_id: str, after: str | None, limit: int
    ) -> list[WrappedRecord]:
        """Up to ``limit`` records of ``kind`` not wrapped by ``kek_id``, by ref after ``after``."""

    def replace(self, kind: RecordKind, pairs: list[tuple[WrappedRecord, WrappedKey]]) -> int:
        """In one transaction, swap old wrapped keys for new ones (if unchanged); how many."""

    def versions(self) -> dict[str, int]:
        """How many records each KEK version wraps."""


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did."""

    kek_id: str
    rewrapped: int
    passes: int


def context_of(record: WrappedRecord) -> KeyContext:
    """The context a record's data key is bound to."""
    return card_context(record.ref) if record.kind == "card" else secret_context(record.ref)


def stale_count(store: WrappedKeyStore, kek_id: str) -> int:
    """How many records are not wrapped by ``kek_id``."""
    return sum(count for version, count in store.versions().items() if version != kek_id)


def rotate(
    kms: KeyManagement,
    store: WrappedKeyStore,
    *,
    new_version: bool = True,
    batch_size: int = 500,
    on_start: Callable[[str, int], None] = lambda kek_id, total: None,
    on_batch: Callable[[int], None] = lambda done: None,
) -> RotationReport:
    """Make a new KEK version current (unless ``new_version`` is False), then re-wrap to it."""
    # Read first: an unreachable store fails the rotation before a key version is made.
    versions = store.versions()
    kek_id = kms.new_key_version() if new_version else kms.current_key_id()
    on_start(kek_id, sum(count for version, count in versions.items() if version != kek_id))
    total = passes = 0
    while passes < MAX_PASSES:
        passes += 1
        found = 0
        for kind in KINDS:
            after: str | None = None
            while batch := store.stale(kind, kek_id, after, batch_size):
                found += len(batch)
                pairs = [
                    (record, kms.rewrap(record.wrapped, context_of(record))) for record in batch
                ]
                done = store.replace(kind, pairs)
                total += done
                on_batch(done)
                after = batch[-1].ref
        if found == 0:
            break
    return RotationReport(kek_id, total, passes)
