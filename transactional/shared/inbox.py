"""The inbox: a consumer applies each event id once, in the same transaction as its effect."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from schemas.envelope import Envelope
from transactional.shared.db import sql
from transactional.shared.errors import StoreUnavailable

Effect = Callable[[Connection], None]

# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
_RESTARTING = frozenset({"57P01", "57P02", "57P03", "53300"})

_CLAIM = sql(
    "INSERT INTO inbox (consumer, event_id, event_type) VALUES (:consumer, :event_id, :event_type) "
    "ON CONFLICT DO NOTHING"
)
_CLAIM_MANY = sql(
    "INSERT INTO inbox (consumer, event_id, event_type) "
    "SELECT :consumer, e, t FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) AS x(e, t) "
    "ON CONFLICT DO NOTHING RETURNING event_id"
)


class Inbox(Protocol):
    """Runs a handler at most once per (consumer, event id), atomically with its effects."""

    def apply_once(self, consumer: str, envelope: Envelope, effect: Effect) -> bool:
        """Run ``effect`` unless this consumer already applied the event; True when it ran."""
        ...

    def apply_many(self, consumer: str, items: Sequence[tuple[Envelope, Effect]]) -> list[bool]:
        """Apply a batch in order in one transaction; all or nothing. Per item: True if it ran."""
        ...

    def is_unavailable(self, error: BaseException) -> bool:
        """True when ``error`` means the store is unreachable (retry later), not a bad event."""
        ...

    def purge(self, older_than_s: float) -> int:
        """Forget applied ids older than any possible redelivery; return how many."""
        ...


class PostgresInbox:
    """Inbox adapter: the claim row and the handler's writes commit or roll back together."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def is_unavailable(self, error: BaseException) -> bool:
        """Connection-level failures only: the database is down, restarting or unreachable.

        Anything else (a statement timeout, a constraint, a full disk) is the event's failure
        and counts towards its attempts, or a poison event would block its partition forever.
        """
        if isinstance(error, StoreUnavailable):
            return True
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, OperationalError | InterfaceError):
            sqlstate = getattr(error.orig, "sqlstate", None)
            # No SQLSTATE: libpq could not reach the server or lost it mid-statement.
            return sqlstate is None or sqlstate.startswith("08") or sqlstate in _RESTARTING
        return False

    def purge(self, older_than_s: float) -> int:
        """Forget applied ids older than the longest possible redelivery; return how many."""
        with self._engine.begin() as connection:
            return connection.execute(
                sql(
                    "DELETE FROM inbox WHERE processed_at < "
                    "clock_timestamp() - make_interval(secs => :s)"
                ),
                {"s": older_than_s},
            ).rowcount

    def apply_once(self, consumer: str, envelope: Envelope, effect: Effect) -> bool:
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

    def apply_many(self, consumer: str, items: Sequence[tuple[Envelope, Effect]]) -> list[bool]:
        """Claim all ids with one statement, run the new effects in order, commit once."""
        if not items:
            return []
        with self._engine.begin() as connection:
            claimed = set(
                connection.execute(
                    _CLAIM_MANY,
                    {
                        "consumer": consumer,
                        "ids": [envelope.event_id for envelope, _ in items],
                        "types": [envelope.event_type for envelope, _ in items],
                    },
                ).scalars()
            )
            ran: list[bool] = []
            for envelope, effect in items:
                # A batch may hold a redelivered copy of an event: only the first copy runs.
                if envelope.event_id in claimed:
                    claimed.discard(envelope.event_id)
                    effect(connection)
                    ran.append(True)
                else:
                    ran.append(False)
            return ran
