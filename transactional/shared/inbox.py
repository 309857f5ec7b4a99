"""The inbox: a consumer applies each event id once, in the same transaction as its effect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from sqlalchemy import Connection, Engine, text

from schemas.envelope import Envelope

T = TypeVar("T")

_CLAIM = text(
    "INSERT INTO inbox (consumer, event_id, event_type) VALUES (:consumer, :event_id, :event_type) "
    "ON CONFLICT DO NOTHING"
)


class Inbox(Protocol):
    """Runs a handler at most once per (consumer, event id), atomically with its effects."""

    def apply_once(
        self, consumer: str, envelope: Envelope, effect: Callable[[Connection], None]
    ) -> bool:
        """Run ``effect`` unless this consumer already applied the event; True when it ran."""
        ...


class PostgresInbox:
    """Inbox adapter: the claim row and the handler's writes commit or roll back together."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def apply_once(
        self, consumer: str, envelope: Envelope, effect: Callable[[Connection], None]
    ) -> bool:
        """Claim the event id and run the effect in one transaction."""
        with self._engine.begin() as connection:
            claimed = connection.execute(
                _CLAIM,
                {
                    "consumer": consumer,
                    "event_id": envelope.event_id,
                    "event_type": envelope.event_type,
                },
            ).rowcount
            if not claimed:
                return False
            effect(connection)
            return True
