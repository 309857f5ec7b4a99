"""Benchmark: the streaming jobs' events/s and read-model latency beside a plain Kafka consumer.

Per job (trending, inventory, fraud), on fresh topics of two random regions:

* throughput: a backlog is published first. A plain confluent-kafka consumer (one process,
  msgspec decoding, the same aggregation in Python dicts, the same read-model shape under
  ``bench:plain:<tag>:`` in Redis, or Feast entity ids ``plain:<id>``) reads it; then the job
  reads it (``pipelines.common.runner.submit``: a local Flink mini-cluster in this process's
  JVM, parallelism 1). The plain consumer's clock starts at its first record, the job's at
  its first read-model write (its startup, submit → first write, is printed apart); both stop
  when the read model reflects the end of the backlog. Both read models are then compared.
* latency: probes go out at ``--rate``/s (at most a quarter of the job's measured rate:
  near it, latency is queueing) for ``--latency-seconds``; each one's time from produce() to visible
  in each read model is recorded. Trending gets a fresh job and topics for this: after an
  hour-long window's backlog, every window holding it would fire first.

    python -m bench.streaming [--jobs trending,inventory,fraud] [--events N|job=N,...]
        [--latency-seconds 20] [--rate 200] [--json FILE]

Uses SOUK_KAFKA_BOOTSTRAP / SOUK_REDIS_URL when set, else starts the embedded broker and
Valkey in a private folder and stops them. Benchmarks print figures; they assert nothing.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import heapq
import json
import math
import multiprocessing
import os
import random
import secrets
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, cast

import msgspec
import psutil
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.table import Table

from bench.cpu import listening_pid, tree_cpu_s
from bench.stats import percentile
from pipelines import fraud_rules as fr
from pipelines.common.job import Job
from pipelines.common.runner import Servers
from pipelines.common.sinks import REDIS_FLUSH_MS
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from souk.stack import Stack
from souk.stack.homes import temporary_home
from transactional.shared.kafka import create_topics

console = Console()
# Feast's Google client imports httplib2, whose pyparsing calls warn at import: noise here.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"httplib2(\..*)?")

JOBS = ("trending", "inventory", "fraud")
#: Backlog sizes: each job's phase takes a minute or two on the 2-core machine.
DEFAULT_EVENTS = {"trending": 200_000, "inventory": 100_000, "fraud": 12_000}
#: The issue's targets.
TRENDING_TARGET_PER_CORE = 20_000.0
LATENCY_TARGET_P99_MS = 2_000.0
#: What the job's environment sets (pipelines/common/environment.py): Python operators
#: hand results on at least this often.
BUNDLE_TIME_MS = 100
#: Messages the plain consumer takes per batch (one Redis pipeline / Feast write per batch).
PLAIN_BATCH = 500
#: How often the latency poller reads the read models.
POLL_S = 0.002
#: The latency run's rate is at most this share of the job's measured events/s (the
#: machine is shared: at half, the fraud job already queued behind others' load).
LATENCY_LOAD_SHARE = 0.25
#: How long probes get to become visible after the last one was produced.
SETTLE_S = 30.0
#: How long a throughput phase may take before the run gives up.
PHASE_TIMEOUT_S = 900.0
JOB, PLAIN = "job", "plain"
SIDES = (JOB, PLAIN)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BenchError(RuntimeError):
    """A phase did not complete (timeout, a failed job)."""


# --- events ----------------------------------------------------------------------------------


class Msg(NamedTuple):
    """One record to publish (``partition`` None: the key's partition)."""

    topic: str
    key: str | None
    value: bytes
    partition: int | None = None


def at_ms(ms: int) -> datetime:
    """The UTC instant ``ms`` milliseconds after the epoch."""
    return EPOCH + timedelta(milliseconds=ms)


def ms_of(moment: datetime) -> int:
    """Epoch milliseconds of ``moment`` (integer arithmetic: no float rounding)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def event(
    event_type: str,
    payload: dict[str, Any],
    region: str,
    at: datetime | None = None,
    partition: int | None = None,
) -> Msg:
    """A validated envelope on its ``<region>.<domain>.v1`` topic, keyed by aggregate id."""
    envelope = REGISTRY.new_event(event_type, payload, region=region, occurred_at=at)
    topic = topic_for(REGISTRY.spec(event_type).domain, region)
    return Msg(topic, envelope.aggregate_id, msgspec.json.encode(envelope), partition)


def eur(amount: int) -> dict[str, Any]:
    """Money in EUR cents."""
    return {"amount_minor": amount, "currency": "EUR"}


class Publisher:
    """A producer that waits out a full local queue instead of failing."""

    def __init__(self, bootstrap: str, *, linger_ms: int) -> None:
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": linger_ms,
                "queue.buffering.max.messages": 1_000_000,
                "batch.num.messages": 10_000,
                "log_level": 3,
            }
        )
        self._sent = 0

    def send(self, msg: Msg) -> None:
        """Queue one record."""
        while True:
            try:
                if msg.partition is None:
                    self.producer.produce(msg.topic, msg.value, key=msg.key)
                else:
                    self.producer.produce(
                        msg.topic, msg.value, key=msg.key, partition=msg.partition
                    )
                break
            except BufferError:
                self.producer.poll(0.05)
        self._sent += 1
        if self._sent % 1000 == 0:
            self.producer.poll(0)  # serves delivery reports so the queue drains

    def send_all(self, msgs: Iterable[Msg]) -> float:
        """Publish ``msgs`` and wait for every ack; return messages/s."""
        start = time.monotonic()
        count = 0
        for msg in msgs:
            self.send(msg)
            count += 1
        self.flush()
        return count / max(time.monotonic() - start, 1e-9)

    def flush(self) -> None:
        """Wait for every queued record's ack."""
        left = self.producer.flush(120)
        if left:
            raise BenchError(f"{left} records not acknowledged by the broker")

    def close(self) -> None:
        """Flush what is left and release the client (before the broker goes away)."""
        self.producer.flush(10)
        self.producer.close()


# --- the plain consumer (a child process) ----------------------------------------------------


@dataclass(frozen=True)
class PlainSpec:
    """What the plain consumer process needs (picklable)."""

    job: str
    bootstrap: str
    redis_url: str
    topics: tuple[str, ...]
    partitions: int
    group: str
    prefix: str
    fetch_wait_ms: int
    home: str
    trending: dict[str, int] = field(default_factory=dict)


class _StockPayload(msgspec.Struct):
    sku: str | None = None
    warehouse_id: str | None = None
    available_after: int | None = None


class _StockEvent(msgspec.Struct):
    event_type: str
    region: str
    occurred_at: str
    payload: _StockPayload


STOCK_TYPES = frozenset({"stock.reserved", "stock.released", "stock.adjusted"})


class InventoryPlain:
    """Latest ``available_after`` per (SKU, warehouse), region sums, one pipeline per batch."""

    def __init__(self, spec: PlainSpec, client: redis.Redis) -> None:
        self.prefix = spec.prefix
        self.client = client
        self.decoder = msgspec.json.Decoder(_StockEvent)
        self.stock: dict[str, dict[str, tuple[str, int, str]]] = {}
        self.dirty: set[str] = set()

    def add(self, value: bytes, topic: str, partition: int) -> None:
        """Apply one envelope."""
        envelope = self.decoder.decode(value)
        payload = envelope.payload
        if (
            envelope.event_type not in STOCK_TYPES
            or payload.sku is None
            or payload.warehouse_id is None
            or payload.available_after is None
        ):
            return
        warehouses = self.stock.setdefault(payload.sku, {})
        warehouses[payload.warehouse_id] = (
            envelope.region,
            payload.available_after,
            envelope.occurred_at,
        )
        self.dirty.add(payload.sku)

    def flush(self) -> None:
        """Write every SKU the batch changed: its warehouse fields and region sums."""
        if not self.dirty:
            return
        pipe = self.client.pipeline(transaction=False)
        for sku in self.dirty:
            fields: dict[str, Any] = {}
            regions: dict[str, int] = {}
            for warehouse, (region, available, updated) in self.stock[sku].items():
                fields[f"wh:{warehouse}"] = available
                fields[f"at:{warehouse}"] = updated
                regions[region] = regions.get(region, 0) + available
            fields.update({f"region:{region}": total for region, total in regions.items()})
            pipe.hset(f"{self.prefix}:stock:{sku}", mapping=fields)
        pipe.execute()
        self.dirty.clear()


class _TrendLine(msgspec.Struct):
    product_id: str | None = None


class _TrendPayload(msgspec.Struct):
    product_id: str | None = None
    category_id: str | None = None
    lines: list[_TrendLine] | None = None


class _TrendEvent(msgspec.Struct):
    event_type: str
    occurred_at: datetime
    region: str
    payload: _TrendPayload


CATALOG_TYPES = frozenset({"product.created", "product.updated"})
UNKNOWN = "unknown"


class TrendingPlain:
    """Weighted signals in panes of one slide; a window is the running sum of its panes.

    As in the job: the watermark is the smallest newest event time over every partition
    minus the out-of-orderness; a signal waits (in a heap) until the watermark passes it,
    then takes its product's category as of its event time (the temporal join) and counts
    in its pane; a window fires once the watermark passes its end and writes the top N of
    every scope. No late firing: the benchmark's data has no late events.
    """

    def __init__(self, spec: PlainSpec, client: redis.Redis) -> None:
        t = spec.trending
        self.slide = t["slide_ms"]
        self.size = t["size_ms"]
        self.panes_per_window = self.size // self.slide
        self.ooo = t["ooo_ms"]
        self.lateness = t["lateness_ms"]
        self.top_n = t["top_n"]
        self.ttl_s = 2 * self.size // 1000
        self.weights = {
            "product.viewed": t["weight_view"],
            "cart.item_added": t["weight_cart"],
            "order.placed": t["weight_purchase"],
        }
        self.prefix = spec.prefix
        self.client = client
        self.decoder = msgspec.json.Decoder(_TrendEvent)
        self.partitions = {(topic, p) for topic in spec.topics for p in range(spec.partitions)}
        self.newest: dict[tuple[str, int], int] = {}
        self.watermark: int | None = None
        self.versions: dict[str, list[tuple[int, str]]] = {}
        self.panes: dict[int, dict[tuple[str, str, str], int]] = {}
        self.window: dict[tuple[str, str, str], int] = {}
        self.window_end: int | None = None
        self.waiting: list[tuple[int, int, str, str, int]] = []  # (ts, seq, region, product, pts)
        self.seq = 0
        self.late = 0
        self.pipe = client.pipeline(transaction=False)
        self.writes = 0

    def add(self, value: bytes, topic: str, partition: int) -> None:
        """Apply one envelope."""
        envelope = self.decoder.decode(value)
        ts = ms_of(envelope.occurred_at)
        where = (topic, partition)
        if ts > self.newest.get(where, -(2**62)):
            self.newest[where] = ts
        kind = envelope.event_type
        payload = envelope.payload
        if kind in CATALOG_TYPES:
            if payload.product_id is not None:
                category = payload.category_id or UNKNOWN
                bisect.insort(self.versions.setdefault(payload.product_id, []), (ts, category))
            return
        points = self.weights.get(kind)
        if points is None:
            return
        # Too late: the job's filter drops these before any window (none in this data).
        if self.watermark is not None and ts < self.watermark - self.lateness:
            self.late += 1
            return
        if kind == "order.placed":
            products = [line.product_id for line in payload.lines or () if line.product_id]
        else:
            products = [payload.product_id] if payload.product_id else []
        for product in products:
            self.seq += 1
            heapq.heappush(self.waiting, (ts, self.seq, envelope.region, product, points))

    def _category(self, product: str, ts: int) -> str:
        versions = self.versions.get(product)
        if not versions:
            return UNKNOWN
        index = bisect.bisect_right(versions, (ts, "\U0010ffff")) - 1
        return versions[index][1] if index >= 0 else UNKNOWN

    def _count(self, ts: int, region: str, product: str, points: int) -> None:
        key = (region, self._category(product, ts), product)
        pane = ts // self.slide
        bucket = self.panes.setdefault(pane, {})
        bucket[key] = bucket.get(key, 0) + points
        if self.window_end is not None:
            last = self.window_end // self.slide
            if last - self.panes_per_window <= pane < last:
                self.window[key] = self.window.get(key, 0) + points

    def flush(self) -> None:
        """Move the watermark, fire the windows it passed, write them."""
        if len(self.newest) == len(self.partitions):
            self.watermark = min(self.newest.values()) - self.ooo
            waiting = self.waiting
            while waiting and waiting[0][0] <= self.watermark:
                ts, _seq, region, product, points = heapq.heappop(waiting)
                self._count(ts, region, product, points)
            self._fire_until((self.watermark + 1) // self.slide * self.slide)
        if self.writes:
            self.pipe.execute()
            self.writes = 0

    def _fire_until(self, target: int) -> None:
        if self.window_end is None:
            if not self.panes:
                return
            self.window_end = min(self.panes) * self.slide  # an empty window before any pane
        while self.window_end < target:
            if not self.window:
                # Nothing in the window: jump to the first pane ahead (or the target).
                ahead = [p for p in self.panes if p >= self.window_end // self.slide]
                if not ahead or min(ahead) * self.slide >= target:
                    self.window_end = target
                    break
                self.window_end = min(ahead) * self.slide
            end = self.window_end + self.slide
            self._merge(self.panes.get(end // self.slide - 1), 1)
            self._merge(self.panes.get(end // self.slide - 1 - self.panes_per_window), -1)
            self.window_end = end
            if self.window:
                self._emit(end)
        horizon = self.window_end // self.slide - self.panes_per_window
        for pane in [p for p in self.panes if p < horizon]:
            del self.panes[pane]

    def _merge(self, pane: dict[tuple[str, str, str], int] | None, sign: int) -> None:
        if not pane:
            return
        window = self.window
        for key, points in pane.items():
            total = window.get(key, 0) + sign * points
            if total:
                window[key] = total
            else:
                del window[key]

    def _emit(self, end: int) -> None:
        scopes: dict[str, dict[str, int]] = {}
        for (region, category, product), score in self.window.items():
            for scope in (
                "all",
                f"region:{region}",
                f"category:{category}",
                f"region:{region}:category:{category}",
            ):
                scores = scopes.setdefault(scope, {})
                scores[product] = scores.get(product, 0) + score
        latest = f"{self.prefix}:trending:latest"
        for scope, scores in scopes.items():
            top = heapq.nsmallest(self.top_n, scores.items(), key=lambda kv: (-kv[1], kv[0]))
            key = f"{self.prefix}:trending:{scope}:{end}"
            self.pipe.zadd(key, dict(top))
            self.pipe.expire(key, self.ttl_s)
            self.pipe.hset(latest, scope, str(end))
            self.writes += 3


class _FraudEnvelope(msgspec.Struct):
    event_id: str
    event_type: str
    region: str
    occurred_at: datetime
    payload: dict[str, Any]


class FraudPlain:
    """Per-entity ``fraud_rules.History`` in a dict; the job's features and rules per order;
    each batch's newest row per entity pushed to Feast (one write per view), ids ``plain:…``."""

    def __init__(self, spec: PlainSpec, client: redis.Redis) -> None:
        from features.store import feature_store

        settings = Settings(_env_file=None, home=Path(spec.home))  # type: ignore[call-arg]
        self.store = feature_store(settings, spec.redis_url)
        # As the job's store: the newest computed value always lands (pipelines/fraud.py).
        self.store.config.online_store.skip_dedup = True
        self.decoder = msgspec.json.Decoder(_FraudEnvelope)
        self.history: dict[tuple[str, str], fr.History] = {}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.alerts = 0

    def add(self, value: bytes, topic: str, partition: int) -> None:
        """Apply one envelope."""
        envelope = self.decoder.decode(value)
        at = ms_of(envelope.occurred_at)
        if envelope.event_type == "user.registered":
            customer = str(envelope.payload["customer_id"])
            state = self.history.setdefault((fr.CUSTOMER, customer), fr.History())
            # A registration read after the customer's orders changes their row (as in
            # the job): account age, region flags.
            if state.register(fr.account_of(envelope.payload, at)):
                self._row(fr.CUSTOMER, customer, state)
            return
        if envelope.event_type != "checkout.started":
            return
        order = fr.order_of(envelope.payload, at, envelope.region, envelope.event_id)
        fired: list[str] = []
        for kind, entity in order.entities():
            state = self.history.setdefault((kind, entity), fr.History())
            if not state.add(order):
                continue
            self._row(kind, entity, state)
            if kind in fr.RULE_ENTITIES:
                # The job evaluates rules once the watermark passes the order; a plain
                # consumer does it at once (same work, no alerts published).
                fired += fr.rules(kind, fr.features(kind, entity, state, order))
                state.mark_evaluated(order)
        if fired and fr.alert_event(order, fired) is not None:
            self.alerts += 1

    def _row(self, kind: str, entity: str, state: fr.History) -> None:
        """The entity's row as of its newest order, to push with the batch."""
        latest = state.latest()
        if latest is None:
            return
        view, join_key = fr.VIEWS[kind]
        row = fr.feature_row(fr.features(kind, entity, state, latest))
        row[join_key] = f"plain:{row[join_key]}"
        self.rows.setdefault(view, {})[row[join_key]] = row

    def flush(self) -> None:
        """Push each view's newest rows of the batch."""
        from features.store import push_signals

        for view, rows in self.rows.items():
            if rows:
                push_signals(self.store, view, list(rows.values()))
        self.rows.clear()


PLAIN_AGGREGATORS: dict[str, Callable[[PlainSpec, redis.Redis], Any]] = {
    "inventory": InventoryPlain,
    "trending": TrendingPlain,
    "fraud": FraudPlain,
}


def plain_main(spec: PlainSpec, stop: Any, first_read: Any) -> None:
    """The plain consumer process: read from the start, aggregate, write until ``stop``.

    ``first_read`` gets the monotonic time (system-wide on Linux) of the first record read:
    the plain consumer's clock starts there, after its start-up and group join.
    """
    client = redis.Redis.from_url(spec.redis_url, decode_responses=True)
    aggregator = PLAIN_AGGREGATORS[spec.job](spec, client)
    consumer = Consumer(
        {
            "bootstrap.servers": spec.bootstrap,
            "group.id": spec.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            # The same fetch wait as the job's source (Tansu answers a fetch only when it ends).
            "fetch.wait.max.ms": spec.fetch_wait_ms,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe(list(spec.topics))
    try:
        while not stop.is_set():
            # What is already fetched, without waiting; else wait for one record.
            batch = consumer.consume(PLAIN_BATCH, 0)
            if not batch:
                first = consumer.poll(0.1)
                if first is None:
                    continue
                batch = [first, *consumer.consume(PLAIN_BATCH - 1, 0)]
            if not first_read.value:
                first_read.value = time.monotonic()
            for message in batch:
                value = message.value()
                if message.error() is not None or value is None:
                    continue
                aggregator.add(value, message.topic(), message.partition())
            aggregator.flush()
    finally:
        consumer.close()
        client.close()


class PlainProcess:
    """The plain consumer running in its own process."""

    def __init__(self, spec: PlainSpec) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with a JVM
        self.stop_event = context.Event()
        self.first_read = context.Value("d", 0.0)
        self.process = context.Process(
            target=plain_main,
            args=(spec, self.stop_event, self.first_read),
            name=f"plain-{spec.job}",
        )
        self.process.start()

    @property
    def pid(self) -> int:
        """The process id."""
        return int(self.process.pid or 0)

    def check(self) -> None:
        """Raise if the process died."""
        if not self.process.is_alive():
            raise BenchError(f"the plain consumer exited ({self.process.exitcode})")

    def stop(self) -> None:
        """Stop it (terminate if it does not stop in time)."""
        self.stop_event.set()
        self.process.join(15)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)


# --- scenarios --------------------------------------------------------------------------------


class Scenario:
    """One job's benchmark: its backlog, how to see its read model (job's and plain's), probes."""

    name: ClassVar[str] = ""
    #: Latency is measured on a fresh job and topics instead of after the backlog.
    separate_latency_run: ClassVar[bool] = False

    def __init__(
        self, settings: Settings, events: int, client: redis.Redis, tag: str, rng: random.Random
    ) -> None:
        self.settings = settings
        self.events = events
        self.redis = client
        self.tag = tag
        self.rng = rng
        self.regions = list(settings.regions)
        self.partitions = settings.kafka_partitions
        self.prefix = f"bench:plain:{tag}"

    @property
    def job(self) -> Job:
        """The job under test."""
        raise NotImplementedError

    def source_topics(self) -> list[str]:
        """The job's source topics."""
        return [topic_for(d, r) for d in self.job.source_domains for r in self.regions]

    def other_topics(self) -> list[str]:
        """Topics the job writes per region (created up front)."""
        return []

    def prepare(self) -> None:
        """Anything the read models need before either side starts."""

    def backlog(self) -> list[Msg]:
        """The events published before anything consumes."""
        raise NotImplementedError

    def finish(self) -> list[Msg]:
        """Published after the backlog: what marks its end in the read model."""
        raise NotImplementedError

    def skipped(self) -> int:
        """Messages the job reads before its first read-model write can appear."""
        return 0

    def first_output(self, side: str) -> bool:
        """Whether ``side``'s read model shows its first write."""
        raise NotImplementedError

    def done(self, side: str) -> bool:
        """Whether ``side``'s read model reflects the end of the backlog."""
        raise NotImplementedError

    def ingested(self, side: str) -> bool | None:
        """Whether ``side`` has read the whole backlog, when that shows apart from done."""
        return None

    def agree(self) -> tuple[int, int]:
        """(differing, compared) read-model entries, job against plain."""
        raise NotImplementedError

    def probe(self, i: int) -> tuple[list[Msg], int | None]:
        """The records of latency step ``i``, and the probe id they complete (if any)."""
        raise NotImplementedError

    def visible(self, side: str, probes: list[int]) -> list[int]:
        """Which of ``probes`` ``side``'s read model shows."""
        raise NotImplementedError

    def latency_meaning(self) -> str:
        """What one latency sample measures."""
        return "event produced → read model updated"

    def cleanup(self) -> None:
        """Delete the plain consumer's keys (subclasses add the job's)."""
        self._delete(self.redis.scan_iter(match=f"{self.prefix}:*", count=1000))

    def _delete(self, keys: Iterable[Any]) -> None:
        batch: list[Any] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= 1000:
                self.redis.unlink(*batch)
                batch.clear()
        if batch:
            self.redis.unlink(*batch)


# inventory ------------------------------------------------------------------------------------


class InventoryScenario(Scenario):
    """Stock movements of many SKUs; sentinels per partition mark the end."""

    name = "inventory"
    PROBE_SKUS = 8

    def __init__(
        self, settings: Settings, events: int, client: redis.Redis, tag: str, rng: random.Random
    ) -> None:
        super().__init__(settings, events, client, tag, rng)
        self.skus = [f"sku-{tag}-{i:05d}" for i in range(max(10, min(2000, events // 50)))]
        self.warehouses = {r: [f"wh-{r}-{j}" for j in range(3)] for r in self.regions}
        spots = [(r, p) for r in self.regions for p in range(self.partitions)]
        self.starters = [f"start-{tag}-{r}-{p}" for r, p in spots]
        self.sentinels = [f"end-{tag}-{r}-{p}" for r, p in spots]
        self.probe_skus = [f"probe-{tag}-{j}" for j in range(self.PROBE_SKUS)]
        self.probes: dict[int, tuple[int, int]] = {}  # probe → (probe SKU index, value)

    @property
    def job(self) -> Job:
        """The inventory job."""
        from pipelines.inventory import JOB as INVENTORY

        return INVENTORY

    def key(self, side: str, sku: str) -> str:
        """``side``'s Redis hash of ``sku``."""
        from pipelines.inventory import stock_key

        return stock_key(sku) if side == JOB else f"{self.prefix}:stock:{sku}"

    @staticmethod
    def adjusted(
        region: str, sku: str, warehouse: str, available: int, partition: int | None = None
    ) -> Msg:
        """A receipt leaving ``available`` units."""
        payload = {
            "sku": sku,
            "warehouse_id": warehouse,
            "delta": 1,
            "on_hand_after": available,
            "available_after": available,
            "reason": "receipt",
        }
        return event("stock.adjusted", payload, region, partition=partition)

    def backlog(self) -> list[Msg]:
        """Starters first in every partition, then random holds, releases and receipts."""
        rng = self.rng
        msgs = [
            self.adjusted(r, self.starters[i], "wh-start", 1, partition=p)
            for i, (r, p) in enumerate((r, p) for r in self.regions for p in range(self.partitions))
        ]
        for i in range(self.events - len(msgs)):
            sku = rng.choice(self.skus)
            region = rng.choice(self.regions)
            warehouse = rng.choice(self.warehouses[region])
            available = rng.randrange(0, 1000)
            pick = rng.random()
            if pick < 0.5:
                payload: dict[str, Any] = {
                    "reservation_id": f"res_{self.tag}_{i}",
                    "sku": sku,
                    "warehouse_id": warehouse,
                    "quantity": 1 + i % 3,
                    "checkout_id": f"chk_{self.tag}_{i}",
                    "expires_at": "2030-01-01T00:00:00Z",
                    "available_after": available,
                }
                msgs.append(event("stock.reserved", payload, region))
            elif pick < 0.7:
                payload = {
                    "reservation_id": f"res_{self.tag}_{i}",
                    "sku": sku,
                    "warehouse_id": warehouse,
                    "quantity": 1 + i % 3,
                    "reason": "payment_failed",
                    "available_after": available,
                }
                msgs.append(event("stock.released", payload, region))
            else:
                msgs.append(self.adjusted(region, sku, warehouse, available))
        return msgs

    def finish(self) -> list[Msg]:
        """One sentinel receipt at the end of every partition."""
        spots = [(r, p) for r in self.regions for p in range(self.partitions)]
        return [
            self.adjusted(r, self.sentinels[i], "wh-end", 1, partition=p)
            for i, (r, p) in enumerate(spots)
        ]

    def first_output(self, side: str) -> bool:
        """Any starter's hash exists."""
        return bool(self.redis.exists(*(self.key(side, s) for s in self.starters)))

    def done(self, side: str) -> bool:
        """Every sentinel's warehouse and region fields are written.

        Both: the job writes them from two operators (two Redis sinks), each in its
        partitions' order but not in step with the other.
        """
        pipe = self.redis.pipeline(transaction=False)
        for i, sku in enumerate(self.sentinels):
            region = self.regions[i // self.partitions]
            pipe.hmget(self.key(side, sku), ["wh:wh-end", f"region:{region}"])
        return all(values == ["1", "1"] for values in pipe.execute())

    def agree(self) -> tuple[int, int]:
        """Warehouse and region fields of every SKU, job against plain."""
        pipe = self.redis.pipeline(transaction=False)
        for sku in self.skus:
            pipe.hgetall(self.key(JOB, sku))
            pipe.hgetall(self.key(PLAIN, sku))
        values = pipe.execute()
        differing = 0
        for job_hash, plain_hash in zip(values[::2], values[1::2], strict=True):
            keep = ("wh:", "region:")
            job_view = {k: v for k, v in job_hash.items() if k.startswith(keep)}
            plain_view = {k: v for k, v in plain_hash.items() if k.startswith(keep)}
            differing += job_view != plain_view
        return differing, len(self.skus)

    def probe(self, i: int) -> tuple[list[Msg], int | None]:
        """Probe ``i`` sets a value no earlier probe of its SKU had."""
        index = i % self.PROBE_SKUS
        value = i + 1
        self.probes[i] = (index, value)
        region = self.regions[0]
        return [self.adjusted(region, self.probe_skus[index], "wh-probe", value)], i

    def visible(self, side: str, probes: list[int]) -> list[int]:
        """Probes whose SKU field holds their value or a later one (values only grow)."""
        pipe = self.redis.pipeline(transaction=False)
        for sku in self.probe_skus:
            pipe.hget(self.key(side, sku), "wh:wh-probe")
        current = [int(v) if v is not None else 0 for v in pipe.execute()]
        return [i for i in probes if current[self.probes[i][0]] >= self.probes[i][1]]

    def latency_meaning(self) -> str:
        """What one sample is."""
        return "stock event produced → its SKU's Redis hash field updated"

    def cleanup(self) -> None:
        """The job's SKU hashes and the plain ones."""
        skus = [*self.skus, *self.starters, *self.sentinels, *self.probe_skus]
        self._delete(self.key(JOB, sku) for sku in skus)
        super().cleanup()


# trending -------------------------------------------------------------------------------------


#: Event types a trending source reads but does not score, per domain (they move watermarks).
MARKER_TYPES = {
    "behaviour": "search.performed",
    "carts": "cart.item_removed",
    "orders": "order.paid",
    "catalog": "product.price_changed",
}
MARKER_PAYLOADS: dict[str, dict[str, Any]] = {
    "behaviour": {
        "search_id": "srch-m",
        "session_id": "ses-m",
        "query": "marker",
        "result_count": 0,
    },
    "carts": {
        "cart_id": "crt-m",
        "session_id": "ses-m",
        "sku": "sku-m",
        "product_id": "prd-m",
        "quantity": 1,
    },
    "orders": {
        "order_id": "ord-m",
        "customer_id": "cus-m",
        "payment_id": "pay-m",
        "amount": eur(1),
        "method": "card",
    },
    "catalog": {
        "product_id": "prd-m",
        "sku": "sku-m",
        "seller_id": "sel-1",
        "old_price": eur(1),
        "new_price": eur(2),
    },
}


class TrendingScenario(Scenario):
    """Views, cart adds and orders over skewed product popularity, in event-time order.

    The backlog is traffic at the target rate (DENSITY events per second of event time), so a
    window fires as often per event as it would in production at that rate. Markers go to
    every partition of every source topic every MARKER_MS of event time, so no partition is
    ever idle (the idle timeout is set long, as in the job's tests) and the watermark moves.
    The end of the backlog is the ranking of the first window after its last event (its top N
    is known here). With ``events`` 0 there is only the prologue: a run for latency alone.
    """

    name = "trending"
    # After the backlog, every window holding it (an hour's worth) would fire before the
    # first latency window: a flush that is no part of a window close's latency.
    separate_latency_run = True
    #: Events per second of event time in the backlog: the target rate.
    DENSITY = 20_000
    MARKER_MS = 2_000
    LATENCY_PRODUCTS = 50
    #: Windows closed per second of the latency phase (each one sample).
    CLOSES_PER_S = 2

    def __init__(
        self, settings: Settings, events: int, client: redis.Redis, tag: str, rng: random.Random
    ) -> None:
        super().__init__(settings, events, client, tag, rng)
        self.slide = settings.trending_slide_s * 1000
        self.size = settings.trending_window_s * 1000
        self.ooo = round(settings.stream_out_of_orderness_s * 1000)
        self.top_n = settings.trending_top_n
        self.weights = {
            "view": settings.trending_weight_view,
            "cart": settings.trending_weight_cart,
            "purchase": settings.trending_weight_purchase,
        }
        count = max(20, min(2000, events // 100))
        self.products = [f"prd-{tag}-{i:05d}" for i in range(count)]
        self.categories = [f"cat-{tag}-{j:02d}" for j in range(20)]
        self.category = {p: self.categories[i % 20] for i, p in enumerate(self.products)}
        # Zipf-like popularity: a clear top N, as in a real shop.
        self.popularity = list(_accumulate(1 / (i + 1) ** 0.9 for i in range(count)))
        # Synthetic event times in 2020 (past: never the real latest window): a prologue
        # window ending at first_end, then the backlog from t0.
        base = ms_of(datetime(2020, 1, 1, tzinfo=UTC))
        aligned = base + secrets.randbelow(100_000) * self.slide
        self.first_end = aligned + self.slide
        self.t0 = self.first_end + self.ooo + 1_000
        self.signals: list[tuple[int, str, str, int]] = []  # (ts, region, product, points)
        self._skipped = 0
        self.final_end = 0
        self.final_expected: dict[str, list[tuple[str, int]]] = {}
        self.lat_origin = 0
        self.markers_per_set = len(self.job.source_domains) * len(self.regions) * self.partitions
        self.lat_counts: dict[int, dict[str, int]] = {}
        self.lat_expected: dict[int, list[tuple[str, int]]] = {}
        self.lat_products = [f"prd-{tag}-lat-{i:02d}" for i in range(self.LATENCY_PRODUCTS)]
        self._rate = 200
        self.lat_popularity = list(_accumulate(1 / (i + 1) for i in range(self.LATENCY_PRODUCTS)))

    @property
    def job(self) -> Job:
        """The trending job."""
        from pipelines.trending import JOB as TRENDING

        return TRENDING

    def markers(self, ts: int) -> list[Msg]:
        """A marker at ``ts`` to every partition of every source topic."""
        msgs = []
        for domain in self.job.source_domains:
            for region in self.regions:
                template = event(MARKER_TYPES[domain], MARKER_PAYLOADS[domain], region, at_ms(ts))
                msgs += [template._replace(partition=p) for p in range(self.partitions)]
        return msgs

    def backlog(self) -> list[Msg]:
        """Catalog (2 h before), a prologue window, then signals with markers every MARKER_MS.

        The prologue (one view, then markers past its window to every partition) fires a
        window as soon as the job has read the head of every partition: that first write
        starts the job's clock, as the first record read starts the plain consumer's.
        """
        rng = self.rng
        msgs = [
            event(
                "product.created",
                {
                    "product_id": product,
                    "seller_id": "sel-1",
                    "product_version": 1,
                    "title": f"Product {product}",
                    "category_id": self.category[product],
                    "price": eur(1000),
                },
                self.regions[i % len(self.regions)],
                at_ms(self.t0 - 7_200_000),
            )
            for i, product in enumerate(self.products)
        ]
        prologue = f"prd-{self.tag}-prologue"
        msgs.append(self.view(self.regions[0], self.first_end - self.slide, prologue, "ses-0"))
        self.signals.append(
            (self.first_end - self.slide, self.regions[0], prologue, self.weights["view"])
        )
        msgs += self.markers(self.first_end + self.ooo + 500)
        self._skipped = len(msgs)
        if not self.events:  # a latency run: the prologue says the job is up
            self.final_end = self.first_end
            self.lat_origin = self.first_end + self.size
            return msgs[-self.markers_per_set - 1 :]
        wanted = max(100, self.events - len(msgs))
        span = wanted * 1000 // self.DENSITY
        signals = max(100, wanted - (span // self.MARKER_MS + 1) * self.markers_per_set)
        step = 1000 / self.DENSITY
        next_marker = self.t0
        for i in range(signals):
            ts = self.t0 + int(i * step)
            if ts >= next_marker:
                msgs += self.markers(ts)
                next_marker += self.MARKER_MS
            region = rng.choice(self.regions)
            product = self._pick(self.products, self.popularity)
            pick = rng.random()
            if pick < 0.8:
                msgs.append(self.view(region, ts, product, f"ses-{self.tag}-{i % 5000}"))
                self.signals.append((ts, region, product, self.weights["view"]))
            elif pick < 0.95:
                msgs.append(self.cart_add(region, ts, product, i))
                self.signals.append((ts, region, product, self.weights["cart"]))
            else:
                lines = list(
                    dict.fromkeys(
                        [
                            product,
                            *(
                                self._pick(self.products, self.popularity)
                                for _ in range(rng.randrange(3))
                            ),
                        ]
                    )
                )
                msgs.append(self.order(region, ts, lines, i))
                self.signals += [(ts, region, p, self.weights["purchase"]) for p in lines]
        last = self.signals[-1][0]
        self.final_end = (last // self.slide + 1) * self.slide
        self.final_expected = self.expected(self.final_end)
        self.lat_origin = self.final_end + self.size
        return msgs

    def _pick(self, items: list[str], cumulative: list[float]) -> str:
        return self.rng.choices(items, cum_weights=cumulative)[0]

    @staticmethod
    def view(region: str, ts: int, product: str, session: str) -> Msg:
        """product.viewed."""
        payload = {"session_id": session, "product_id": product}
        return event("product.viewed", payload, region, at_ms(ts))

    def cart_add(self, region: str, ts: int, product: str, i: int) -> Msg:
        """cart.item_added."""
        payload = {
            "cart_id": f"crt-{self.tag}-{i}",
            "session_id": f"ses-{self.tag}-{i % 5000}",
            "sku": f"sku-{product}",
            "product_id": product,
            "seller_id": "sel-1",
            "quantity": 1,
            "quantity_in_cart": 1,
            "unit_price": eur(1000),
        }
        return event("cart.item_added", payload, region, at_ms(ts))

    def order(self, region: str, ts: int, products: list[str], i: int) -> Msg:
        """order.placed, one line per product."""
        items = [
            {
                "line_id": f"lin-{n}",
                "sku": f"sku-{product}",
                "product_id": product,
                "seller_id": "sel-1",
                "quantity": 1,
                "unit_price": eur(1000),
                "warehouse_id": "wh-1",
            }
            for n, product in enumerate(products)
        ]
        total = eur(1000 * len(products))
        payload = {
            "order_id": f"ord-{self.tag}-{i}",
            "customer_id": "cus-1",
            "region": region,
            "lines": items,
            "totals": {
                "subtotal": total,
                "discount": eur(0),
                "shipping": eur(0),
                "tax": eur(0),
                "grand_total": total,
            },
            "shipping_address": {"country": "DE"},
            "fulfilment_groups": [
                {
                    "group_id": "ful-1",
                    "seller_id": "sel-1",
                    "warehouse_id": "wh-1",
                    "line_ids": [item["line_id"] for item in items],
                }
            ],
            "payment_method": "card",
        }
        return event("order.placed", payload, region, at_ms(ts))

    def expected(self, end: int) -> dict[str, list[tuple[str, int]]]:
        """Every scope's top N in the backlog window ending at ``end``."""
        from pipelines.trending import category_scope, region_category_scope, region_scope

        scopes: dict[str, dict[str, int]] = {}
        for ts, region, product, points in self.signals:
            if end - self.size <= ts < end:
                category = self.category.get(product, UNKNOWN)
                for scope in (
                    "all",
                    region_scope(region),
                    category_scope(category),
                    region_category_scope(region, category),
                ):
                    scores = scopes.setdefault(scope, {})
                    scores[product] = scores.get(product, 0) + points
        return {scope: _top(scores, self.top_n) for scope, scores in scopes.items()}

    def finish(self) -> list[Msg]:
        """Markers that fire exactly the first window after the last event."""
        if not self.events:
            return []
        return self.markers(self.final_end + self.ooo + 500)

    def skipped(self) -> int:
        """Messages up to the prologue's markers (read before the job's first write)."""
        return self._skipped

    def top(self, side: str, scope: str, end: int) -> list[tuple[str, int]]:
        """``side``'s top N of ``scope`` in the window ending at ``end``."""
        from pipelines.trending import window_top

        if side == JOB:
            return window_top(self.redis, scope, end, self.top_n)
        key = f"{self.prefix}:trending:{scope}:{end}"
        members = cast(list[tuple[str, float]], self.redis.zrange(key, 0, -1, withscores=True))
        return _top({m: int(score) for m, score in members}, self.top_n)

    def first_output(self, side: str) -> bool:
        """The first window's ranking exists."""
        from pipelines.trending import window_key

        key = (
            window_key("all", self.first_end)
            if side == JOB
            else f"{self.prefix}:trending:all:{self.first_end}"
        )
        return bool(self.redis.exists(key))

    def done(self, side: str) -> bool:
        """The window after the last event holds the expected top N in every scope."""
        if not self.events:
            return self.first_output(side)
        # Scope "all" first: the cheap test while the window is still being ranked.
        if self.top(side, "all", self.final_end) != self.final_expected["all"]:
            return False
        return all(
            self.top(side, scope, self.final_end) == ranking
            for scope, ranking in self.final_expected.items()
        )

    def ingested(self, side: str) -> bool:
        """The window after the last event has its first write: all was read, ranking runs."""
        from pipelines.trending import window_key

        key = (
            window_key("all", self.final_end)
            if side == JOB
            else f"{self.prefix}:trending:all:{self.final_end}"
        )
        return bool(self.redis.exists(key))

    def scopes(self) -> list[str]:
        """Every scope of the backlog."""
        from pipelines.trending import category_scope, region_category_scope, region_scope

        found = ["all"]
        found += [region_scope(r) for r in self.regions]
        found += [category_scope(c) for c in self.categories]
        found += [region_category_scope(r, c) for r in self.regions for c in self.categories]
        return found

    def agree(self) -> tuple[int, int]:
        """Every scope's top N in the window after the last event, job against plain."""
        scopes = sorted(set(self.scopes()) | set(self.final_expected))
        differing = sum(
            self.top(JOB, s, self.final_end) != self.top(PLAIN, s, self.final_end) for s in scopes
        )
        return differing, len(scopes)

    def probe(self, i: int) -> tuple[list[Msg], int | None]:
        """A view in the current slide; after the slide's last, markers closing its window."""
        per_close = max(1, round(self._rate / self.CLOSES_PER_S))
        k, j = divmod(i, per_close)
        start = self.lat_origin + k * self.slide
        room = max(0, self.slide - self.ooo - 2_000)
        ts = start + self.ooo + 1_000 + (room * j // per_close if room else 0)
        ts = min(ts, start + self.slide - 1)
        product = self._pick(self.lat_products, self.lat_popularity)
        counts = self.lat_counts.setdefault(k, {})
        counts[product] = counts.get(product, 0) + self.weights["view"]
        msgs = [self.view(self.regions[i % len(self.regions)], ts, product, f"ses-{self.tag}-l")]
        if j < per_close - 1:
            return msgs, None
        panes = self.size // self.slide
        scores: dict[str, int] = {}
        for slide in range(k - panes + 1, k + 1):
            for name, points in self.lat_counts.get(slide, {}).items():
                scores[name] = scores.get(name, 0) + points
        self.lat_expected[k] = _top(scores, self.top_n)
        return msgs + self.markers(start + self.slide + self.ooo + 500), k

    def set_rate(self, rate: int) -> None:
        """The latency phase's event rate (views per window close follow from it)."""
        self._rate = rate

    def visible(self, side: str, probes: list[int]) -> list[int]:
        """Windows whose ranking is complete."""
        return [
            k
            for k in probes
            if self.top(side, "all", self.lat_origin + (k + 1) * self.slide) == self.lat_expected[k]
        ]

    def latency_meaning(self) -> str:
        """What one sample is."""
        return (
            "marker moving the watermark past a window end produced → that window's ranking "
            "complete in Redis (an event shows only when its window closes)"
        )

    def cleanup(self) -> None:
        """Every window key of the run's scopes, and its latest pointers."""
        from pipelines.trending import (
            LATEST_KEY,
            category_scope,
            region_category_scope,
            window_key,
        )

        scopes = [*self.scopes(), category_scope(UNKNOWN)]
        scopes += [region_category_scope(r, UNKNOWN) for r in self.regions]
        last = self.lat_origin + (max(self.lat_expected, default=0) + 2) * self.slide + self.size
        ends = range(self.first_end, last + self.slide, self.slide)
        self._delete(window_key(scope, end) for scope in scopes for end in ends)
        mine = {str(end) for end in ends}
        for scope in scopes:
            value = self.redis.hget(LATEST_KEY, scope)
            if value is not None and value in mine:
                self.redis.hdel(LATEST_KEY, scope)
        super().cleanup()


def _accumulate(values: Iterable[float]) -> Iterable[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


def _top(scores: dict[str, int], n: int) -> list[tuple[str, int]]:
    """The top ``n`` (product, score), ties to the smaller product id, as the job ranks."""
    return heapq.nsmallest(n, scores.items(), key=lambda kv: (-kv[1], kv[0]))


# fraud ----------------------------------------------------------------------------------------


CUSTOMER_VIEW = "customer_fraud_signals"


class FraudScenario(Scenario):
    """Registrations, then checkouts of returning customers over the last day.

    Customers have their own device and card and share client IPs in pairs; amounts are
    ordinary, so rules rarely fire (alerts are not what is measured). Starter checkouts lead
    every checkout partition and sentinel checkouts close it.
    """

    name = "fraud"
    COMPARED = 200

    def __init__(
        self, settings: Settings, events: int, client: redis.Redis, tag: str, rng: random.Random
    ) -> None:
        super().__init__(settings, events, client, tag, rng)
        self.base = ms_of(datetime.now(UTC).replace(microsecond=0)) - 86_400_000
        count = max(20, events // 6)
        self.customers = [f"cus_{tag}_{i:05d}" for i in range(count)]
        self.octets = f"{secrets.randbelow(250) + 1}"
        spots = [(r, p) for r in self.regions for p in range(self.partitions)]
        self.starters = [f"cus_{tag}_start_{r}_{p}" for r, p in spots]
        self.sentinels = [f"cus_{tag}_end_{r}_{p}" for r, p in spots]
        self.entities: dict[str, set[str]] = {key: set() for _view, key in fr.VIEWS.values()}
        self._store: Any = None
        self._sample: list[str] = []

    @property
    def job(self) -> Job:
        """The fraud job."""
        from pipelines.fraud import JOB as FRAUD

        return FRAUD

    def other_topics(self) -> list[str]:
        """The alert topics."""
        return [topic_for("fraud", r) for r in self.regions]

    @property
    def store(self) -> Any:
        """The Feast store the read side uses."""
        if self._store is None:
            from features.store import feature_store

            self._store = feature_store(self.settings, str(self.settings.redis_url))
        return self._store

    def prepare(self) -> None:
        """Register the feature views (the plain consumer pushes before the job applies)."""
        from features.store import apply

        apply(self.store)

    def ip(self, n: int) -> str:
        """A client IP of this run."""
        return f"10.{self.octets}.{n // 250 % 250}.{n % 250 + 1}"

    def checkout(
        self,
        name: str,
        customer: str,
        ts: int,
        amount: int,
        ip: str,
        region: str,
        partition: int | None = None,
    ) -> Msg:
        """checkout.started of one line, with the customer's own device and card."""
        device = f"dev_{customer}"
        card = f"ins_{customer}"
        for join_key, value in (
            ("customer_id", customer),
            ("device_id", device),
            ("instrument_id", card),
            ("client_ip", ip),
        ):
            self.entities[join_key].add(value)
        payload = {
            "checkout_id": f"chk_{self.tag}_{name}",
            "cart_id": f"crt_{self.tag}_{name}",
            "customer_id": customer,
            "lines": [
                {
                    "line_id": "ln_1",
                    "sku": "SKU-1",
                    "product_id": "prd_1",
                    "seller_id": "sel_1",
                    "quantity": 1,
                    "unit_price": eur(amount),
                }
            ],
            "subtotal": eur(amount),
            "shipping_address": {"country": "DE"},
            "device_id": device,
            "client_ip": ip,
            "ip_region": "eu",
            "instrument_id": card,
        }
        return event("checkout.started", payload, region, at_ms(ts), partition)

    def backlog(self) -> list[Msg]:
        """Starters, registrations (30 days back), then checkouts over 23 hours."""
        rng = self.rng
        spots = [(r, p) for r in self.regions for p in range(self.partitions)]
        msgs = [
            self.checkout(f"start{i}", self.starters[i], self.base, 2000, self.ip(0), r, p)
            for i, (r, p) in enumerate(spots)
        ]
        msgs += [
            self.registered(customer, self.regions[i % len(self.regions)])
            for i, customer in enumerate(self.customers)
        ]
        checkouts = max(1, self.events - len(msgs))
        step = 23 * 3_600_000 // checkouts
        for i in range(checkouts):
            n = rng.randrange(len(self.customers))
            msgs.append(
                self.checkout(
                    str(i),
                    self.customers[n],
                    self.base + 1000 + i * step,
                    rng.randrange(1000, 20_000),
                    self.ip(n // 2 + 1),
                    self.regions[n % len(self.regions)],
                )
            )
        return msgs

    def registered(self, customer: str, region: str, partition: int | None = None) -> Msg:
        """user.registered 30 days before the orders, in the EU."""
        payload = {"customer_id": customer, "region": "eu", "country": "DE"}
        at = at_ms(self.base - 30 * 86_400_000)
        return event("user.registered", payload, region, at, partition)

    def finish(self) -> list[Msg]:
        """Sentinel customers: a checkout closing every checkout partition and their
        registrations closing every customers partition (the job reads both topics at its
        own pace; a sentinel's row is complete once both ends were read)."""
        spots = [(r, p) for r in self.regions for p in range(self.partitions)]
        at = self.base + 23 * 3_600_000 + 1_800_000
        return [
            *(self.registered(self.sentinels[i], r, p) for i, (r, p) in enumerate(spots)),
            *(
                self.checkout(f"end{i}", self.sentinels[i], at, 2000, self.ip(1), r, p)
                for i, (r, p) in enumerate(spots)
            ),
        ]

    def ids(self, side: str, entities: Iterable[str]) -> list[str]:
        """Entity ids as ``side`` writes them."""
        return list(entities) if side == JOB else [f"plain:{e}" for e in entities]

    def orders(self, side: str, customers: Sequence[str]) -> list[Any]:
        """orders_24h of ``customers`` in ``side``'s Feast rows (None: nothing written)."""
        from features.store import online_signals

        rows = [{"customer_id": c} for c in self.ids(side, customers)]
        return list(online_signals(self.store, rows, view=CUSTOMER_VIEW)["orders_24h"])

    def first_output(self, side: str) -> bool:
        """Any starter's features are in Feast."""
        return any(v is not None for v in self.orders(side, self.starters))

    def done(self, side: str) -> bool:
        """Every sentinel's features are in Feast, with its account (its registration read)."""
        from features.store import online_signals

        rows = [{"customer_id": c} for c in self.ids(side, self.sentinels)]
        ages = online_signals(self.store, rows, view=CUSTOMER_VIEW)["account_age_s"]
        return all(age is not None and age != fr.UNKNOWN_AGE for age in ages)

    def agree(self) -> tuple[int, int]:
        """Customer features of a sample of customers, job against plain."""
        from features.store import online_signals

        if not self._sample:
            self._sample = self.rng.sample(self.customers, min(self.COMPARED, len(self.customers)))
        sample = self._sample
        got = {
            side: online_signals(
                self.store, [{"customer_id": c} for c in self.ids(side, sample)], CUSTOMER_VIEW
            )
            for side in SIDES
        }
        names = [n for n in got[JOB] if n != "customer_id"]
        differing = 0
        for i in range(len(sample)):
            for name in names:
                a, b = got[JOB][name][i], got[PLAIN][name][i]
                same = (a is None and b is None) or (
                    a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9)
                )
                if not same:
                    differing += 1
                    break
        return differing, len(sample)

    def probe(self, i: int) -> tuple[list[Msg], int | None]:
        """A checkout of a new customer, now."""
        customer = f"cus_{self.tag}_p{i:05d}"
        now = ms_of(datetime.now(UTC))
        region = self.regions[i % len(self.regions)]
        return [self.checkout(f"p{i}", customer, now, 2000, self.ip(20_000 + i), region)], i

    def visible(self, side: str, probes: list[int]) -> list[int]:
        """Probes whose customer has features in Feast."""
        customers = [f"cus_{self.tag}_p{i:05d}" for i in probes]
        orders = self.orders(side, customers)
        return [i for i, value in zip(probes, orders, strict=True) if value is not None]

    def latency_meaning(self) -> str:
        """What one sample is."""
        return "checkout produced → its customer's features readable from Feast"

    def cleanup(self) -> None:
        """The Feast rows both sides wrote (keys derived as Feast's Redis store does)."""
        from feast.infra.online_stores.helpers import _redis_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        from features.store import ENTITY_KEY_SERIALIZATION_VERSION, PROJECT

        def keys() -> Iterable[bytes]:
            for join_key, values in self.entities.items():
                for side in SIDES:
                    for value in self.ids(side, values):
                        entity = EntityKey(
                            join_keys=[join_key], entity_values=[Value(string_val=value)]
                        )
                        yield _redis_key(PROJECT, entity, ENTITY_KEY_SERIALIZATION_VERSION)

        self._delete(keys())
        super().cleanup()


SCENARIOS: dict[str, type[Scenario]] = {
    "trending": TrendingScenario,
    "inventory": InventoryScenario,
    "fraud": FraudScenario,
}


# --- measuring --------------------------------------------------------------------------------


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    *,
    every_s: float = 0.02,
    alive: Callable[[], None] | None = None,
) -> float:
    """Poll ``check`` until true; return the monotonic() time it was first seen true."""
    deadline = time.monotonic() + timeout_s
    next_alive = 0.0
    while True:
        if check():
            return time.monotonic()
        now = time.monotonic()
        if now > deadline:
            raise BenchError(f"{what}: not reached in {timeout_s:.0f} s")
        if alive is not None and now >= next_alive:
            alive()
            next_alive = now + 1.0
        time.sleep(every_s)


def job_alive(client: Any, name: str) -> Callable[[], None]:
    """A check that raises once the Flink job has ended (it never should here)."""

    def check() -> None:
        status = client.get_job_status().result()
        if status.is_globally_terminal_state():
            cause = ""
            try:
                client.get_job_execution_result().result()
            except Exception as error:  # the Java exception's text says why
                lines = [line for line in str(error).splitlines() if "Caused by:" in line]
                cause = (lines[-1] if lines else str(error).splitlines()[0])[:400]
            raise BenchError(f"{name}: the Flink job ended ({status}) {cause}")

    return check


def jvm_pid() -> int | None:
    """The PyFlink gateway's JVM (a child of this process), once started."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.name() == "java":
                return int(child.pid)
    return None


def server_pids(servers: Servers) -> list[int]:
    """Local broker and Redis processes (empty for remote ones)."""
    from urllib.parse import urlsplit

    pids = []
    for url in (f"kafka://{servers.kafka_bootstrap.split(',')[0]}", servers.redis_url):
        parts = urlsplit(url)
        if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
            with contextlib.suppress(LookupError, psutil.Error):
                pids.append(listening_pid(parts.port))
    return pids


def cpu_of(pids: Iterable[int | None]) -> float:
    """CPU seconds of the process trees of ``pids``."""
    return sum(tree_cpu_s(pid) for pid in pids if pid)


@dataclass
class Rate:
    """One side's pass over the backlog."""

    seconds: float
    events: int
    cpu_s: float | None

    @property
    def per_s(self) -> float:
        """Events per second of wall time."""
        return self.events / max(self.seconds, 1e-9)

    @property
    def per_cpu_s(self) -> float | None:
        """Events per CPU-second (per core fully busy)."""
        return None if not self.cpu_s else self.events / self.cpu_s


@dataclass
class Result:
    """Every figure of one job."""

    job: str
    events: int
    rate: int
    published_per_s: float
    startup_s: float
    job_rate: Rate
    read_rate: Rate | None
    plain_rate: Rate
    servers_cpu_s: float | None
    load: float
    agree: tuple[int, int]
    latency: dict[str, list[float]]
    lost: dict[str, int]
    probes: int
    meaning: str
    settings: dict[str, Any]

    def report(self) -> dict[str, Any]:
        """The figures as JSON-able values."""
        out: dict[str, Any] = {
            "events": self.events,
            "events_rated_job": self.job_rate.events,
            "latency_rate_per_s": self.rate,
            "published_per_s": round(self.published_per_s),
            "job_startup_s": round(self.startup_s, 2),
            "job": {**asdict(self.job_rate), "events_per_s": round(self.job_rate.per_s)},
            "plain": {**asdict(self.plain_rate), "events_per_s": round(self.plain_rate.per_s)},
            "job_events_per_cpu_s": _round(self.job_rate.per_cpu_s),
            "plain_events_per_cpu_s": _round(self.plain_rate.per_cpu_s),
            "job_cores_busy": _round(self.cores(self.job_rate), 2),
            "broker_and_redis_cores_busy_during_job": _round(
                None
                if self.servers_cpu_s is None
                else self.servers_cpu_s / max(self.job_rate.seconds, 1e-9),
                2,
            ),
            "load_average_1m_after_job_pass": round(self.load, 2),
            "ratio_job_to_plain": round(self.job_rate.per_s / max(self.plain_rate.per_s, 1e-9), 3),
            "read_models_differ": {"differing": self.agree[0], "compared": self.agree[1]},
            "job_events_per_s_reading": None
            if self.read_rate is None
            else round(self.read_rate.per_s),
            "final_window_ranking_s": None
            if self.read_rate is None
            else round(self.job_rate.seconds - self.read_rate.seconds, 2),
            "latency_meaning": self.meaning,
            "probes": self.probes,
            "settings": self.settings,
        }
        for side in SIDES:
            samples = self.latency[side]
            out[f"latency_{side}_ms"] = {
                "p50": _round(percentile(samples, 0.5), 1) if samples else None,
                "p99": _round(percentile(samples, 0.99), 1) if samples else None,
                "max": _round(max(samples), 1) if samples else None,
                "samples": len(samples),
                "lost": self.lost[side],
            }
        out["targets"] = self.targets()
        return out

    @staticmethod
    def cores(rate: Rate) -> float | None:
        """Cores kept busy on average."""
        return None if rate.cpu_s is None else rate.cpu_s / max(rate.seconds, 1e-9)

    def targets(self) -> dict[str, bool | None]:
        """The issue's targets: trending events/s per core, read-model p99."""
        samples = self.latency[JOB]
        p99 = percentile(samples, 0.99) if samples else None
        met: dict[str, bool | None] = {
            "latency_p99_under_2s": None
            if p99 is None
            else p99 < LATENCY_TARGET_P99_MS and not self.lost[JOB]
        }
        if self.job == "trending":
            per_core = self.job_rate.per_cpu_s
            met["trending_20k_per_core"] = (
                None if per_core is None else (per_core >= TRENDING_TARGET_PER_CORE)
            )
        return met


def _round(value: float | None, digits: int = 0) -> float | None:
    return None if value is None else round(value, digits)


def measure_latency(
    scenario: Scenario, publisher: Publisher, rate: int, seconds: float
) -> tuple[dict[str, list[float]], dict[str, int], int]:
    """Produce probes at ``rate``/s for ``seconds``; ms to visible per side, lost, probes."""
    produced: dict[int, float] = {}
    seen: dict[str, dict[int, float]] = {side: {} for side in SIDES}
    lock = threading.Lock()
    finished = threading.Event()
    errors: list[BaseException] = []

    def poll() -> None:
        deadline: float | None = None
        try:
            while True:
                with lock:
                    pending = {s: [k for k in produced if k not in seen[s]] for s in SIDES}
                if finished.is_set():
                    deadline = deadline or time.monotonic() + SETTLE_S
                    if not any(pending.values()) or time.monotonic() > deadline:
                        return
                for side, probes in pending.items():
                    if probes:
                        found = scenario.visible(side, probes)
                        now = time.monotonic()  # after the read: never early
                        for probe in found:
                            seen[side].setdefault(probe, now)
                time.sleep(POLL_S)
        except BaseException as error:  # surfaced by the caller
            errors.append(error)

    poller = threading.Thread(target=poll, name="latency-poller", daemon=True)
    poller.start()
    total = int(rate * seconds)
    start = time.monotonic()
    for i in range(total):
        msgs, probe = scenario.probe(i)
        for msg in msgs:
            publisher.send(msg)
        publisher.producer.poll(0)
        if probe is not None:
            with lock:
                produced[probe] = time.monotonic()
        pause = start + (i + 1) / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    publisher.flush()
    finished.set()
    poller.join(SETTLE_S + 30)
    if errors:
        raise errors[0]
    samples = {
        side: [(seen[side][k] - t) * 1000 for k, t in produced.items() if k in seen[side]]
        for side in SIDES
    }
    lost = {side: len(produced) - len(samples[side]) for side in SIDES}
    return samples, lost, len(produced)


def job_settings(
    name: str, servers: Servers, home: Path, tag: str, args: argparse.Namespace
) -> Settings:
    """Fresh regions (so fresh topics, groups and keys), a private home, failures not retried."""
    overrides: dict[str, Any] = {}
    if name == "trending":
        # Markers reach every partition, so none may be skipped as idle (as in the tests).
        overrides["stream_idle_timeout_s"] = 600.0
        if args.trending_window_s:
            overrides["trending_window_s"] = args.trending_window_s
        if args.trending_slide_s:
            overrides["trending_slide_s"] = args.trending_slide_s
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=home / f"{name}-{tag}",
        regions=[f"b{tag}a", f"b{tag}b"],
        kafka_bootstrap=servers.kafka_bootstrap,
        redis_url=servers.redis_url,
        flink_restart_attempts=0,
        **overrides,
    )


class Run:
    """One scenario on the servers: its topics, plain consumer and Flink job, all removed
    by ``close``."""

    def __init__(
        self,
        name: str,
        events: int,
        args: argparse.Namespace,
        servers: Servers,
        home: Path,
        client: redis.Redis,
    ) -> None:
        tag = secrets.token_hex(3)
        self.name = name
        self.servers = servers
        self.settings = job_settings(name, servers, home, tag, args)
        self.scenario = SCENARIOS[name](
            self.settings, events, client, tag, random.Random(args.seed)
        )
        self.topics = [*self.scenario.source_topics(), *self.scenario.other_topics()]
        self.plain: PlainProcess | None = None
        self.job: Any = None
        self.alive: Callable[[], None] = lambda: None
        self.publishers: list[Publisher] = []
        create_topics(
            servers.kafka_bootstrap, self.topics, partitions=self.settings.kafka_partitions
        )
        self.scenario.prepare()

    def publisher(self, linger_ms: int) -> Publisher:
        """A producer closed with the run."""
        self.publishers.append(Publisher(self.servers.kafka_bootstrap, linger_ms=linger_ms))
        return self.publishers[-1]

    def start_plain(self) -> PlainProcess:
        """Start the plain consumer on the scenario's topics."""
        settings = self.settings
        spec = PlainSpec(
            job=self.name,
            bootstrap=self.servers.kafka_bootstrap,
            redis_url=self.servers.redis_url,
            topics=tuple(self.scenario.source_topics()),
            partitions=settings.kafka_partitions,
            group=f"bench-plain-{self.name}-{self.scenario.tag}",
            prefix=self.scenario.prefix,
            fetch_wait_ms=settings.kafka_fetch_wait_max_ms,
            home=str(settings.home),
            trending={
                "slide_ms": settings.trending_slide_s * 1000,
                "size_ms": settings.trending_window_s * 1000,
                "ooo_ms": round(settings.stream_out_of_orderness_s * 1000),
                "lateness_ms": round(settings.stream_allowed_lateness_s * 1000),
                "top_n": settings.trending_top_n,
                "weight_view": settings.trending_weight_view,
                "weight_cart": settings.trending_weight_cart,
                "weight_purchase": settings.trending_weight_purchase,
            },
        )
        self.plain = PlainProcess(spec)
        return self.plain

    def submit(self) -> Any:
        """Run the job on a local mini-cluster in this process's JVM."""
        from pipelines.common.runner import submit

        self.job = submit(self.scenario.job, self.settings, self.servers, resume=False)
        self.alive = job_alive(self.job, self.name)
        return self.job

    def stop(self) -> None:
        """Cancel the job and stop the plain consumer (frees the CPU for what follows)."""
        if self.job is not None:
            with contextlib.suppress(Exception):  # already failed: the error says why
                self.job.cancel().result()
            self.job = None
        if self.plain is not None:
            self.plain.stop()
            self.plain = None

    def close(self) -> None:
        """Stop everything, delete the keys and topics the run made."""
        self.stop()
        for publisher in self.publishers:
            with contextlib.suppress(Exception):
                publisher.close()
        with contextlib.suppress(Exception):
            self.scenario.cleanup()
        with contextlib.suppress(Exception):
            _delete_topics(self.servers.kafka_bootstrap, self.topics)


def run_job(
    name: str, events: int, args: argparse.Namespace, servers: Servers, home: Path
) -> Result:
    """Backlog, plain pass, job pass, latency: every figure of one job."""
    from pipelines.fraud import PUSH_DELAY_MS

    client = redis.Redis.from_url(servers.redis_url, decode_responses=True)
    runs: list[Run] = []
    try:
        run = Run(name, events, args, servers, home, client)
        runs.append(run)
        scenario, settings = run.scenario, run.settings
        with console.status(f"{name}: generating and publishing the backlog…"):
            msgs = scenario.backlog() + scenario.finish()
            published = run.publisher(linger_ms=5).send_all(msgs)
        with console.status(f"{name}: the plain consumer reads {len(msgs):,} events…"):
            plain = run.start_plain()
            wait_until(
                lambda: bool(plain.first_read.value),
                PHASE_TIMEOUT_S,
                f"{name} (plain): first record",
                alive=plain.check,
                every_s=0.005,
            )
            cpu0 = cpu_of([plain.pid])
            first = float(plain.first_read.value)
            done = wait_until(
                lambda: scenario.done(PLAIN),
                PHASE_TIMEOUT_S,
                f"{name} (plain): end of the backlog",
                alive=plain.check,
            )
            plain_rate = Rate(done - first, len(msgs), cpu_of([plain.pid]) - cpu0)
        with console.status(f"{name}: starting the job on a mini-cluster…"):
            submitted = time.monotonic()
            run.submit()
            first = wait_until(
                lambda: scenario.first_output(JOB),
                PHASE_TIMEOUT_S,
                f"{name} (job): first write",
                alive=run.alive,
            )
            startup = first - submitted
        with console.status(f"{name}: the job reads {len(msgs):,} events…"):
            pids = [jvm_pid()]
            servers_pids = server_pids(servers)
            cpu0, servers0 = cpu_of(pids), cpu_of(servers_pids)
            read_all: list[float] = []

            def finished() -> bool:
                if not read_all and scenario.ingested(JOB):
                    read_all.append(time.monotonic())
                return scenario.done(JOB)

            done = wait_until(
                finished, PHASE_TIMEOUT_S, f"{name} (job): end of the backlog", alive=run.alive
            )
            load = os.getloadavg()[0]  # others' work on the machine competes for the cores
            job_cpu = cpu_of(pids) - cpu0
            servers_cpu = cpu_of(servers_pids) - servers0 if servers_pids else None
            counted = len(msgs) - scenario.skipped()
            job_rate = Rate(done - first, counted, job_cpu if pids[0] else None)
            read_rate = Rate(read_all[0] - first, counted, None) if read_all else None
        # The job's sinks run apart (views, scopes, warehouse and region fields): give the
        # last writes a moment before comparing.
        agree = scenario.agree()
        settle_until = time.monotonic() + 30
        while agree[0] and time.monotonic() < settle_until:
            time.sleep(1)
            agree = scenario.agree()
        # Latency is measured below saturation: above the job's rate it is queueing time.
        rate = max(1, min(args.rate, int(job_rate.per_s * LATENCY_LOAD_SHARE)))
        probing = run
        if scenario.separate_latency_run:
            run.stop()
            with console.status(f"{name}: a fresh job and topics for the latency run…"):
                probing = Run(name, 0, args, servers, home, client)
                runs.append(probing)
                probing.publisher(linger_ms=5).send_all(probing.scenario.backlog())
                probing.start_plain()
                probing.submit()
                for side in SIDES:
                    wait_until(
                        lambda side=side: probing.scenario.first_output(side),  # type: ignore[misc]
                        PHASE_TIMEOUT_S,
                        f"{name} ({side}): ready for the latency run",
                        alive=probing.alive if side == JOB else None,
                    )
        if isinstance(probing.scenario, TrendingScenario):
            probing.scenario.set_rate(rate)
        with console.status(
            f"{name}: latency at {rate} events/s for {args.latency_seconds:.0f} s…"
        ):
            samples, lost, probes = measure_latency(
                probing.scenario, probing.publisher(linger_ms=0), rate, args.latency_seconds
            )
        details = {
            "regions": settings.regions,
            "kafka_partitions": settings.kafka_partitions,
            "flink_parallelism": settings.flink_parallelism,
            "flink_python_mode": settings.flink_python_mode,
            "checkpoint_interval_s": settings.flink_checkpoint_interval_s,
            "python_bundle_time_ms": BUNDLE_TIME_MS,
            "kafka_fetch_wait_max_ms": settings.kafka_fetch_wait_max_ms,
            "plain_batch": PLAIN_BATCH,
            "latency_on_a_fresh_job": scenario.separate_latency_run,
        }
        if isinstance(scenario, TrendingScenario):
            details |= {
                "trending_window_s": settings.trending_window_s,
                "trending_slide_s": settings.trending_slide_s,
                "trending_top_n": settings.trending_top_n,
                "out_of_orderness_s": settings.stream_out_of_orderness_s,
                "mini_batch_allow_latency_ms": 200,
                "backlog_event_time_density_per_s": TrendingScenario.DENSITY,
                "products": len(scenario.products),
            }
        if name == "fraud":
            details["feast_push_delay_ms"] = PUSH_DELAY_MS
        return Result(
            job=name,
            events=len(msgs),
            rate=rate,
            published_per_s=published,
            startup_s=startup,
            job_rate=job_rate,
            read_rate=read_rate,
            plain_rate=plain_rate,
            servers_cpu_s=servers_cpu,
            load=load,
            agree=agree,
            latency=samples,
            lost=lost,
            probes=probes,
            meaning=probing.scenario.latency_meaning(),
            settings=details,
        )
    finally:
        for each in runs:
            each.close()
        client.close()


def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result()


# --- output -----------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("[green]yes[/]" if value else "[red]no[/]")


def print_results(results: list[Result], cpus: int) -> None:
    """One table, a column per job, and what each latency sample means."""
    table = Table(
        title=f"Streaming jobs: Flink mini-cluster, parallelism 1, on a {cpus}-core machine",
        caption="plain: one confluent-kafka consumer process in Python doing the same "
        f"aggregation and writing the same read-model shape (batches of {PLAIN_BATCH}); "
        "rates exclude job startup; per CPU-second = per core kept busy",
    )
    table.add_column("measure")
    for result in results:
        table.add_column(result.job, justify="right")

    def row(label: str, cell: Callable[[Result], str]) -> None:
        table.add_row(label, *(cell(r) for r in results))

    row("events in the backlog", lambda r: f"{r.events:,}")
    row("job startup (submit → first write)", lambda r: _fmt(r.startup_s, " s", 1))
    row("job events/s", lambda r: _fmt(r.job_rate.per_s))
    row("job events/s ÷ cores of the machine", lambda r: _fmt(r.job_rate.per_s / cpus))
    row("job events per CPU-second (JVM)", lambda r: _fmt(r.job_rate.per_cpu_s))
    row("job JVM cores busy", lambda r: _fmt(Result.cores(r.job_rate), "", 2))
    row(
        "broker + Redis cores busy (job pass)",
        lambda r: _fmt(
            None if r.servers_cpu_s is None else r.servers_cpu_s / r.job_rate.seconds, "", 2
        ),
    )
    row("machine load average (1 min), job pass", lambda r: f"{r.load:.1f}")
    row("plain consumer events/s", lambda r: _fmt(r.plain_rate.per_s))
    row("plain events per CPU-second", lambda r: _fmt(r.plain_rate.per_cpu_s))
    row("job / plain (events/s)", lambda r: f"{r.job_rate.per_s / r.plain_rate.per_s:.2f}")
    row(
        "read models: job = plain",
        lambda r: (
            f"{r.agree[1] - r.agree[0]}/{r.agree[1]}"
            + ("" if not r.agree[0] else " [red]differ[/]")
        ),
    )
    row(
        "job events/s while reading (trending)",
        lambda r: _fmt(None if r.read_rate is None else r.read_rate.per_s),
    )
    row(
        "last window: first write → ranked",
        lambda r: _fmt(
            None if r.read_rate is None else r.job_rate.seconds - r.read_rate.seconds, " s", 1
        ),
    )
    for side in SIDES:
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            row(
                f"latency {label} {side}",
                lambda r, s=side, qq=q: _fmt(  # type: ignore[misc]
                    percentile(r.latency[s], qq) if r.latency[s] else None, " ms", 0
                ),
            )
    row("latency run: events/s", lambda r: f"{r.rate:,}")
    row("latency samples (lost job/plain)", lambda r: f"{r.probes} ({r.lost[JOB]}/{r.lost[PLAIN]})")
    row(
        f"target: trending ≥ {TRENDING_TARGET_PER_CORE:,.0f}/s per core",
        lambda r: _yes(r.targets().get("trending_20k_per_core")),
    )
    row("target: read-model p99 < 2 s", lambda r: _yes(r.targets()["latency_p99_under_2s"]))
    console.print(table)
    for result in results:
        console.print(f"[bold]{result.job}[/]: {note(result)}")
    first = results[0].settings
    console.print(
        f"All: Python operators in {first['flink_python_mode']} mode, bundles ≤ "
        f"{BUNDLE_TIME_MS} ms; broker fetch wait {first['kafka_fetch_wait_max_ms']} ms; "
        f"checkpoints every {first['checkpoint_interval_s']} s only commit offsets (Redis "
        f"and Feast writes do not wait for them); the first job started also starts the JVM."
    )


def note(result: Result) -> str:
    """What one job's figures mean and what bounds its latency."""
    settings = result.settings
    if result.job == "trending":
        return (
            f"window {settings['trending_window_s']} s sliding {settings['trending_slide_s']}"
            f" s, top {settings['trending_top_n']}; backlog over {settings['products']:,} "
            f"products at {settings['backlog_event_time_density_per_s']:,} events per second"
            " of event time (the target rate). Latency, on a fresh job: "
            f"{result.meaning}; bounded by source watermarks every 200 ms, two mini-batch "
            f"stages (≤ 200 ms each) and the Redis sink's batches (≤ {REDIS_FLUSH_MS} ms)."
        )
    if result.job == "fraud":
        return (
            f"{result.meaning}; bounded by the Feast writes, batched per view for ≤ "
            f"{settings['feast_push_delay_ms']} ms (one online-store write per batch), "
            "behind keyed Python state."
        )
    return (
        f"{result.meaning}; bounded by a mini-batch stage (≤ 200 ms) and the Redis sink's "
        f"batches (≤ {REDIS_FLUSH_MS} ms, one pipeline each)."
    )


def parse_events(text: str | None) -> dict[str, int]:
    """``N`` (every job) or ``job=N,...`` over the defaults."""
    events = dict(DEFAULT_EVENTS)
    if not text:
        return events
    if text.replace("_", "").isdigit():
        return dict.fromkeys(events, int(text))
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in events or not value.strip().replace("_", "").isdigit():
            raise SystemExit(f"--events: {part!r} is not N or job=N")
        events[name.strip()] = int(value)
    return events


def main() -> None:
    """Run the benchmark for each job and print the figures beside the plain consumer's."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", default=",".join(JOBS), help="comma-separated subset")
    parser.add_argument(
        "--events",
        default=None,
        help="backlog size: N for every job or job=N,... (default "
        + ", ".join(f"{k}={v:,}" for k, v in DEFAULT_EVENTS.items())
        + ")",
    )
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--rate",
        type=int,
        default=200,
        help="events/s during the latency run (at most a quarter of the job's measured rate)",
    )
    parser.add_argument("--trending-window-s", type=int, default=None, help="default: settings")
    parser.add_argument("--trending-slide-s", type=int, default=None, help="default: settings")
    parser.add_argument("--seed", type=int, default=7, help="of the generated events")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    jobs = [name.strip() for name in args.jobs.split(",") if name.strip()]
    unknown = sorted(set(jobs) - set(JOBS))
    if unknown:
        raise SystemExit(f"--jobs: unknown {', '.join(unknown)} (known: {', '.join(JOBS)})")
    events = parse_events(args.events)
    cpus = os.cpu_count() or 1

    home = temporary_home("souk-bench-streaming-")
    stack = Stack(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    results: list[Result] = []
    try:
        with console.status("starting the broker and Valkey…"):
            servers = Servers(stack.up_component("kafka"), stack.up_component("redis"))
        for name in jobs:
            results.append(run_job(name, events[name], args, servers, home))
            console.print(f"{name}: done")
    finally:
        with contextlib.suppress(Exception):
            stack.down(purge=True)
        shutil.rmtree(home, ignore_errors=True)

    print_results(results, cpus)
    if args.json is not None:
        figures = {
            "cpus": cpus,
            "flink_parallelism": 1,
            "targets": {
                "trending_events_per_s_per_core": TRENDING_TARGET_PER_CORE,
                "latency_p99_ms": LATENCY_TARGET_P99_MS,
            },
            "jobs": {result.job: result.report() for result in results},
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        console.print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
