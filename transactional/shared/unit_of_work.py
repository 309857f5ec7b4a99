"""The unit of work: one database transaction holding a slice's changes and the events they emit.

Services collect events with :meth:`emit`; :meth:`commit` writes them to the outbox inside the
same transaction, so a change and its events are committed together or not at all.
Each slice subclasses :class:`SqlUnitOfWork` to attach its repositories to the connection.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from sqlalchemy import Connection, Engine, RootTransaction

from schemas.envelope import Envelope
from transactional.shared.outbox import Outbox


class UnitOfWork(Protocol):
    """What a service needs from a transaction: emit events, commit, or roll back."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def emit(self, *envelopes: Envelope) -> None:
        """Queue events to be written to the outbox on commit."""

    def commit(self) -> None:
        """Make the changes and the queued events durable together."""

    def rollback(self) -> None:
        """Discard the changes and the queued events."""


class SqlUnitOfWork:
    """A PostgreSQL transaction; leaving the ``with`` block without commit rolls back."""

    def __init__(self, engine: Engine, outbox: Outbox) -> None:
        self._engine = engine
        self._outbox = outbox
        self._connection: Connection | None = None
        self._transaction: RootTransaction | None = None
        self.events: list[Envelope] = []

    @property
    def connection(self) -> Connection:
        """The connection of the open transaction (only inside ``with``)."""
        if self._connection is None:
            raise RuntimeError("the unit of work is not open: use it as `with uow:`")
        return self._connection

    def __enter__(self) -> Self:
        self._connection = self._engine.connect()
        self._transaction = self._connection.begin()
        self.events = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.rollback()
        finally:
            if self._connection is not None:
                self._connection.close()
            self._connection = None
            self._transaction = None

    def emit(self, *envelopes: Envelope) -> None:
        """Queue events to be written to the outbox on commit."""
        self.events.extend(envelopes)

    def commit(self) -> None:
        """Write the queued events to the outbox, then commit everything at once."""
        if self._transaction is None or not self._transaction.is_active:
            raise RuntimeError("nothing to commit: the unit of work is not open")
        if self.events:
            self._outbox.add(self.connection, self.events)
        self._transaction.commit()
        self.events = []

    def rollback(self) -> None:
        """Discard the changes and the queued events (no-op once committed)."""
        if self._transaction is not None and self._transaction.is_active:
            self._transaction.rollback()
        self.events = []
