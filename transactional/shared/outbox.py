"""The transactional outbox: events are written in the same database transaction as the change.

Writers take a per-aggregate advisory lock before inserting, so two transactions that emit events
for one aggregate get outbox ids in their commit order. The relay publishes in id order, which is
therefore commit order per aggregate.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from sqlalchemy import Connection, text

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, SchemaRegistry, topic_for
from transactional.shared.db import libpq_dsn
from transactional.shared.errors import StoreUnavailable
from transactional.shared.ports import OutboxRecord

if TYPE_CHECKING:  # only for annotations: the async path needs greenlet at run time
    from sqlalchemy.ext.asyncio import AsyncConnection

_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
    "FROM (SELECT DISTINCT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS keys"
)
_INSERT = text(
    "INSERT INTO outbox (event_id, event_type, topic, message_key, value, headers) "
    "VALUES (:event_id, :event_type, :topic, :message_key, :value, CAST(:headers AS jsonb))"
)
# Relay leadership: one active relay per database, the others wait on this lock.
RELAY_LOCK_ID = 727002


def message_headers(envelope: Envelope) -> dict[str, str]:
    """Kafka headers that let consumers route and trace without parsing the value."""
    headers = {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "schema_version": str(envelope.schema_version),
        "aggregate_type": envelope.aggregate_type,
        "region": envelope.region,
        "content-type": "application/json",
    }
    if envelope.correlation_id is not None:
        headers["correlation_id"] = str(envelope.correlation_id)
    return headers


class Outbox:
    """Validates events against the schema registry and writes them into the outbox table."""

    def __init__(self, registry: SchemaRegistry = REGISTRY) -> None:
        self._registry = registry

    def rows(self, envelopes: Sequence[Envelope]) -> list[dict[str, Any]]:
        """Validate and encode envelopes into outbox rows (raises ``SchemaError`` if invalid)."""
        rows = []
        for envelope in envelopes:
            spec = self._registry.spec(envelope.event_type)
            rows.append(
                {
                    "event_id": envelope.event_id,
                    "event_type": envelope.event_type,
                    "topic": topic_for(spec.domain, envelope.region),
                    "message_key": envelope.aggregate_id,
                    "value": self._registry.encode(envelope),
                    "headers": json.dumps(message_headers(envelope)),
                }
            )
        return rows

    @staticmethod
    def _lock_keys(rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
        return {"keys": [f"{row['topic']}|{row['message_key']}" for row in rows]}

    def add(self, connection: Connection, envelopes: Sequence[Envelope]) -> None:
        """Write events inside the caller's open transaction (all of a unit of work at once)."""
        if not envelopes:
            return
        rows = self.rows(envelopes)
        connection.execute(_LOCK_KEYS, self._lock_keys(rows))
        connection.execute(_INSERT, rows)

    async def add_async(self, connection: AsyncConnection, envelopes: Sequence[Envelope]) -> None:
        """The asyncio twin of :meth:`add` for async units of work."""
        if not envelopes:
            return
        rows = self.rows(envelopes)
        await connection.execute(_LOCK_KEYS, self._lock_keys(rows))
        await connection.execute(_INSERT, rows)


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
        """Delete rows published more than ``older_than_s`` ago; return how many."""
        cursor = self._execute(
            "DELETE FROM outbox WHERE published_at < clock_timestamp() - make_interval(secs => %s)",
            (older_than_s,),
        )
        return cursor.rowcount

    def close(self) -> None:
        """Close the connection, which also gives up leadership."""
        if self._conn is not None:
            self._conn.close()
        self._leader = False
