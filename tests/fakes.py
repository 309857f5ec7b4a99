"""In-memory fakes of the shared kernel's ports, for unit tests only."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from schemas.envelope import Envelope
from transactional.shared.errors import StoreUnavailable
from transactional.shared.ports import DeliveryCallback, OutboxRecord, OutgoingMessage


class FakeOutboxStore:
    """An outbox held in a list; ``leader`` decides whether leadership can be taken."""

    def __init__(self, records: Sequence[OutboxRecord] = (), *, leader: bool = True) -> None:
        self.records = list(records)
        self.published: set[int] = set()
        self.published_at: dict[int, float] = {}
        self.leader = leader

    def try_acquire_leadership(self) -> bool:
        return self.leader

    def fetch_unpublished(self, limit: int) -> list[OutboxRecord]:
        pending = sorted(
            (r for r in self.records if r.id not in self.published), key=lambda r: r.id
        )
        return pending[:limit]

    def mark_published(self, ids: Sequence[int]) -> None:
        now = time.monotonic()
        for record_id in ids:
            self.published_at.setdefault(record_id, now)
        self.published.update(ids)

    def purge_published(self, older_than_s: float) -> int:
        cutoff = time.monotonic() - older_than_s
        gone = {i for i, at in self.published_at.items() if at <= cutoff}
        self.records = [r for r in self.records if r.id not in gone]
        return len(gone)

    def close(self) -> None:
        pass


class FakePublisher:
    """Collects messages; ``fail`` decides per message whether the broker rejects it.

    Like Kafka's idempotent producer with the gapless guarantee, once a message fails every
    later message of the same key in that flush fails too (no reordering within a key).
    """

    def __init__(self, fail: Callable[[OutgoingMessage], str | None] = lambda _m: None) -> None:
        self.sent: list[OutgoingMessage] = []
        self.resets = 0
        self._queued: list[tuple[OutgoingMessage, DeliveryCallback]] = []
        self._fail = fail

    def publish(self, message: OutgoingMessage, on_delivery: DeliveryCallback) -> None:
        self._queued.append((message, on_delivery))

    def flush(self, timeout: float) -> int:
        queued, self._queued = self._queued, []
        failed_keys: set[tuple[str, str]] = set()
        for message, callback in queued:
            error = self._fail(message)
            if (message.topic, message.key) in failed_keys:
                error = "an earlier message of this key failed"
            if error is not None:
                failed_keys.add((message.topic, message.key))
            if error is None:
                self.sent.append(message)
            callback(message, error)
        return 0

    def reset(self) -> None:
        self.resets += 1
        queued, self._queued = self._queued, []
        for message, callback in queued:
            callback(message, "purged")

    def close(self) -> None:
        self.flush(0)


class FakeInbox:
    """Remembers applied ids; a failing effect leaves no claim behind (like a rollback)."""

    def __init__(self) -> None:
        self.applied: set[tuple[str, Any]] = set()
        self.connection = object()

    def apply_once(self, consumer: str, envelope: Envelope, effect: Callable[[Any], None]) -> bool:
        key = (consumer, envelope.event_id)
        if key in self.applied:
            return False
        effect(self.connection)
        self.applied.add(key)
        return True

    def is_unavailable(self, error: BaseException) -> bool:
        return isinstance(error, StoreUnavailable)

    def purge(self, older_than_s: float) -> int:
        return 0

    def apply_many(
        self, consumer: str, items: Sequence[tuple[Envelope, Callable[[Any], None]]]
    ) -> list[bool]:
        before = set(self.applied)
        try:
            return [self.apply_once(consumer, envelope, effect) for envelope, effect in items]
        except Exception:
            self.applied = before  # all or nothing, like the one transaction it stands for
            raise


class FakeUnitOfWork:
    """A unit of work without a database: slices subclass it and attach in-memory repositories.

    ``committed`` collects every event of every commit, in order; a ``with`` block left without
    commit discards its events, as the real one rolls back.
    """

    def __init__(self) -> None:
        self.events: list[Envelope] = []
        self.committed: list[Envelope] = []
        self.commits = 0

    def __enter__(self) -> Any:
        self.events = []
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    def emit(self, *envelopes: Envelope) -> None:
        self.events.extend(envelopes)

    def commit(self) -> None:
        self.committed.extend(self.events)
        self.events = []
        self.commits += 1

    def rollback(self) -> None:
        self.events = []

    def event_types(self) -> list[str]:
        """Types of the committed events, in commit order."""
        return [envelope.event_type for envelope in self.committed]
