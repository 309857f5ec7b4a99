"""`make bench-analytics`: the analytics loader's events/s beside chdb's raw bulk insert, and
p50/p99 of the headline metric queries, on generated events (10 million by default).

Three measurements in one run, on one fresh chdb store:

1. **Loader batch path** on ``--loader-events`` events (all of them by default): what the
   loader does per Kafka batch once the records are fetched (``jobs.analytics.loader``):
   decode the envelopes and payloads (msgspec), probe the event ids already loaded, build one
   Arrow table per target table, one Arrow INSERT each, the offsets commit. Kafka is left out
   here: pushing 10 million events through the local broker would take most of the time
   budget (see 2).
2. **Through Kafka** on ``--kafka-events`` events: a private broker, the same events produced
   to the ``<region>.<domain>.v1`` topics, the real ``Loader`` consumer group loading them
   (time from its first batch to its last; the group join is left out).
3. **Raw bulk insert** (the baseline): the same number of wide ``events`` rows built as Arrow
   columns with numpy and inserted by chdb's ``Python()`` table function, into a copy of the
   table. Then the headline metric queries (``jobs.analytics.metrics``), ``--query-runs``
   times each, on the loaded store: p50/p99.

Events are generated fast (templates filled per event, timestamps with numpy): sessions of
ten events (views, searches, cart adds, recommendations), a fifth of them checking out
(checkout, order, capture).
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from bench.stats import percentile
from jobs.analytics.chdb_store import ChdbStore
from jobs.analytics.flatten import Source, decode
from jobs.analytics.loader import BatchWriter, Loader, prepare
from jobs.analytics.metrics import NAMES as NAMES  # re-exported: the bench test reads it
from jobs.analytics.metrics import sql_of
from jobs.analytics.schema import DATA_TABLES
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings

START = datetime(2026, 11, 1, tzinfo=UTC)
SPAN_MS = 30 * 24 * 3600 * 1000  # events spread over 30 days
REGIONS = ("eu", "us", "in")
CURRENCY = {"eu": "EUR", "us": "USD", "in": "INR"}
#: One session: ten events; every fifth session also checks out (four more events).
SESSION = (
    ["product.viewed"] * 5
    + ["search.performed", "cart.item_added"]
    + ["recommendation.served", "recommendation.clicked", "product.viewed"]
)
CHECKOUT = ["checkout.started", "order.placed", "payment.captured", "checkout.completed"]


def _placeholders() -> dict[str, str]:
    return {
        "eid": "00000000-0000-7000-8000-00000000e1d0",
        "ts": "2026-11-01T00:00:00.000Z",
        "s": "SESSIONX",
        "c": "CUSTOMERX",
        "o": "ORDERX",
        "k": "CARTX",
        "p": "PRODUCTX",
        "r": "RECX",
    }


def _template(event_type: str, region: str) -> str:
    """A ``str.format`` template of one event's JSON (validated once through the registry)."""
    ph = _placeholders()
    money = {"amount_minor": 2500, "currency": CURRENCY[region]}
    payloads: dict[str, dict[str, Any]] = {
        "product.viewed": {"session_id": ph["s"], "product_id": ph["p"], "channel": "web"},
        "search.performed": {
            "search_id": ph["r"],
            "session_id": ph["s"],
            "query": "mug",
            "result_count": 12,
        },
        "cart.item_added": {
            "cart_id": ph["k"],
            "session_id": ph["s"],
            "sku": "sku-1",
            "product_id": ph["p"],
            "seller_id": "sel_1",
            "quantity": 1,
            "quantity_in_cart": 1,
            "unit_price": money,
            "channel": "web",
        },
        "recommendation.served": {
            "recommendation_id": ph["r"],
            "session_id": ph["s"],
            "placement": "home",
            "model": "als",
            "model_version": "v1",
            "product_ids": [ph["p"], "prd_2"],
            "channel": "web",
        },
        "recommendation.clicked": {
            "recommendation_id": ph["r"],
            "session_id": ph["s"],
            "placement": "home",
            "product_id": ph["p"],
            "position": 0,
            "channel": "web",
        },
        "checkout.started": {
            "checkout_id": ph["o"],
            "cart_id": ph["k"],
            "customer_id": ph["c"],
            "lines": [
                {
                    "line_id": "l0",
                    "sku": "sku-1",
                    "product_id": ph["p"],
                    "seller_id": "sel_1",
                    "quantity": 1,
                    "unit_price": money,
                }
            ],
            "subtotal": money,
            "shipping_address": {"country": "DE"},
            "channel": "web",
        },
        "order.placed": {
            "order_id": ph["o"],
            "customer_id": ph["c"],
            "region": region,
            "lines": [
                {
                    "line_id": "l0",
                    "sku": "sku-1",
                    "product_id": ph["p"],
                    "seller_id": "sel_1",
                    "quantity": 1,
                    "unit_price": money,
                    "warehouse_id": f"wh-{region}",
                }
            ],
            "totals": {
                "subtotal": money,
                "discount": {**money, "amount_minor": 0},
                "shipping": {**money, "amount_minor": 0},
                "tax": {**money, "amount_minor": 0},
                "grand_total": money,
            },
            "shipping_address": {"country": "DE"},
            "fulfilment_groups": [
                {
                    "group_id": "g0",
                    "seller_id": "sel_1",
                    "warehouse_id": f"wh-{region}",
                    "line_ids": ["l0"],
                }
            ],
            "payment_method": "card",
        },
        "payment.captured": {
            "payment_id": ph["o"],
            "order_id": ph["o"],
            "customer_id": ph["c"],
            "amount": money,
            "method": "card",
        },
        "checkout.completed": {
            "checkout_id": ph["o"],
            "customer_id": ph["c"],
            "order_id": ph["o"],
        },
    }
    envelope = REGISTRY.new_event(event_type, payloads[event_type], region=region)
    text = msgspec.json.encode(envelope).decode()
    text = text.replace(str(envelope.event_id), ph["eid"])
    stamp = msgspec.json.encode(envelope.occurred_at).decode().strip('"')
    text = text.replace(stamp, ph["ts"]).replace("{", "{{").replace("}", "}}")
    for key, value in ph.items():
        text = text.replace(value, "{" + key + "}")
    return text


@dataclass(frozen=True)
class Message:
    """One generated Kafka record: where it goes and its bytes."""

    topic: str
    key: str
    value: bytes


class Generator:
    """Deterministic-shaped events with unique ids per run (``tag``)."""

    def __init__(self, total: int, tag: str | None = None) -> None:
        self.total = total
        self.tag = tag or secrets.token_hex(4)
        self.templates = {(t, r): _template(t, r) for t in {*SESSION, *CHECKOUT} for r in REGIONS}
        self.topics = {
            (t, r): topic_for(REGISTRY.spec(t).domain, r)
            for t in {*SESSION, *CHECKOUT}
            for r in REGIONS
        }

    def types(self, start: int, n: int) -> Iterator[tuple[int, str]]:
        """(session number, event type) of events ``start`` .. ``start + n``."""
        per_block = 5 * len(SESSION) + len(CHECKOUT)  # five sessions, the fifth checks out
        for i in range(start, start + n):
            block, at = divmod(i, per_block)
            if at < 5 * len(SESSION):
                session, step = divmod(at, len(SESSION))
                yield block * 5 + session, SESSION[step]
            else:
                yield block * 5 + 4, CHECKOUT[at - 5 * len(SESSION)]

    def chunk(self, start: int, n: int) -> list[Message]:
        """Events ``start`` .. ``start + n`` as Kafka records."""
        offsets = np.arange(start, start + n, dtype=np.int64) * (SPAN_MS // max(self.total, 1))
        stamps = np.datetime_as_string(
            np.datetime64(START.replace(tzinfo=None), "ms") + offsets.astype("timedelta64[ms]"),
            unit="ms",
        )
        out = []
        tag = self.tag
        for (i, (session, kind)), stamp in zip(
            enumerate(self.types(start, n), start), stamps, strict=True
        ):
            region = REGIONS[session % 3]
            sid = f"s{tag}{session}"
            value = self.templates[(kind, region)].format(
                eid=f"{tag}-0000-7000-8000-{i:012x}",
                ts=f"{stamp}Z",
                s=sid,
                c=f"c{tag}{session % 100_003}",
                o=f"o{tag}{session}",
                k=f"k{tag}{session}",
                p=f"prd_{session % 20_011}",
                r=f"r{tag}{i}",
            )
            out.append(Message(self.topics[(kind, region)], sid, value.encode()))
        return out


@dataclass
class Result:
    """Every figure of a run (``--json``)."""

    events: int = 0
    loader_s: float = 0.0
    loader_per_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)
    generate_s: float = 0.0
    raw_s: float = 0.0
    raw_rows: int = 0
    raw_per_s: float = 0.0
    kafka_events: int = 0
    kafka_loaded: int = 0
    kafka_s: float = 0.0
    kafka_per_s: float = 0.0
    store_events: int = 0  # events the queries ran on (the loader's rows x copies)
    copies: int = 1
    replicate_s: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    queries_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    headline_ms: dict[str, float] = field(default_factory=dict)
    query_runs: int = 0


def load_batch_path(
    store: ChdbStore, generator: Generator, batch: int, result: Result, console: Console
) -> None:
    """The loader's work per batch (decode, dedupe probe, flatten + insert, commit), timed."""
    writer = BatchWriter(store, "bench-analytics")
    stages = {"decode": 0.0, "dedupe probe": 0.0, "flatten + insert + commit": 0.0}
    generate = 0.0
    offsets: dict[str, int] = {}
    for start in range(0, generator.total, batch):
        t0 = time.perf_counter()
        messages = generator.chunk(start, min(batch, generator.total - start))
        t1 = time.perf_counter()
        records = []
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            offset = offsets.get(m.topic, 0)
            offsets[m.topic] = offset + 1
            records.append((m.value, Source(m.topic, 0, offset)))
            last[(m.topic, 0)] = offset
        decoded = decode(records)
        t2 = time.perf_counter()
        fresh = writer.new_events(decoded)
        t3 = time.perf_counter()
        writer.write(fresh, last)
        t4 = time.perf_counter()
        generate += t1 - t0
        stages["decode"] += t2 - t1
        stages["dedupe probe"] += t3 - t2
        stages["flatten + insert + commit"] += t4 - t3
        if (start // batch) % 200 == 0:
            done = start + len(messages)
            console.print(
                f"  loader batch path: {done:,} / {generator.total:,} events "
                f"({done / max(sum(stages.values()), 1e-9):,.0f}/s)"
            )
    result.events = generator.total  # through the batch path
    result.generate_s = generate
    result.stage_s = stages
    result.loader_s = sum(stages.values())
    result.loader_per_s = result.events / result.loader_s if result.loader_s else 0.0


def raw_insert(store: ChdbStore, events: int, chunk: int, result: Result) -> None:
    """chdb's bulk insert of ``events`` wide rows built as Arrow columns (the baseline)."""
    session = store._session  # the baseline needs chdb's own Python() table function
    store.execute("CREATE TABLE IF NOT EXISTS raw_events AS events")
    columns = store.arrow("SELECT * FROM events LIMIT 1")
    schema = columns.schema
    rng = np.random.default_rng(7)
    elapsed = 0.0
    for start in range(0, events, chunk):
        n = min(chunk, events - start)
        table = _raw_table(schema, start, n, rng)
        t0 = time.perf_counter()
        session.query("INSERT INTO raw_events SELECT * FROM Python(table)")  # reads `table`
        del table
        elapsed += time.perf_counter() - t0
    result.raw_s = elapsed
    result.raw_rows = events
    result.raw_per_s = events / elapsed if elapsed else 0.0


def _raw_table(schema: pa.Schema, start: int, n: int, rng: np.random.Generator) -> pa.Table:
    """``n`` wide rows: ids and timestamps from numpy, short strings elsewhere."""
    ids = np.char.add("raw-", np.arange(start, start + n).astype(str))
    millis = (np.datetime64(START.replace(tzinfo=None), "ms").astype(np.int64)) + np.sort(
        rng.integers(0, SPAN_MS, n)
    )
    arrays: dict[str, pa.Array] = {}
    for f in schema:
        if f.name in ("event_id", "aggregate_id"):
            arrays[f.name] = pa.array(ids, pa.string())
        elif pa.types.is_timestamp(f.type):
            arrays[f.name] = pa.array(millis, pa.timestamp("ms", tz="UTC"))
        elif pa.types.is_date(f.type):
            arrays[f.name] = pa.array(millis // 86_400_000, pa.int32()).cast(pa.date32())
        elif pa.types.is_integer(f.type):
            arrays[f.name] = pa.array(np.zeros(n, dtype=np.int64)).cast(f.type)
        elif f.name == "payload":
            arrays[f.name] = pa.array(['{"session_id":"s","product_id":"p"}'] * n)
        else:
            arrays[f.name] = pa.array(["eu"] * n, pa.string())
    return pa.table(arrays)


def through_kafka(
    settings: Settings, store: ChdbStore, events: int, result: Result, console: Console
) -> None:
    """Produce ``events`` to a private broker and load them with the real consumer group."""
    from confluent_kafka import Producer

    from souk.stack import Stack
    from souk.topics import ensure_topics

    stack = Stack(settings)
    try:
        bootstrap = stack.up_component("kafka")
        ensure_topics(settings, bootstrap)
        generator = Generator(events)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
        for start in range(0, events, 50_000):
            for m in generator.chunk(start, min(50_000, events - start)):
                while True:
                    try:
                        producer.produce(m.topic, key=m.key, value=m.value)
                        break
                    except BufferError:
                        producer.poll(0.05)
            producer.poll(0)
        if producer.flush(120) != 0:
            raise RuntimeError("the broker did not take every generated event")
        console.print(f"  produced {events:,} events to the local broker")
        loader = Loader(settings, store, bootstrap, group=f"bench-{generator.tag}")
        first: list[float] = []
        last: list[float] = []
        load = loader.load

        def timed(messages: Any) -> int:
            if messages and not first:
                first.append(time.perf_counter())
            n = load(messages)
            last.append(time.perf_counter())
            return n

        loader.load = timed  # type: ignore[method-assign]
        stats = loader.run(threading.Event(), idle_exit_s=5)
        result.kafka_events = events
        result.kafka_loaded = stats.loaded
        result.kafka_s = (last[-1] - first[0]) if first else 0.0
        result.kafka_per_s = stats.loaded / result.kafka_s if result.kafka_s else 0.0
    finally:
        stack.down()


def replicate(store: ChdbStore, copies: int) -> float:
    """Copy every loaded row ``copies - 1`` times in SQL, ids suffixed (``~k``); seconds taken.

    With ``--loader-events`` below ``--events`` (a quicker run), the metric queries run on the
    loader's rows multiplied inside ClickHouse.
    """
    started = time.perf_counter()
    for table in DATA_TABLES:
        described = store.arrow(f"DESCRIBE TABLE {table}").to_pylist()
        exprs = [
            f"concat({c['name']}, '~{{k}}')"
            if c["name"].endswith("_id") and c["type"] in ("String", "Nullable(String)")
            else c["name"]
            for c in described
        ]
        select = ", ".join(exprs)
        for k in range(1, copies):
            store.execute(
                f"INSERT INTO {table} SELECT {select.format(k=k)} FROM {table} "
                "WHERE position(event_id, '~') = 0"
            )
    return time.perf_counter() - started


def queries(store: ChdbStore, runs: int, result: Result) -> None:
    """Each headline metric query ``runs`` times: p50/p99 in ms; the whole headline too."""
    from jobs.analytics.rates import RateTable
    from jobs.analytics.report import headline

    result.query_runs = runs
    for name in NAMES:
        sql = sql_of(name)
        store.arrow(sql)  # warm: the first run reads the parts from disk
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            store.arrow(sql)
            samples.append((time.perf_counter() - t0) * 1000)
        result.queries_ms[name] = {
            "p50": percentile(samples, 0.5),
            "p99": percentile(samples, 0.99),
        }
    samples = []
    for _ in range(max(3, runs // 4)):
        t0 = time.perf_counter()
        headline(store, RateTable("EUR", {}))
        samples.append((time.perf_counter() - t0) * 1000)
    result.headline_ms = {"p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99)}


def report(result: Result, console: Console) -> None:
    """The figures as rich tables, with ratios to the raw insert."""
    rates = Table(title="Analytics loading (generated events, same run)")
    rates.add_column("path")
    rates.add_column("events/s", justify="right")
    rates.add_column("÷ raw insert", justify="right")
    rates.add_column("notes")

    def ratio(value: float) -> str:
        return f"{value / result.raw_per_s:.3f}x" if result.raw_per_s else "-"

    rates.add_row(
        "chdb raw bulk insert (Arrow, Python())",
        f"{result.raw_per_s:,.0f}",
        "1x",
        f"{result.raw_rows:,} wide rows, one table, no dedupe",
    )
    stage = ", ".join(f"{k} {v:.1f} s" for k, v in result.stage_s.items())
    rates.add_row(
        f"loader batch path, {result.events:,} events (no Kafka)",
        f"{result.loader_per_s:,.0f}",
        ratio(result.loader_per_s),
        f"{result.loader_s:.1f} s: {stage}",
    )
    if result.kafka_events:
        rates.add_row(
            "loader through Kafka (local broker)",
            f"{result.kafka_per_s:,.0f}",
            ratio(result.kafka_per_s),
            f"{result.kafka_loaded:,} of {result.kafka_events:,} events, first batch → last",
        )
    console.print(rates)
    copies = (
        f"the loader's rows x{result.copies} (copied in SQL)" if result.copies > 1 else "loaded"
    )
    table = Table(
        title=f"Headline metric queries on {result.store_events:,} events ({copies}), "
        f"{result.query_runs} runs each"
    )
    table.add_column("metric")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    for name, q in result.queries_ms.items():
        table.add_row(name, f"{q['p50']:,.1f}", f"{q['p99']:,.1f}")
    if result.headline_ms:
        table.add_row(
            "[bold]headline (every metric)",
            f"{result.headline_ms['p50']:,.1f}",
            f"{result.headline_ms['p99']:,.1f}",
        )
    console.print(table)
    console.print(
        "rows: "
        + ", ".join(f"{t} {n:,}" for t, n in sorted(result.rows.items()))
        + f"; generating the events took {result.generate_s:.1f} s (not counted); "
        + (f"copying in SQL {result.replicate_s:.1f} s" if result.copies > 1 else "")
    )


def run(
    events: int,
    loader_events: int,
    kafka_events: int,
    query_runs: int,
    batch: int,
    console: Console,
    home: Path | None = None,
) -> Result:
    """Every measurement on a fresh store under ``home`` (a temporary folder by default)."""
    own = home is None
    root = Path(tempfile.mkdtemp(prefix="souk-bench-analytics-")) if home is None else home
    settings = Settings(_env_file=None, home=root, regions=list(REGIONS))  # type: ignore[call-arg]
    result = Result()
    store = ChdbStore(root / "chdb")
    loader_events = min(events, loader_events)
    try:
        prepare(store, settings)
        if kafka_events:  # its own group: it leaves the batch path's rows alone either way
            console.print(f"[bold]through Kafka[/bold] on {kafka_events:,} events")
            through_kafka(settings, store, kafka_events, result, console)
        console.print(
            f"[bold]loader batch path[/bold] on {loader_events:,} events (batches of {batch:,})"
        )
        load_batch_path(store, Generator(loader_events), batch, result, console)
        result.copies = max(1, math.ceil(events / max(loader_events + kafka_events, 1)))
        if result.copies > 1:
            console.print(f"[bold]replicating[/bold] the loaded rows x{result.copies} in SQL")
            result.replicate_s = replicate(store, result.copies)
        console.print(f"[bold]raw bulk insert[/bold] of {events:,} rows")
        raw_insert(store, events, 1_000_000, result)
        for t in ("events", "behaviour", "orders", "raw_events"):
            result.rows[t] = int(store.arrow(f"SELECT count() AS n FROM {t}").to_pylist()[0]["n"])
        result.store_events = result.rows["events"]
        store.execute("DROP TABLE raw_events")  # the metric queries read the loaded tables only
        console.print(f"[bold]metric queries[/bold], {query_runs} runs each")
        queries(store, query_runs, result)
    finally:
        store.close()
        if own:
            shutil.rmtree(root, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.analytics [--events N] [--kafka-events M] [--json FILE]``."""
    parser = argparse.ArgumentParser(prog="bench.analytics", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="Generated events.")
    parser.add_argument(
        "--loader-events",
        type=int,
        default=None,
        help="Of --events, how many go through the loader's batch path (default: all; the "
        "rest: SQL copies of the loaded rows).",
    )
    parser.add_argument(
        "--kafka-events", type=int, default=100_000, help="Events through the broker (0: skip)."
    )
    parser.add_argument("--query-runs", type=int, default=20, help="Runs of each metric query.")
    parser.add_argument(
        "--batch",
        type=int,
        default=50_000,
        help="Events per loader batch: a loader catching up gets full batches of "
        "SOUK_ANALYTICS_BATCH_MAX (each INSERT costs ~10 ms whatever its size).",
    )
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args(argv)
    console = Console()
    started = time.perf_counter()
    loader_events = args.events if args.loader_events is None else args.loader_events
    result = run(
        args.events, loader_events, args.kafka_events, args.query_runs, args.batch, console
    )
    report(result, console)
    console.print(f"bench-analytics took {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
