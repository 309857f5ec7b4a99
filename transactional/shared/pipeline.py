"""A unit of work on one psycopg connection in pipeline mode: two round trips a transaction.

The checkout's hot path writes a dozen rows across slices per commit. Sent one statement at
a time through SQLAlchemy that is a dozen round trips, each with its driver overhead; here
repositories *queue* statements and get a :class:`Deferred` back. :meth:`sync` sends
everything queued so far and waits once; :meth:`commit` queues the outbox rows and COMMIT
and waits once more. BEGIN is queued with the first statement rather than costing a round
trip of its own (psycopg would send it alone), which is why the connection runs in
autocommit mode and the transaction is spelled out.

The connection comes from the same SQLAlchemy pool as every other unit of work.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import psycopg
from psycopg import Connection, Cursor

from schemas.envelope import Envelope
from transactional.shared.deferred import Deferred
from transactional.shared.outbox import Outbox

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Mapping[str, Any]

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


@functools.lru_cache(maxsize=1024)
def pyformat(sql: str) -> str:
    """SQLAlchemy ``text()`` SQL (``:name``) as psycopg SQL with binary parameters
    (``%(name)b``), so both adapters of a slice share one statement. Binary parameters
    skip text escaping, which for arrays (the outbox's unnest) is a regex per element."""
    return _NAMED.sub(r"%(\1)b", sql.replace("%", "%%"))


def rows(cursor: Cursor[Row]) -> list[Row]:
    """Every row a statement returned."""
    return cursor.fetchall()


def first(cursor: Cursor[Row]) -> Row | None:
    """The first row a statement returned, if any."""
    return cursor.fetchone()


def changed(cursor: Cursor[Row]) -> int:
    """How many rows a statement wrote."""
    return cursor.rowcount


class PooledConnection(Protocol):
    """What the pool hands out (SQLAlchemy's ``engine.raw_connection()``)."""

    @property
    def driver_connection(self) -> Any:
        """The psycopg connection."""

    def close(self) -> None:
        """Give the connection back to the pool."""

    def invalidate(self, e: BaseException | None = None, soft: bool = False) -> None:
        """Drop the connection from the pool (it is broken)."""


class PipelinedUnitOfWork:
    """One transaction whose statements are queued and sent in as few round trips as can be.

    ``with uow:`` takes a pooled connection; :meth:`begin` opens the transaction (reads
    without it run in autocommit, each its own snapshot); leaving the block without
    :meth:`commit` rolls back. Events queued with :meth:`emit` go to the outbox on commit.
    """

    def __init__(self, connect: Callable[[], PooledConnection], outbox: Outbox | None) -> None:
        self._connect = connect
        self._outbox = outbox
        self._pooled: PooledConnection | None = None
        self._connection: Connection[Row] | None = None
        self._pipeline: psycopg.Pipeline | None = None
        self._pipeline_block: AbstractContextManager[psycopg.Pipeline] | None = None
        self._in_transaction = False
        self.events: list[Envelope] = []

    def __enter__(self) -> Self:
        pooled = self._connect()
        connection: Connection[Row] = pooled.driver_connection
        try:
            connection.autocommit = True
            self._pipeline_block = connection.pipeline()
            self._pipeline = self._pipeline_block.__enter__()
        except BaseException:
            pooled.invalidate()
            pooled.close()
            raise
        self._pooled, self._connection = pooled, connection
        self._in_transaction = False
        self.events = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pooled, connection, block = self._pooled, self._connection, self._pipeline_block
        self._pooled = self._connection = self._pipeline = self._pipeline_block = None
        self._in_transaction = False
        self.events = []
        if pooled is None or connection is None:
            return
        try:
            try:
                if block is not None:
                    block.__exit__(exc_type, exc, tb)  # sends what is left, leaves pipeline mode
            except psycopg.Error:
                # A statement failed (its error reached the caller, or surfaces only now);
                # whatever was queued after it was skipped. Settled just below.
                if exc is None:
                    raise
            finally:
                # Back to the pool only idle and as the pool lends it (not in autocommit):
                # a transaction still open (a failed COMMIT, a caller that did not commit)
                # is rolled back; a connection that cannot be brought back is dropped.
                if self._idle(connection):
                    connection.autocommit = False
                else:
                    pooled.invalidate()
        finally:
            pooled.close()

    @staticmethod
    def _idle(connection: Connection[Row]) -> bool:
        """Whether the connection is idle (rolling back what it still holds), and usable."""
        if connection.broken or connection.closed:
            return False
        try:
            if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                connection.execute("ROLLBACK")
        except psycopg.Error:
            return False
        return connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

    @property
    def connection(self) -> Connection[Row]:
        """The connection of the open unit of work (only inside ``with``)."""
        if self._connection is None:
            raise RuntimeError("the unit of work is not open: use it as `with uow:`")
        return self._connection

    # -- statements ----------------------------------------------------------------------

    def begin(self) -> None:
        """Open the transaction (queued with the next statements, not sent on its own)."""
        if not self._in_transaction:
            self.connection.execute("BEGIN")
            self._in_transaction = True

    def execute(self, sql: str, params: Params | None = None) -> Deferred[int]:
        """Queue a write; its result (rows changed) is there after the next sync."""
        return self.query(sql, params, changed)

    def query(
        self, sql: str, params: Params | None, read: Callable[[Cursor[Row]], T]
    ) -> Deferred[T]:
        """Queue a statement; ``read`` turns its cursor into the result after the next sync."""
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        return Deferred(cursor, read)

    def execute_many(self, sql: str, params: Iterable[Params]) -> None:
        """Queue one statement per parameter set (no results kept)."""
        self.connection.cursor().executemany(sql, list(params))

    def sync(self) -> None:
        """Send what is queued and wait for every result (one round trip)."""
        assert self._pipeline is not None
        self._pipeline.sync()

    # -- events and the end of the transaction -------------------------------------------

    def emit(self, *envelopes: Envelope) -> None:
        """Queue events to be written to the outbox on commit."""
        self.events.extend(envelopes)

    def commit(self) -> None:
        """Write the queued events to the outbox and COMMIT, in one round trip."""
        if not self._in_transaction:
            raise RuntimeError("nothing to commit: call begin() first")
        if self.events:
            if self._outbox is None:
                raise RuntimeError("this unit of work has no outbox to write events to")
            for sql, params in self._outbox.statements(self.events):
                self.connection.execute(pyformat(sql), params)
        self.connection.execute("COMMIT")
        self.sync()  # raises if anything failed: the transaction is then still to roll back
        self._in_transaction = False
        self.events = []

    def rollback(self) -> None:
        """Discard the transaction and the queued events (no-op once committed)."""
        if self._in_transaction:
            self._in_transaction = False
            self.connection.execute("ROLLBACK")
            self.sync()
        self.events = []


__all__ = [
    "Deferred",
    "PipelinedUnitOfWork",
    "PooledConnection",
    "Row",
    "changed",
    "first",
    "pyformat",
    "rows",
]
