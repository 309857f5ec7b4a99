"""Sinks: idempotent Redis upserts from a changelog, and upsert-Kafka (compacted) topics.

A job writes values computed from its state (an upsert), never increments, so a job restored
from a checkpoint that replays events rewrites the same values: no double counting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pyflink.common import Types
from pyflink.datastream import MapFunction

from pipelines.common.context import JobContext
from pipelines.common.sources import quote, with_options

if TYPE_CHECKING:
    from pyflink.table import Table

#: ``(kind, row)`` → Redis commands; kind is "+I", "-U", "+U" or "-D".
RedisWriter = Callable[[str, Any], Sequence[tuple[Any, ...]]]

#: Redis hash of a job's counters (late events dropped, ...), field → value.
STATS_KEY = "souk:pipeline:{job}"


def upsert_kafka_sink(
    ctx: JobContext, table: str, topic: str, columns: str, key: Sequence[str]
) -> str:
    """Create an upsert-Kafka sink table (a compacted topic keyed by ``key``); return it."""
    options = {
        "connector": "upsert-kafka",
        "topic": topic,
        "properties.bootstrap.servers": ctx.kafka_bootstrap,
        "key.format": "json",
        "value.format": "json",
        "value.json.timestamp-format.standard": "ISO-8601",
        "key.json.timestamp-format.standard": "ISO-8601",
    }
    ctx.t_env.execute_sql(
        f"""
        CREATE TEMPORARY TABLE {table} (
          {columns},
          PRIMARY KEY ({", ".join(key)}) NOT ENFORCED
        ) WITH (
          {with_options(options)}
        )
        """
    )
    return table


_KINDS = ("+I", "-U", "+U", "-D")  # RowKind values 0..3


def _kind(row: Any) -> str:
    """The short changelog kind of a PyFlink row."""
    return _KINDS[row.get_row_kind().value]


class RedisApply(MapFunction):  # type: ignore[misc]
    """Applies each changelog row to Redis through ``writer`` (one pipeline per row)."""

    def __init__(self, redis_url: str, writer: RedisWriter) -> None:
        self.redis_url = redis_url
        self.writer = writer
        self._client: Any = None

    def open(self, runtime_context: Any) -> None:
        import redis

        self._client = redis.Redis.from_url(self.redis_url, socket_timeout=10)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def map(self, row: Any) -> bool:
        commands = self.writer(_kind(row), row)
        if commands:
            pipe = self._client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            pipe.execute()
        return False


def redis_sink(ctx: JobContext, table: Table, writer: RedisWriter, name: str) -> None:
    """Apply the changelog of ``table`` to Redis with ``writer`` (a module-level function)."""
    apply = RedisApply(ctx.redis_url, writer)
    stream = ctx.t_env.to_changelog_stream(table)
    # The map's output is always False: the filter keeps nothing, the sink only ends the graph.
    stream.map(apply, output_type=Types.BOOLEAN()).name(f"redis: {name}").filter(
        lambda _: False
    ).name(f"{name} done").print()
    ctx.has_datastream = True


class StatsWriter:
    """(field, count) rows → the job's stats hash ``souk:pipeline:<job>`` (picklable)."""

    def __init__(self, job: str) -> None:
        self.key = STATS_KEY.format(job=job)

    def __call__(self, kind: str, row: Any) -> Sequence[tuple[Any, ...]]:
        if kind in ("-U", "-D"):
            return ()
        return (("HSET", self.key, row[0], int(row[1])),)


__all__ = ["STATS_KEY", "StatsWriter", "quote", "redis_sink", "upsert_kafka_sink"]
