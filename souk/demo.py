"""The platform's main job, end to end on the local stack, with a printed summary.

Stack up → migrations and topics → seed sellers, catalog, stock and customers through the
transactional outbox → a burst of shopper events → the relay publishes to Kafka → an audit
consumer group applies every event once → summary → stack down (unless ``keep``).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Connection, Engine, text

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from souk.stack import Stack
from souk.stack.endpoints import Endpoints, resolve_endpoints
from souk.stack.errors import StackError
from souk.startup import embedded_broker_identity, prepare_platform
from souk.synthetic import SyntheticWorld
from souk.wiring import build_consumer, build_outbox, build_relay
from transactional.shared.db import create_db_engine
from transactional.shared.outbox import Outbox

TX_BATCH = 50  # aggregates per seeding transaction
AUDIT_CONSUMER = "souk-demo-audit"


@dataclass
class DemoReport:
    """What the demo did, for the summary."""

    written: Counter[str] = field(default_factory=Counter)
    consumed: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    write_seconds: float = 0.0
    deliver_seconds: float = 0.0
    dead_lettered: int = 0
    duplicates: int = 0
    pending: int = 0  # written but still unpublished when the demo ended

    @property
    def ok(self) -> bool:
        """Every written event published and applied exactly once."""
        return self.pending == 0 and self.consumed == self.written


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _chunks(items: Sequence[Envelope], size: int) -> Iterator[Sequence[Envelope]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def build_events(
    settings: Settings, customers: int, products: int, events: int, seed: int
) -> tuple[list[Envelope], list[Envelope]]:
    """The seeded world as envelopes: (catalog and customers, shopper burst)."""
    world = SyntheticWorld(settings.regions, seed)
    sellers = world.sellers(max(3, products // 10))
    catalog = world.products(products, sellers)
    people = world.customers(customers)
    # The registry takes each aggregate id from its payload (seller_id, sku, session_id...).
    seed_events = [
        REGISTRY.new_event("seller.applied", seller.payload, region=seller.payload.region)
        for seller in sellers
    ]
    for product in catalog:
        seed_events.append(
            REGISTRY.new_event("product.created", product.payload, region=product.region)
        )
        seed_events += [
            REGISTRY.new_event("stock.adjusted", adjusted, region=product.region)
            for adjusted in product.stock
        ]
    seed_events += [
        REGISTRY.new_event("user.registered", customer.payload, region=customer.payload.region)
        for customer in people
    ]
    burst = [
        REGISTRY.new_event(event_type, payload, region=session.region)
        for session in world.sessions(catalog, people, events)
        for event_type, payload in session.events
    ]
    return seed_events, burst


def write_through_outbox(
    engine: Engine,
    outbox: Outbox,
    envelopes: Iterable[Sequence[Envelope]],
    progress: Progress,
    description: str,
    total: int,
    committed_at: dict[Any, float],
) -> None:
    """Write each batch of events in its own transaction, as the services do."""
    task = progress.add_task(description, total=total)
    for batch in envelopes:
        with engine.begin() as connection:
            outbox.add(connection, batch)
        now = time.perf_counter()
        for envelope in batch:
            committed_at[envelope.event_id] = now
        progress.advance(task, len(batch))


def run_demo(
    settings: Settings,
    *,
    keep: bool,
    customers: int,
    products: int,
    events: int,
    seed: int,
    console: Console,
) -> DemoReport:
    """Run the main job and print its summary."""
    started = time.perf_counter()
    stack = Stack(settings)
    try:
        resolve_endpoints(settings)
        was_running = True  # a stack someone brought up with `souk up` stays up
    except StackError:
        was_running = False
    try:
        with console.status("[bold]starting the local stack…") as status:
            broker_before = embedded_broker_identity(settings)
            endpoints = stack.up(on_progress=lambda line: status.update(f"[bold]{line}"))
            prepare_platform(
                settings,
                endpoints,
                broker_before=broker_before,
                progress=lambda line: status.update(f"[bold]{line}"),
            )
        console.print(f"[green]stack up[/green] in {time.perf_counter() - started:.1f}s")
        report = _run(settings, endpoints, customers, products, events, seed, console)
        _print_summary(console, settings, endpoints, report)
    finally:
        if keep or was_running:
            console.print("stack left running; stop it with [bold]souk down[/bold]")
        else:
            stack.down()
            console.print("stack stopped")
    return report


def _run(
    settings: Settings,
    endpoints: Endpoints,
    customers: int,
    products: int,
    events: int,
    seed: int,
    console: Console,
) -> DemoReport:
    report = DemoReport()
    seed_events, burst = build_events(settings, customers, products, events, seed)
    expected = {envelope.event_id for envelope in seed_events + burst}
    seen: set[Any] = set()
    committed_at: dict[Any, float] = {}
    done = threading.Event()

    def audit(envelope: Envelope, _payload: msgspec.Struct, _tx: Connection) -> None:
        # The inbox row written in this transaction is the audit record; memory only feeds
        # the progress bar and the latency figures.
        if envelope.event_id in expected and envelope.event_id not in seen:
            seen.add(envelope.event_id)
            committed = committed_at.get(envelope.event_id)
            if committed is not None:
                report.latencies_ms.append((time.perf_counter() - committed) * 1000)
            if len(seen) == len(expected):
                done.set()

    engine = create_db_engine(endpoints.database_url, pool_size=4, application_name="souk-demo")
    topics = [
        topic_for(domain, region) for region in settings.regions for domain in REGISTRY.domains()
    ]
    consumer = build_consumer(
        settings,
        endpoints.database_url,
        endpoints.kafka_bootstrap,
        name=AUDIT_CONSUMER,
        topics=topics,
        handler=audit,
        engine=engine,
    )
    relay = build_relay(settings, endpoints.database_url, endpoints.kafka_bootstrap)
    outbox = build_outbox(settings)
    stop = threading.Event()
    relay_thread = threading.Thread(target=relay.run, args=(stop,), name="relay", daemon=True)
    relay_thread.start()
    consumer_thread = threading.Thread(
        target=consumer.run, kwargs={"stop": done}, name="audit-consumer", daemon=True
    )
    consumer_thread.start()
    try:
        with console.status("[bold]audit consumer joining its group…"):
            # Measure delivery, not the group join (Tansu holds a join for half the session).
            consumer.assigned.wait(30)
        with _progress(console) as progress:
            t0 = time.perf_counter()
            write_through_outbox(
                engine,
                outbox,
                _chunks(seed_events, TX_BATCH),
                progress,
                "seed sellers, catalog, stock, customers",
                len(seed_events),
                committed_at,
            )
            write_through_outbox(
                engine,
                outbox,
                _chunks(burst, 5),
                progress,
                "shopper burst (sessions)",
                len(burst),
                committed_at,
            )
            for envelope in seed_events + burst:
                report.written[envelope.event_type] += 1
            report.write_seconds = time.perf_counter() - t0
            task = progress.add_task("relay → kafka → audit consumer", total=len(expected))
            deadline = time.monotonic() + 180
            while not done.wait(0.2) and time.monotonic() < deadline:
                progress.update(task, completed=len(seen))
            progress.update(task, completed=len(seen))
            report.deliver_seconds = time.perf_counter() - t0
    finally:
        done.set()
        stop.set()
        consumer_thread.join(30)
        relay_thread.join(30)
        consumer.close()
        relay.close()
    try:
        _count_from_database(engine, report, [e.event_id for e in seed_events + burst])
    finally:
        engine.dispose()
    report.dead_lettered = consumer.processor.stats.dead_lettered
    report.duplicates = consumer.processor.stats.duplicates
    return report


def _count_from_database(engine: Engine, report: DemoReport, event_ids: list[Any]) -> None:
    """What the audit consumer applied (its inbox rows) and what is still unpublished."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT event_type, count(*) FROM inbox WHERE consumer = :c "
                "AND event_id = ANY(:ids) GROUP BY event_type"
            ),
            {"c": AUDIT_CONSUMER, "ids": event_ids},
        ).all()
        report.pending = connection.execute(
            text("SELECT count(*) FROM outbox WHERE published_at IS NULL AND event_id = ANY(:ids)"),
            {"ids": event_ids},
        ).scalar_one()
    report.consumed = Counter({event_type: count for event_type, count in rows})


def _print_summary(
    console: Console, settings: Settings, endpoints: Endpoints, report: DemoReport
) -> None:
    table = Table(title="Events: written through the outbox → consumed once")
    table.add_column("event type")
    table.add_column(f"topics ({', '.join(settings.regions)})", style="dim")
    table.add_column("written", justify="right")
    table.add_column("consumed", justify="right")
    for event_type in sorted(report.written):
        domain = REGISTRY.spec(event_type).domain
        table.add_row(
            event_type,
            f"<region>.{domain}.v1",
            str(report.written[event_type]),
            str(report.consumed[event_type]),
        )
    written, consumed = sum(report.written.values()), sum(report.consumed.values())
    table.add_row("[bold]total", "", f"[bold]{written}", f"[bold]{consumed}")
    console.print(table)
    latencies = sorted(report.latencies_ms) or [0.0]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    figures = Table(title="Figures", show_header=False)
    figures.add_column("what")
    figures.add_column("value", justify="right")
    figures.add_row(
        "outbox write rate", f"{written / max(report.write_seconds, 1e-9):,.0f} events/s"
    )
    figures.add_row("write → all consumed", f"{report.deliver_seconds:.1f} s")
    figures.add_row(
        "commit → consumer p50 / p99", f"{statistics.median(latencies):,.0f} / {p99:,.0f} ms"
    )
    figures.add_row("dead-lettered", str(report.dead_lettered))
    figures.add_row("still unpublished in the outbox", str(report.pending))
    figures.add_row("written but not consumed", str(written - consumed))
    console.print(figures)
    where = Table(title="Endpoints", show_header=False)
    where.add_row("PostgreSQL", endpoints.database_url)
    where.add_row("Redis", endpoints.redis_url)
    where.add_row("Kafka", endpoints.kafka_bootstrap)
    console.print(where)
    verdict = "[green]OK[/green]" if report.ok else "[red]INCOMPLETE[/red]"
    console.print(
        f"demo {verdict}: {consumed}/{written} events delivered exactly once to the audit consumer"
    )
