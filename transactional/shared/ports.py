"""Ports of the shared kernel: what the relay and consumers need from the outside world.

Each port has one production adapter (PostgreSQL, Kafka) and fakes for unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message bound for the event bus: topic, key (aggregate id), value and headers."""

    topic: str
    key: str
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    ref: int = 0  # the outbox row id, so delivery reports can be matched back


DeliveryCallback = Callable[[OutgoingMessage, str | None], None]
"""Called once per message with ``None`` on success or the error text."""


class EventPublisher(Protocol):
    """Publishes keyed messages; delivery is confirmed through callbacks on ``flush``.

    Contract: order is kept per key. Once a message fails, no later message of the same key
    may be delivered before it is published again (Kafka: idempotence + gapless guarantee).
    """

    def publish(self, message: OutgoingMessage, on_delivery: DeliveryCallback) -> None:
        """Queue one message; ``on_delivery`` fires when the broker acknowledges or fails it."""
        ...

    def flush(self, timeout: float) -> int:
        """Wait for queued messages; return how many are still undelivered."""
        ...

    def reset(self) -> None:
        """Drop everything queued and start a fresh producer session (new producer id)."""
        ...

    def close(self) -> None:
        """Flush what is left and release the client."""
        ...


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One committed, not yet published outbox row."""

    id: int
    topic: str
    key: str
    value: bytes
    headers: Mapping[str, str]


class OutboxStore(Protocol):
    """Where committed events wait for the relay."""

    def try_acquire_leadership(self) -> bool:
        """Become the single active relay (others stand by); True when held."""
        ...

    def fetch_unpublished(self, limit: int) -> Sequence[OutboxRecord]:
        """The oldest unpublished rows in commit order per aggregate (ascending id)."""
        ...

    def mark_published(self, ids: Sequence[int]) -> None:
        """Record that these rows reached the broker."""
        ...

    def purge_published(self, older_than_s: float) -> int:
        """Delete rows published longer ago than the retention; return how many."""
        ...

    def close(self) -> None:
        """Release the connection (and with it the leadership)."""
        ...
