"""The transactional outbox: events are written in the same database transaction as the change.

Writers take a per-aggregate advisory lock before inserting, so two transactions that emit events
for one aggregate get outbox ids in their commit order. The relay publishes in id order, which is
therefore commit order per aggregate.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, InvalidPayload, SchemaRegistry
from transactional.shared.db import sql

# Every row of a unit of work in one statement, in the order given (ids follow it). The
# per-aggregate locks come from a subquery the sorted rows wait for, so they are all held
# before the first id is drawn, and until the commit.
_INSERT_SQL = (
    "INSERT INTO outbox (event_id, event_type, topic, message_key, value, headers) "
    "SELECT e, t, p, k, v, h FROM unnest(CAST(:event_ids AS uuid[]), "
    "CAST(:event_types AS text[]), CAST(:topics AS text[]), CAST(:message_keys AS text[]), "
    "CAST(:values AS bytea[]), CAST(:headers AS jsonb[])) "
    "WITH ORDINALITY AS r(e, t, p, k, v, h, n), "
    "(SELECT count(pg_advisory_xact_lock(hashtextextended(x, 0))) AS held "
    "FROM (SELECT DISTINCT unnest(CAST(:keys AS text[])) AS x ORDER BY 1) AS keys) AS locks "
    "ORDER BY n"
)


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
    """Validates events against the schema registry and writes them into the outbox table.

    Everything the relay could never deliver is refused here, inside the writer's
    transaction, so a bad event fails its command instead of blocking the relay later.
    """

    def __init__(
        self,
        *,
        regions: Collection[str],
        max_message_bytes: int = 900_000,
        registry: SchemaRegistry = REGISTRY,
    ) -> None:
        self._registry = registry
        self._regions = frozenset(regions)
        self._max_message_bytes = max_message_bytes

    def rows(self, envelopes: Sequence[Envelope]) -> list[dict[str, Any]]:
        """Validate and encode envelopes into outbox rows (raises ``SchemaError`` if invalid)."""
        rows = []
        for envelope in envelopes:
            if envelope.region not in self._regions:
                raise InvalidPayload(
                    f"{envelope.event_type}: region {envelope.region!r} is not served here "
                    f"(SOUK_REGIONS={','.join(sorted(self._regions))})",
                    event_type=envelope.event_type,
                )
            value = self._registry.encode(envelope)
            headers = json.dumps(message_headers(envelope))
            size = len(value) + len(envelope.aggregate_id) + len(headers)
            if size > self._max_message_bytes:
                raise InvalidPayload(
                    f"{envelope.event_type}: {size:,} bytes is over the "
                    f"{self._max_message_bytes:,}-byte message limit "
                    "(SOUK_KAFKA_MAX_MESSAGE_BYTES): keep large content out of events",
                    event_type=envelope.event_type,
                )
            rows.append(
                {
                    "event_id": envelope.event_id,
                    "event_type": envelope.event_type,
                    "topic": self._registry.topic(envelope),
                    "message_key": envelope.aggregate_id,
                    "value": value,
                    "headers": headers,
                }
            )
        return rows

    @staticmethod
    def _lock_keys(rows: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
        return {"keys": [f"{row['topic']}|{row['message_key']}" for row in rows]}

    @staticmethod
    def _columns(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
        return {
            "event_ids": [row["event_id"] for row in rows],
            "event_types": [row["event_type"] for row in rows],
            "topics": [row["topic"] for row in rows],
            "message_keys": [row["message_key"] for row in rows],
            "values": [row["value"] for row in rows],
            "headers": [row["headers"] for row in rows],
        }

    def statements(self, envelopes: Sequence[Envelope]) -> list[tuple[str, dict[str, Any]]]:
        """The lock and insert statements (``:name`` SQL, parameters) that write ``envelopes``,
        for callers that send statements themselves (the pipelined unit of work)."""
        if not envelopes:
            return []
        rows = self.rows(envelopes)
        return [(_INSERT_SQL, {**self._lock_keys(rows), **self._columns(rows)})]

    def add(self, connection: Connection, envelopes: Sequence[Envelope]) -> None:
        """Write events inside the caller's open transaction (all of a unit of work at once)."""
        for statement, params in self.statements(envelopes):
            connection.execute(sql(statement), params)
