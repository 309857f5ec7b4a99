"""The archiver: every event topic → Delta bronze tables, exactly once per event id.

source  every ``<region>.<domain>.v1`` topic of the configured regions (consumer group
        ``souk-lake-archiver``)
transform  envelope → one bronze row (the envelope's fields, the payload as JSON text, where
        it came from), partitioned by event date and region; a record that is not an
        envelope goes to ``bronze/_rejected`` with its raw bytes (nothing is lost)
sink    ``bronze/<domain>``: one insert-only MERGE per table and batch on
        (event_date, region, event_id)

Exactly once, also after SIGKILL: each commit carries, as Delta application transactions, the
last offset it archived of every topic partition in the batch (app id
``<group>/<topic>/<partition>``). A restarted archiver starts each partition after the offset
its table recorded, whatever Kafka's committed offsets say; the MERGE on the event id
absorbs the relay's at-least-once duplicates (one event published twice). Kafka offsets are
committed too, after the tables, for lag monitoring only.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa
from confluent_kafka import Consumer, Message, TopicPartition

from jobs.lake.port import TableStore
from jobs.lake.store import table_store
from jobs.lake.tables import BRONZE_KEYS, BRONZE_PARTITIONS, BRONZE_SCHEMA, bronze_table
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings, get_settings
from transactional.shared.kafka import (
    LIBRDKAFKA_LOG,
    KafkaClientSettings,
    consume_batch,
    consumer_config,
)

_LOG = logging.getLogger("souk.lake.archive")

GROUP = "souk-lake-archiver"
#: Records that are not envelopes, kept with their raw bytes.
REJECTED = "bronze/_rejected"
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("key", pa.string()),
        pa.field("value", pa.binary()),
        pa.field("error", pa.string(), nullable=False),
        pa.field("archived_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
_DECODER = msgspec.json.Decoder(Envelope)
_ENCODER = msgspec.json.Encoder()


@dataclass
class ArchiveStats:
    """What an archiver did so far."""

    batches: int = 0
    received: int = 0
    archived: int = 0
    duplicates: int = 0
    rejected: int = 0
    per_table: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def archived_topics(settings: Settings) -> list[str]:
    """The topics the archiver reads: every domain in every configured region."""
    return [
        topic_for(domain, region) for region in settings.regions for domain in REGISTRY.domains()
    ]


def domain_of(topic: str) -> str:
    """The domain of a ``<region>.<domain>.v<n>`` topic."""
    parts = topic.split(".")
    if len(parts) != 3:
        raise ValueError(f"not an event topic: {topic!r}")
    return parts[1]


def app_id(group: str, topic: str, partition: int) -> str:
    """The Delta application-transaction id of one topic partition."""
    return f"{group}/{topic}/{partition}"


def bronze_row(
    envelope: Envelope, topic: str, partition: int, offset: int, now: datetime
) -> dict[str, Any]:
    """One bronze row of an envelope."""
    occurred = envelope.occurred_at.astimezone(UTC)
    return {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "schema_version": envelope.schema_version,
        "occurred_at": occurred,
        "aggregate_type": envelope.aggregate_type,
        "aggregate_id": envelope.aggregate_id,
        "correlation_id": str(envelope.correlation_id) if envelope.correlation_id else None,
        "causation_id": str(envelope.causation_id) if envelope.causation_id else None,
        "payload": _ENCODER.encode(envelope.payload).decode(),
        "topic": topic,
        "kafka_partition": partition,
        "kafka_offset": offset,
        "archived_at": now,
        "event_date": occurred.date(),
        "region": envelope.region,
    }


class Archiver:
    """A consumer-group member that archives its partitions into the bronze tables."""

    def __init__(
        self,
        settings: Settings,
        store: TableStore,
        bootstrap: str,
        *,
        group: str = GROUP,
        batch_max: int = 5000,
        batch_wait_s: float = 1.0,
        compact_every: int = 50,
    ) -> None:
        self.settings = settings
        self.store = store
        self.group = group
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.compact_every = compact_every
        self.stats = ArchiveStats()
        self.topics = archived_topics(settings)
        kafka = KafkaClientSettings(
            bootstrap=bootstrap,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
            client_id="souk-archiver",
        )
        self.consumer = Consumer(consumer_config(kafka, group), logger=LIBRDKAFKA_LOG)
        self._commits: dict[str, int] = defaultdict(int)
        self.assigned = threading.Event()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Start each partition after what its table recorded (the lake is the truth).
        for tp in partitions:
            ids = [app_id(self.group, tp.topic, tp.partition)]
            done = [
                self.store.offsets(table, ids).get(ids[0])
                for table in (bronze_table(domain_of(tp.topic)), REJECTED)
            ]
            last = max((v for v in done if v is not None), default=None)
            if last is not None:
                tp.offset = last + 1
        consumer.assign(partitions)
        self.assigned.set()

    def poll_batch(self) -> list[Message]:
        """Up to ``batch_max`` records, waiting at most ``batch_wait_s`` for them."""
        return consume_batch(
            self.consumer, max_records=self.batch_max, wait_s=self.batch_wait_s, who="archiver"
        )

    def archive(self, messages: Sequence[Message]) -> int:
        """Write one batch to the bronze tables; return the events newly archived."""
        if not messages:
            return 0
        now = datetime.now(UTC)
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        rejected: list[dict[str, Any]] = []
        last: dict[str, dict[str, int]] = defaultdict(dict)  # table → app id → last offset
        rejected_last: dict[str, int] = {}
        for message in messages:
            topic, partition, offset = (
                message.topic() or "",
                message.partition() or 0,
                message.offset() or 0,
            )
            table = bronze_table(domain_of(topic))
            ident = app_id(self.group, topic, partition)
            value = message.value() or b""
            try:
                envelope = _DECODER.decode(value)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
                key = message.key()
                rejected.append(
                    {
                        "topic": topic,
                        "kafka_partition": partition,
                        "kafka_offset": offset,
                        "key": key.decode(errors="replace") if isinstance(key, bytes) else key,
                        "value": value,
                        "error": str(error)[:500],
                        "archived_at": now,
                    }
                )
                rejected_last[ident] = offset
                continue
            rows[table].append(bronze_row(envelope, topic, partition, offset, now))
            last[table][ident] = offset
        archived = 0
        for table, table_rows in rows.items():
            data = pa.Table.from_pylist(_dedupe(table_rows), schema=BRONZE_SCHEMA)
            result = self.store.merge(
                table,
                data,
                BRONZE_KEYS,
                update=False,
                partition_by=BRONZE_PARTITIONS,
                offsets=last[table],
            )
            archived += result.inserted
            self.stats.duplicates += len(table_rows) - result.inserted
            self.stats.per_table[table] += result.inserted
            self._maybe_compact(table)
        if rejected:
            self.store.append(
                REJECTED,
                pa.Table.from_pylist(rejected, schema=REJECTED_SCHEMA),
                offsets=rejected_last,
            )
            self.stats.rejected += len(rejected)
        self.stats.batches += 1
        self.stats.received += len(messages)
        self.stats.archived += archived
        self._commit_offsets(messages)
        return archived

    def _maybe_compact(self, table: str) -> None:
        # Small batches leave small files; compaction keeps reads (Spark's file list) fast.
        self._commits[table] += 1
        if self.compact_every and self._commits[table] % self.compact_every == 0:
            self.store.compact(table)

    def _commit_offsets(self, messages: Iterable[Message]) -> None:
        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            ends[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as error:  # the lake holds the truth; a lost commit is only lag
            _LOG.warning("archiver: offset commit failed: %s", error)

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None) -> ArchiveStats:
        """Archive until ``stop`` is set (or nothing arrived for ``idle_exit_s``)."""
        self.consumer.subscribe(self.topics, on_assign=self._on_assign)
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                batch = self.poll_batch()
                if batch:
                    self.archive(batch)
                    idle_since = time.monotonic()
                elif (
                    idle_exit_s is not None
                    and self.assigned.is_set()
                    and time.monotonic() - idle_since >= idle_exit_s
                ):
                    break
        finally:
            self.consumer.close()
        return self.stats


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per event id within a batch (a MERGE source must not repeat a key)."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen.setdefault(row["event_id"], row)
    return list(seen.values())


#: Partition and offset of an imported event: it never went through a topic partition.
IMPORTED = -1


def import_envelopes(store: TableStore, envelopes: Iterable[Envelope]) -> int:
    """Write events that never crossed the bus (an older platform's history) into bronze.

    Same tables, same rows and the same insert-only MERGE as the archiver: exactly once per
    event id, so an import can be re-run. The topic is the one the event would have had;
    partition and offset are ``IMPORTED``. Returns the events newly written.
    """
    now = datetime.now(UTC)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for envelope in envelopes:
        domain = REGISTRY.spec(envelope.event_type, envelope.schema_version).domain
        topic = topic_for(domain, envelope.region)
        rows[bronze_table(domain)].append(bronze_row(envelope, topic, IMPORTED, IMPORTED, now))
    written = 0
    for table, table_rows in rows.items():
        data = pa.Table.from_pylist(_dedupe(table_rows), schema=BRONZE_SCHEMA)
        written += store.merge(
            table, data, BRONZE_KEYS, update=False, partition_by=BRONZE_PARTITIONS
        ).inserted
    return written


def build_archiver(settings: Settings, **kwargs: Any) -> Archiver:
    """An archiver on the settings' broker (or the running local stack's) and lake."""
    from souk.stack.endpoints import resolve_url

    return Archiver(settings, table_store(settings), resolve_url(settings, "kafka"), **kwargs)


def archive_forever(
    settings: Settings, stop: threading.Event, retry_s: float = 5.0, **kwargs: Any
) -> None:
    """Archive until ``stop``; an error is logged and the archiver starts again (the lake's
    offsets make the restart exact)."""
    while not stop.is_set():
        try:
            build_archiver(settings, **kwargs).run(stop)
        except Exception:
            _LOG.exception("archiver failed; restarting in %.0f s", retry_s)
            stop.wait(retry_s)


def main(argv: list[str] | None = None) -> None:
    """``python -m jobs.archive [--until-idle S]``: archive until SIGTERM (or idle)."""
    parser = argparse.ArgumentParser(prog="jobs.archive", description=__doc__.splitlines()[0])
    parser.add_argument("--until-idle", type=float, default=None, help="Stop after S idle seconds.")
    parser.add_argument("--batch", type=int, default=5000, help="Records per commit at most.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    settings = get_settings()
    if args.until_idle is None:  # a service: errors restart it (the lake's offsets keep it exact)
        archive_forever(settings, stop, batch_max=args.batch)
        return
    stats = build_archiver(settings, batch_max=args.batch).run(stop, idle_exit_s=args.until_idle)
    print(
        f"archived {stats.archived} events in {stats.batches} batches "
        f"({stats.duplicates} duplicates skipped, {stats.rejected} rejected)"
    )


if __name__ == "__main__":
    main()
