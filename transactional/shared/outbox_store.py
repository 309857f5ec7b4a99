"""The relay's view of the outbox: a dedicated PostgreSQL session with the leadership lock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from transactional.shared.db import libpq_dsn
from transactional.shared.errors import RelayStandby, StoreUnavailable
from transactional.shared.ports import OutboxRecord

# Relay leadership: one active relay per database, the others wait on this lock.
RELAY_LOCK_ID = 727002


class PostgresOutboxStore:
    """OutboxStore adapter: one dedicated psycopg connection owned by the relay.

    A lost connection (database restart, network) raises ``StoreUnavailable`` and is
    reopened on the next call; leadership is then taken again like on a fresh start.
    """

    def __init__(self, database_url: str) -> None:
        self._dsn = libpq_dsn(database_url)
        self._conn: psycopg.Connection[Any] | None = None
        self._leader = False
        self._connection()  # fail fast on a bad URL

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._leader = False
            try:
                self._conn = psycopg.connect(
                    self._dsn, autocommit=True, application_name="souk-relay", connect_timeout=5
                )
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(f"outbox database unreachable: {exc}") from exc
        return self._conn

    def _execute(self, query: str, params: tuple[Any, ...]) -> psycopg.Cursor[Any]:
        try:
            return self._connection().execute(query, params)
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailable(f"outbox database connection lost: {exc}") from exc

    def try_acquire_leadership(self) -> bool:
        """Take the session-level relay lock; it is released when this connection closes."""
        if not self._leader or self._conn is None or self._conn.closed:
            row = self._execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK_ID,)).fetchone()
            self._leader = bool(row and row[0])
        return self._leader

    def fetch_unpublished(self, limit: int) -> list[OutboxRecord]:
        """The oldest unpublished rows, ascending id."""
        cursor = self._execute(
            "SELECT id, topic, message_key, value, headers FROM outbox "
            "WHERE published_at IS NULL ORDER BY id LIMIT %s",
            (limit,),
        )
        return [
            OutboxRecord(id=row[0], topic=row[1], key=row[2], value=bytes(row[3]), headers=row[4])
            for row in cursor.fetchall()
        ]

    def mark_published(self, ids: Sequence[int]) -> None:
        """Stamp the rows as published."""
        if ids:
            self._execute(
                "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY(%s)",
                (list(ids),),
            )

    def purge_published(self, older_than_s: float) -> int:
        """Delete published rows written more than ``older_than_s`` ago; return how many.

        By write time, not publish time: a republish must not extend a row's life past the
        consumers' inbox retention, or a second republish could be applied twice.
        """
        cursor = self._execute(
            "DELETE FROM outbox WHERE published_at IS NOT NULL "
            "AND created_at < clock_timestamp() - make_interval(secs => %s)",
            (older_than_s,),
        )
        return cursor.rowcount

    def republish(self, topics: Sequence[str], since: datetime | None = None) -> int:
        """Mark rows of ``topics`` published at or after ``since`` (default: all) unpublished.

        For a broker that lost its data (the local one keeps messages in memory): the relay
        sends them again in id order, and consumers drop what they already applied. Done as
        the relay leader, so no running relay publishes newer rows ahead of these.
        """
        if not self.try_acquire_leadership():
            raise RelayStandby(
                "a relay is running on this database: stop it, run `souk republish`, "
                "then start it again"
            )
        cursor = self._execute(
            "UPDATE outbox SET published_at = NULL WHERE published_at IS NOT NULL "
            "AND published_at >= %s AND topic = ANY(%s)",
            (since or datetime.min.replace(tzinfo=UTC), list(topics)),
        )
        return cursor.rowcount

    def close(self) -> None:
        """Close the connection, which also gives up leadership."""
        if self._conn is not None:
            self._conn.close()
        self._leader = False
