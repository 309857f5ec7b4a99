"""Sinks: idempotent Redis upserts from a changelog, and upsert-Kafka (compacted) topics.

A job writes values computed from its state (an upsert), never increments, so a job restored
from a checkpoint that replays events rewrites the same values: no double counting. Redis
writes are batched in checkpointed state (one pipeline per batch, never a change lost).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyflink.common import Types
from pyflink.datastream import FlatMapFunction, KeyedProcessFunction
from pyflink.datastream.state import ListStateDescriptor

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


#: Commands wait at most this long (processing time) for a batched Redis pipeline...
REDIS_FLUSH_MS = 50
#: ...or until this many changelog rows' commands wait.
REDIS_BATCH = 500
#: Buffers per unit of parallelism: the commands of one Redis key always share a buffer
#: (order per key is kept), and the buffers spread over the sink's subtasks.
BUFFERS_PER_SUBTASK = 4


class RedisCommands(FlatMapFunction):  # type: ignore[misc]
    """A changelog row → ``(buffer, commands)`` through ``writer`` (rows without commands go).

    The buffer is a hash of the first command's key, so every change of one Redis key goes
    through the same buffer, in changelog order.
    """

    def __init__(self, writer: RedisWriter, buffers: int) -> None:
        self.writer = writer
        self.buffers = max(1, int(buffers))

    def flat_map(self, row: Any) -> Iterator[tuple[int, Sequence[tuple[Any, ...]]]]:
        commands = self.writer(_kind(row), row)
        if commands:
            yield buffer_of(commands, self.buffers), tuple(commands)


def buffer_of(commands: Sequence[tuple[Any, ...]], buffers: int) -> int:
    """The buffer of a row's ``commands``: a stable hash of the first command's key."""
    first = commands[0]
    key = first[1] if len(first) > 1 else first[0]
    return zlib.crc32(str(key).encode()) % buffers


def _buffer_key(record: tuple[int, Any]) -> int:
    return int(record[0])


class RedisApply(KeyedProcessFunction):  # type: ignore[misc]
    """Applies buffered commands to Redis in one pipeline per batch, keyed by buffer.

    Rows' commands wait in checkpointed list state at most ``REDIS_FLUSH_MS`` (or until
    ``REDIS_BATCH`` rows wait), then go in one pipeline, in arrival order. A checkpoint taken
    while commands wait holds them and the timer that writes them, so a restored job still
    writes them: no change emitted before a checkpoint is lost.
    """

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._client: Any = None
        self.pending: Any = None
        # Rows waiting per buffer since this instance started: only decides an early flush
        # (after a restore the restored timer writes what the state holds).
        self._waiting: dict[int, int] = {}

    def open(self, runtime_context: Any) -> None:
        import redis

        self._client = redis.Redis.from_url(self.redis_url, socket_timeout=10)
        self.pending = runtime_context.get_list_state(
            ListStateDescriptor("redis-commands", Types.PICKLED_BYTE_ARRAY())
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def process_element(self, value: Any, ctx: Any) -> Iterator[bool]:
        buffer = int(value[0])
        self.pending.add(value[1])
        waiting = self._waiting.get(buffer, 0) + 1
        if waiting >= REDIS_BATCH:
            self._flush(buffer)
        else:
            if waiting == 1:
                service = ctx.timer_service()
                service.register_processing_time_timer(
                    service.current_processing_time() + REDIS_FLUSH_MS
                )
            self._waiting[buffer] = waiting
        yield from ()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[bool]:
        self._flush(int(ctx.get_current_key()))
        yield from ()

    def _flush(self, buffer: int) -> None:
        apply_commands(self._client, list(self.pending.get() or ()))
        self.pending.clear()
        self._waiting.pop(buffer, None)


def apply_commands(client: Any, rows: Sequence[Sequence[tuple[Any, ...]]]) -> None:
    """Send the commands of ``rows`` in one pipeline (no transaction), in order."""
    if not rows:
        return
    pipe = client.pipeline(transaction=False)
    for commands in rows:
        for command in commands:
            pipe.execute_command(*command)
    pipe.execute()


def redis_sink(ctx: JobContext, table: Table, writer: RedisWriter, name: str) -> None:
    """Apply the changelog of ``table`` to Redis with ``writer`` (a module-level function).

    Writes are batched per buffer (``RedisApply``): one pipeline per ``REDIS_FLUSH_MS`` or
    ``REDIS_BATCH`` rows instead of one round trip per row.
    """
    buffers = BUFFERS_PER_SUBTASK * max(1, ctx.settings.flink_parallelism)
    stream = ctx.t_env.to_changelog_stream(table)
    pickled = Types.PICKLED_BYTE_ARRAY()
    (
        stream.flat_map(RedisCommands(writer, buffers), output_type=pickled)
        .name(f"{name}: redis commands")
        .key_by(_buffer_key, key_type=Types.INT())
        .process(RedisApply(ctx.redis_url), output_type=Types.BOOLEAN())
        .name(f"redis: {name}")
        .print()  # prints nothing (the function emits nothing): the graph's end
    )
    ctx.has_datastream = True


class StatsWriter:
    """(field, count) rows → the job's stats hash ``souk:pipeline:<job>`` (picklable)."""

    def __init__(self, job: str) -> None:
        self.key = STATS_KEY.format(job=job)

    def __call__(self, kind: str, row: Any) -> Sequence[tuple[Any, ...]]:
        if kind in ("-U", "-D"):
            return ()
        return (("HSET", self.key, row[0], int(row[1])),)


__all__ = [
    "STATS_KEY",
    "RedisApply",
    "RedisCommands",
    "StatsWriter",
    "apply_commands",
    "buffer_of",
    "quote",
    "redis_sink",
    "upsert_kafka_sink",
]
