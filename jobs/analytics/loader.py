"""The analytics loader: every event topic → the ClickHouse tables, exactly once per event id.

source     every ``<region>.<domain>.v1`` topic of the configured regions (consumer group
           ``SOUK_ANALYTICS_GROUP``)
transform  ``flatten``: the records decoded with msgspec into one Arrow table per target table
           (the wide ``events`` rows plus the typed rows of each event's domain)
sink       one Arrow INSERT per table, then one INSERT into ``loader_offsets`` (the last
           offset of each topic partition in the batch, with the batch's id): the commit

Exactly once, also after SIGKILL, with no multi-table transaction in ClickHouse:

- every row carries its batch id; a batch counts only once its ``loader_offsets`` rows exist.
  On partition assignment the loader deletes the rows of those partitions written by *its own
  group's* batches that never committed (a crash between the data and the commit), then
  starts each partition right after its last committed offset, whatever Kafka's committed
  offsets say (they are only committed for lag monitoring);
- the relay is at-least-once (an event can be published twice, at two offsets): event ids
  already in ``events`` (and repeats within a batch) are skipped before inserting;
- a new, empty broker (the embedded one restarted) whose log ends before the committed offset
  restarts that partition from its beginning: the event-id check drops what is loaded.

Several groups on one store (the stack's loader, a bench, a second deployment): each event is
stored once, by whichever group loads it first (the event-id check reads every group's rows).
A batch id is its run's id (``loader_runs``: one row per group member start, written before
its first batch) times 2^31 plus a counter, so a group discards only the uncommitted batches
of its own runs and never deletes rows another group is still writing or has committed. Rows
of a group that crashed mid-batch stay until that group starts again and discards them; if it
never does, delete them by hand (``discard_uncommitted`` with that group's name). Rows written
before ``loader_runs`` existed are never discarded.

Locally the loader owns the chdb folder and serves queries on loopback
(``jobs.analytics.endpoint``); with ``SOUK_ANALYTICS_URL`` it writes to that ClickHouse.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pyarrow as pa
from confluent_kafka import Consumer, Message, TopicPartition

from jobs.analytics.flatten import Batch, Source, decode, tables
from jobs.analytics.port import AnalyticsStore
from jobs.analytics.rates import exponent, rate_table
from jobs.analytics.schema import (
    DATA_TABLES,
    OFFSETS_TABLE,
    RATES_TABLE,
    RUNS_TABLE,
    arrow_schema,
    ddl,
)
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings, get_settings
from transactional.shared.kafka import (
    LIBRDKAFKA_LOG,
    KafkaClientSettings,
    consume_batch,
    consumer_config,
)

_LOG = logging.getLogger("souk.analytics.loader")
_ENCODER = msgspec.json.Encoder()
#: Event ids per duplicate probe: they travel as one SQL literal (37 bytes each), within the
#: stores' ``max_query_size`` (``port.MAX_QUERY_SIZE``): one probe per batch.
PROBE_IDS = 200_000
#: A batch id is ``run_id * RUN_SPAN + n``: the high bits say which run (and group) wrote it.
RUN_SPAN = 2**31


@dataclass
class LoadStats:
    """What a loader did so far."""

    batches: int = 0
    received: int = 0
    loaded: int = 0
    duplicates: int = 0
    rejected: int = 0
    discarded: int = 0  # rows of uncommitted batches deleted on assignment
    per_table: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def loaded_topics(settings: Settings) -> list[str]:
    """Every domain's topic in every configured region."""
    return [topic_for(d, r) for r in settings.regions for d in REGISTRY.domains()]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _arrow(table: str, columns: dict[str, list[object]]) -> pa.Table:
    """``columns`` as an Arrow table of ``table``'s schema."""
    return pa.Table.from_pydict(columns, schema=arrow_schema(table))


def prepare(store: AnalyticsStore, settings: Settings) -> None:
    """Create the tables (idempotent) and refresh the currency rate table."""
    for statement in ddl():
        store.execute(statement)
    rates = rate_table(settings)
    every = sorted({**rates.rates, rates.base: Decimal(1)}.items())
    store.execute(f"TRUNCATE TABLE {RATES_TABLE}")
    store.insert_arrow(
        RATES_TABLE,
        _arrow(
            RATES_TABLE,
            {
                "currency": [c for c, _ in every],
                "exponent": [exponent(c) for c, _ in every],
                "rate_to_base": [float(r) for _, r in every],
                "base": [rates.base] * len(every),
            },
        ),
    )


def committed_offsets(store: AnalyticsStore, group: str) -> dict[tuple[str, int], int]:
    """The last committed offset of each topic partition (the latest commit wins)."""
    table = store.arrow(
        f"SELECT topic, kafka_partition, argMax(kafka_offset, committed_at) AS kafka_offset "
        f"FROM {OFFSETS_TABLE} WHERE group = {_quote(group)} GROUP BY topic, kafka_partition"
    )
    return {
        (row["topic"], int(row["kafka_partition"])): int(row["kafka_offset"])
        for row in table.to_pylist()
    }


def discard_uncommitted(
    store: AnalyticsStore, group: str, partitions: Iterable[tuple[str, int]]
) -> int:
    """Delete rows of these partitions from this group's batches with no commit; return how many.

    Only batches of ``group``'s runs (``loader_runs``): another group's rows, committed or
    still being written, are never touched (see the module doc).
    """
    keys = ", ".join(f"({_quote(t)}, {int(p)})" for t, p in partitions)
    if not keys:
        return 0
    deleted = 0
    runs = f"SELECT run_id FROM {RUNS_TABLE} WHERE group = {_quote(group)}"
    committed = f"SELECT batch_id FROM {OFFSETS_TABLE} WHERE group = {_quote(group)}"
    for table in DATA_TABLES:
        where = (
            f"(topic, kafka_partition) IN ({keys}) AND intDiv(batch_id, {RUN_SPAN}) IN ({runs}) "
            f"AND batch_id NOT IN ({committed})"
        )
        found = store.arrow(f"SELECT count() AS n FROM {table} WHERE {where}").to_pylist()
        n = int(found[0]["n"]) if found else 0
        if n:
            store.execute(f"ALTER TABLE {table} DELETE WHERE {where} SETTINGS mutations_sync = 2")
            deleted += n
    return deleted


class BatchWriter:
    """Writes batches of events into the store exactly once per event id (no Kafka here)."""

    def __init__(self, store: AnalyticsStore, group: str) -> None:
        self.store = store
        self.group = group
        self.per_table: dict[str, int] = defaultdict(int)
        self._run_id = 0
        self._batches = RUN_SPAN  # no run yet: the first write starts one

    def _next_batch_id(self) -> int:
        """A new batch id of this run; the run is recorded before its first batch."""
        if self._batches >= RUN_SPAN - 1:
            while True:  # 32 random bits: taken ones (another run's) are drawn again
                run_id = secrets.randbits(32)
                taken = self.store.arrow(
                    f"SELECT count() AS n FROM {RUNS_TABLE} WHERE run_id = {run_id}"
                ).to_pylist()
                if run_id and not (taken and taken[0]["n"]):
                    break
            self.store.insert_arrow(
                RUNS_TABLE,
                _arrow(
                    RUNS_TABLE,
                    {"group": [self.group], "run_id": [run_id], "started_at": [datetime.now(UTC)]},
                ),
            )
            self._run_id, self._batches = run_id, 0
        self._batches += 1
        return self._run_id * RUN_SPAN + self._batches

    def load(self, records: list[tuple[Envelope, Source]], last: dict[tuple[str, int], int]) -> int:
        """Skip events already loaded, write the rest and commit ``last``; return how many."""
        batch = decode((_ENCODER.encode(envelope), source) for envelope, source in records)
        return self.write(self.new_events(batch), last)

    def new_events(self, batch: Batch) -> Batch:
        """The events whose id is neither earlier in the batch nor loaded already."""
        first: dict[str, int] = {}
        for at, event_id in enumerate(batch.event_ids):
            first.setdefault(event_id, at)
        if not first:
            return batch
        # The day condition lets the probe use the sorting key (event_date first). The ids
        # travel as one literal split in SQL: ClickHouse parses thousands of separate literals
        # slower than it reads the column (ids are canonical UUIDs: no comma in them).
        days = ", ".join(f"toDate('{d}')" for d in batch.days())
        ids = list(first)
        loaded: set[str] = set()
        for start in range(0, len(ids), PROBE_IDS):
            chunk = _quote(",".join(ids[start : start + PROBE_IDS]))
            seen = self.store.arrow(
                f"SELECT event_id FROM events WHERE event_date IN ({days}) "
                f"AND event_id IN (SELECT arrayJoin(splitByChar(',', {chunk})))"
            )
            loaded.update(seen.column("event_id").to_pylist() if seen.num_rows else ())
        return batch.take([at for event_id, at in first.items() if event_id not in loaded])

    def write(self, batch: Batch, last: dict[tuple[str, int], int]) -> int:
        """Insert the batch's rows per table, then commit ``last`` with the batch id."""
        batch_id = self._next_batch_id()
        now = datetime.now(UTC)
        if len(batch):
            data = tables(batch, now, batch_id)
            # The wide table last: the duplicate probe reads it, so it never runs ahead of the rest.
            for table in sorted(data, key=lambda name: name == "events"):
                self.store.insert_arrow(table, data[table])
                self.per_table[table] += data[table].num_rows
        if last:
            keys = list(last)
            self.store.insert_arrow(
                OFFSETS_TABLE,
                _arrow(
                    OFFSETS_TABLE,
                    {
                        "group": [self.group] * len(keys),
                        "topic": [t for t, _ in keys],
                        "kafka_partition": [p for _, p in keys],
                        "kafka_offset": [last[k] for k in keys],
                        "batch_id": [batch_id] * len(keys),
                        "committed_at": [now] * len(keys),
                    },
                ),
            )
        return len(batch)


class Loader:
    """A consumer-group member that loads its partitions into the analytics tables."""

    def __init__(
        self,
        settings: Settings,
        store: AnalyticsStore,
        bootstrap: str,
        *,
        group: str | None = None,
        batch_max: int | None = None,
        batch_wait_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.group = group or settings.analytics_group
        self.batch_max = batch_max or settings.analytics_batch_max
        self.batch_wait_s = batch_wait_s or settings.analytics_batch_wait_s
        self.stats = LoadStats()
        self.writer = BatchWriter(store, self.group)
        self.stats.per_table = self.writer.per_table
        self.topics = loaded_topics(settings)
        kafka = KafkaClientSettings(
            bootstrap=bootstrap,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
            client_id="souk-analytics-loader",
        )
        self.consumer = Consumer(consumer_config(kafka, self.group), logger=LIBRDKAFKA_LOG)
        self.assigned = threading.Event()
        self.assigned_at = 0.0
        self._revoked: set[tuple[str, int]] = set()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        self.stats.discarded += discard_uncommitted(self.store, self.group, keys)
        done = committed_offsets(self.store, self.group)
        for tp in partitions:
            self._revoked.discard((tp.topic, tp.partition))
            last = done.get((tp.topic, tp.partition))
            if last is None:
                continue
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            if last + 1 > high:  # a new broker: its log is shorter than what we loaded
                _LOG.warning(
                    "%s[%d]: log ends at %d < %d: from the start",
                    tp.topic,
                    tp.partition,
                    high,
                    last + 1,
                )
                continue
            tp.offset = last + 1
        consumer.assign(partitions)
        self.assigned_at = time.monotonic()
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Records already fetched from a revoked partition belong to its next owner now.
        self._revoked.update((tp.topic, tp.partition) for tp in partitions)
        consumer.unassign()

    def poll_batch(self) -> list[Message]:
        """Up to ``batch_max`` records, waiting at most ``batch_wait_s`` for them."""
        batch = consume_batch(
            self.consumer,
            max_records=self.batch_max,
            wait_s=self.batch_wait_s,
            who="analytics loader",
        )
        return [m for m in batch if (m.topic(), m.partition()) not in self._revoked]

    def load(self, messages: Sequence[Message]) -> int:
        """Load one batch (exactly once per event id); return the events newly loaded."""
        if not messages:
            return 0
        records: list[tuple[bytes, Source]] = []
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            source = Source(message.topic() or "", message.partition() or 0, message.offset() or 0)
            last[(source.topic, source.partition)] = source.offset
            records.append((message.value() or b"", source))
        batch = decode(records)
        for source, error in batch.rejected:
            # Not an envelope: the lake's archiver keeps its bytes in bronze/_rejected.
            _LOG.warning(
                "%s[%d]@%d is not an envelope: %s",
                source.topic,
                source.partition,
                source.offset,
                error,
            )
        fresh = self.writer.new_events(batch)
        loaded = self.writer.write(fresh, last)
        self.stats.loaded += loaded
        self.stats.batches += 1
        self.stats.received += len(messages)
        self.stats.rejected += len(batch.rejected)
        self.stats.duplicates += len(batch) - len(fresh)
        self._commit_kafka(last)
        return loaded

    def _commit_kafka(self, last: dict[tuple[str, int], int]) -> None:
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as error:  # the store holds the truth; a lost commit is only lag
            _LOG.warning("analytics loader: offset commit failed: %s", error)

    def run(self, stop: threading.Event, *, idle_exit_s: float | None = None) -> LoadStats:
        """Load until ``stop`` is set (or nothing arrived for ``idle_exit_s``)."""
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                batch = self.poll_batch()
                if batch:
                    self.load(batch)
                    idle_since = time.monotonic()
                elif (
                    idle_exit_s is not None
                    and self.assigned.is_set()
                    # idle counts from the assignment too (a group join can take seconds)
                    and time.monotonic() - max(idle_since, self.assigned_at) >= idle_exit_s
                ):
                    break
        finally:
            self.consumer.close()
        return self.stats


def serve_and_load(
    settings: Settings,
    stop: threading.Event,
    *,
    idle_exit_s: float | None = None,
    batch_max: int | None = None,
    retry_s: float = 5.0,
) -> LoadStats:
    """Open the store (and, locally, its query endpoint) and load until ``stop``.

    A service (no ``idle_exit_s``) logs an error and starts the loader again: the committed
    offsets make the restart exact.
    """
    from jobs.analytics import open_store
    from jobs.analytics.chdb_store import ChdbStore
    from jobs.analytics.endpoint import QueryEndpoint
    from souk.stack.endpoints import resolve_url

    store = open_store(settings)
    endpoint = None
    stats = LoadStats()
    try:
        prepare(store, settings)  # before the endpoint: readers always find the tables
        if isinstance(store, ChdbStore):
            endpoint = QueryEndpoint(store, settings, settings.analytics_endpoint_port).start()
            _LOG.info("analytics endpoint on %s", endpoint.url)
        while not stop.is_set():
            try:
                loader = Loader(
                    settings, store, resolve_url(settings, "kafka"), batch_max=batch_max
                )
                stats = loader.run(stop, idle_exit_s=idle_exit_s)
                if idle_exit_s is not None:
                    break
            except Exception:
                if idle_exit_s is not None:
                    raise
                _LOG.exception("analytics loader failed; restarting in %.0f s", retry_s)
                stop.wait(retry_s)
    finally:
        if endpoint is not None:
            endpoint.stop()
        store.close()
    return stats


def main(argv: list[str] | None = None) -> None:
    """``python -m jobs.analytics.loader [--until-idle S] [--batch N]``: load until SIGTERM."""
    parser = argparse.ArgumentParser(prog="jobs.analytics.loader", description="Load analytics.")
    parser.add_argument("--until-idle", type=float, default=None, help="Stop after S idle seconds.")
    parser.add_argument("--batch", type=int, default=None, help="Records per batch at most.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stats = serve_and_load(get_settings(), stop, idle_exit_s=args.until_idle, batch_max=args.batch)
    print(
        f"loaded {stats.loaded} events in {stats.batches} batches ({stats.duplicates} "
        f"duplicates skipped, {stats.rejected} rejected, {stats.discarded} uncommitted rows "
        "discarded)"
    )


if __name__ == "__main__":
    main()
