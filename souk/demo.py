"""The platform's main job, end to end on the local stack, with a printed summary.

Stack up → migrations and topics → `souk serve` in a child process → sellers, catalog and stock
seeded through the HTTP API → simulated shoppers browse, buy, get declined, run out of stock and
cancel (a few fraudsters among them) → the relay publishes every outbox event to Kafka → an
audit consumer group applies each exactly once → summary and invariants → stack down (unless
``keep``). The report is not ``ok`` (and ``souk demo`` exits 1) when an invariant fails: an
event not delivered exactly once, a 5xx, an oversold SKU, or no order at all.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Connection, Engine, text

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.demo_analytics import (
    AnalyticsSummary,
    LoaderHandle,
    analytics_summary,
    start_loader,
    stop_loader,
)
from souk.demo_batch import (
    ArchiverThread,
    BatchReport,
    import_history,
    print_batch,
    run_jobs,
    wait_archived,
)
from souk.demo_money import (
    MONEY_SERVER_ENV,
    MoneySummary,
    money_after_run,
    print_money,
    upi_payer,
)
from souk.demo_serving import ServingReport, print_serving, tour
from souk.demo_streaming import StreamingReport, collect, print_report, start_jobs, stop_jobs
from souk.seed import CatalogPlan, SeededCatalog, seed_catalog
from souk.settings import Settings
from souk.simulate_cli import admin_token
from souk.simulation import (
    ShopperModel,
    SimulationConfig,
    SimulationReport,
    StockAudit,
    audit_stock,
    report_tables,
    run_simulation,
    serve_subprocess,
    server_environment,
    with_money,
)
from souk.stack import Stack
from souk.stack.endpoints import Endpoints, resolve_endpoints
from souk.stack.errors import StackError
from souk.startup import embedded_broker_identity, prepare_platform
from souk.synthetic import SyntheticWorld
from souk.wiring import build_consumer, build_relay
from transactional.shared.db import create_db_engine

AUDIT_CONSUMER = "souk-demo-audit"
EVENTS_PER_SESSION = 6  # behaviour events a simulated session sends, on average
SESSION_RATE = 6.0  # sessions started per second
MAX_SHOPPING_S = 60.0  # keeps `souk demo` within a couple of minutes on 2 cores
REVISIT_S = 20.0  # the shoppers' second visit, once the batch jobs promoted their models
DELIVERY_TIMEOUT_S = 180.0
SIM_REGIONS = {"eu": 0.5, "us": 0.3, "in": 0.2}  # the regions the simulation has addresses in


@dataclass
class DemoReport:
    """What the demo did and whether every invariant held."""

    catalog: SeededCatalog | None = None
    simulation: SimulationReport | None = None
    stock: StockAudit | None = None
    written: Counter[str] = field(default_factory=Counter)  # event type → outbox rows
    consumed: Counter[str] = field(default_factory=Counter)  # event type → audit inbox rows
    published: Counter[str] = field(default_factory=Counter)  # topic → published rows
    pending: int = 0  # written but still unpublished when the demo ended
    dead_lettered: int = 0
    duplicates: int = 0  # redeliveries the consumer's inbox absorbed (not a failure)
    orders_by_status: Counter[str] = field(default_factory=Counter)
    revenue: Counter[str] = field(default_factory=Counter)  # currency → paid - refunded, minor
    latency_ms: tuple[float, float] = (0.0, 0.0)  # outbox commit → audit consumer, p50/p99
    seed_s: float = 0.0
    shop_s: float = 0.0
    deliver_s: float = 0.0
    streaming: StreamingReport = field(default_factory=StreamingReport)
    batch: BatchReport = field(default_factory=BatchReport)
    serving: ServingReport = field(default_factory=ServingReport)
    revisit: SimulationReport | None = None  # the second visit, after the models
    analytics: AnalyticsSummary = field(default_factory=AnalyticsSummary)
    money: MoneySummary = field(default_factory=MoneySummary)
    failures: list[str] = field(default_factory=list)

    @property
    def delivered_once(self) -> bool:
        """Every event written during the demo published and applied exactly once."""
        return self.pending == 0 and self.consumed == self.written and bool(self.written)

    @property
    def ok(self) -> bool:
        """Every invariant held."""
        return not self.failures


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def revisit_config(config: SimulationConfig) -> SimulationConfig:
    """The shoppers' second visit: the same accounts, new sessions, for ``REVISIT_S``."""
    planned = math.ceil(config.rate * config.duration) + 1000  # past the first visit's plans
    return replace(config, duration=REVISIT_S, first_session=planned)


def shopping_config(
    settings: Settings,
    customers: int,
    events: int,
    seed: int,
    rate: float = SESSION_RATE,
    duration: float | None = None,
) -> SimulationConfig:
    """The simulation sized for the demo: ``events`` behaviour events, at most a minute."""
    sessions = max(10, math.ceil(events / EVENTS_PER_SESSION))
    regions = tuple(r for r in settings.regions if r in SIM_REGIONS) or ("eu",)
    return with_money(  # every payment method of each region's mix, top-ups, returns
        SimulationConfig(
            users=customers,
            rate=rate,
            duration=duration or min(MAX_SHOPPING_S, max(3.0, sessions / rate)),
            seed=seed,
            regions=regions,
            region_weights=tuple(SIM_REGIONS.get(r, 1.0) for r in regions),
            workers=12,
        )
    )


def run_demo(
    settings: Settings,
    *,
    keep: bool,
    customers: int,
    products: int,
    events: int,
    seed: int,
    console: Console,
    rate: float = SESSION_RATE,
    duration: float | None = None,
) -> DemoReport:
    """Run the main job and print its summary.

    ``customers`` shopper accounts (registered when first used), ``products`` listed by
    ``products // 10`` sellers, shoppers arriving at ``rate`` per second for ``duration``
    seconds (default: long enough for about ``events`` behaviour events, at most a minute).
    """
    started = time.perf_counter()
    stack = Stack(settings)
    try:
        resolve_endpoints(settings)
        was_running = True  # a stack someone brought up with `souk up` stays up
    except StackError:
        was_running = False
    streaming = StreamingReport()  # the jobs this run started (stopped at the end, even on error)
    analytics: LoaderHandle | None = None
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
        # Every topic → ClickHouse (chdb) while the shoppers shop, as `souk up` runs it.
        analytics = start_loader(settings)
        config = shopping_config(settings, customers, events, seed, rate, duration)
        report = _run(settings, endpoints, config, products, console, streaming, analytics)
        _print_summary(console, settings, endpoints, report)
    finally:
        if analytics is not None:
            stop_loader(analytics, keep=keep or was_running)
        if not keep:
            stop_jobs(settings, streaming)
        if keep or was_running:
            console.print("stack left running; stop it with [bold]souk down[/bold]")
        else:
            stack.down()
            console.print("stack stopped")
    return report


def _run(
    settings: Settings,
    endpoints: Endpoints,
    config: SimulationConfig,
    products: int,
    console: Console,
    streaming: StreamingReport,
    analytics: LoaderHandle,
) -> DemoReport:
    report = DemoReport(streaming=streaming)
    seen: set[uuid.UUID] = set()

    def audit(envelope: Envelope, _payload: msgspec.Struct, _tx: Connection) -> None:
        # The inbox row written in this transaction is the audit record; memory only feeds
        # the progress bar.
        seen.add(envelope.event_id)

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
    stop = threading.Event()
    relay_thread = threading.Thread(
        target=relay.run,
        args=(stop,),
        kwargs={"poll_interval_s": settings.relay_poll_interval_s},
        name="relay",
        daemon=True,
    )
    consumer_thread = threading.Thread(
        target=consumer.run, kwargs={"stop": stop}, name="audit-consumer", daemon=True
    )
    with engine.connect() as connection:
        first_id = connection.execute(text("SELECT coalesce(max(id), 0) FROM outbox")).scalar_one()
    relay_thread.start()
    consumer_thread.start()
    archiver = ArchiverThread(settings).start()  # every topic → the lake's bronze tables
    # The streaming jobs start (≈20 s each) while the catalog is seeded.
    console.print("starting the streaming jobs (inventory, trending, fraud) in the background")
    pipelines = start_jobs(settings, report.streaming)
    env = server_environment(
        settings, endpoints.database_url, endpoints.redis_url, endpoints.kafka_bootstrap
    )
    env.update(MONEY_SERVER_ENV)
    log_path = settings.state_dir / "demo-serve.log"
    try:
        with serve_subprocess(env, log_path=log_path) as base_url:
            console.print(f"[green]serving[/green] the APIs at {base_url} (log: {log_path})")
            seed_started = time.perf_counter()
            catalog = _seed(settings, base_url, products, config.seed, console)
            report.catalog = catalog
            shop_started = time.perf_counter()
            shopping_began = datetime.now(UTC)
            shoppers_tag = secrets.token_hex(3)  # the revisit signs the same accounts in
            report.seed_s = shop_started - seed_started
            report.simulation = run_simulation(
                base_url,
                catalog,
                config,
                console=console,
                tag=shoppers_tag,
                admin_token=admin_token(settings),
                upi_payer=upi_payer(settings, engine),
            )
            report.shop_s = time.perf_counter() - shop_started
        with console.status("[bold]audit consumer joining its group…"):
            consumer.assigned.wait(30)
        expected = _written_since(engine, first_id)
        t0 = time.perf_counter()
        with _progress(console) as progress:
            task = progress.add_task("relay → kafka → audit consumer", total=len(expected))
            deadline = time.monotonic() + DELIVERY_TIMEOUT_S
            while time.monotonic() < deadline:
                done = len(expected.keys() & seen)
                progress.update(task, completed=done)
                if done == len(expected):
                    break
                time.sleep(0.2)
        report.deliver_s = time.perf_counter() - t0
    finally:
        stop.set()
        consumer_thread.join(30)
        relay_thread.join(30)
        consumer.close()
        relay.close()
    try:
        wait_archived(settings, (str(event_id) for event_id in expected), report.batch, console)
    finally:
        archiver.close()
    if archiver.error is not None:
        report.batch.failures.append(f"the archiver failed: {archiver.error}")
    try:
        _count_from_database(engine, report, first_id, list(expected))
        report.stock = audit_stock(engine, catalog.initial_stock())
        with console.status("[bold]streaming jobs catching up with the last events…"):
            pipelines.join(180)
            collect(
                settings,
                engine,
                endpoints.redis_url,
                endpoints.kafka_bootstrap,
                report.simulation,
                report.streaming,
            )
    finally:
        engine.dispose()
    report.dead_lettered = consumer.processor.stats.dead_lettered
    report.duplicates = consumer.processor.stats.duplicates
    # A one-minute run gives each shopper a handful of events: like a shop moving to Souk,
    # the lake also gets their earlier visits (same shoppers, same tastes) before training.
    import_history(
        settings,
        report.simulation,
        ShopperModel(catalog, config),
        report.batch,
        console,
        before=shopping_began,
    )
    run_jobs(settings, report.simulation, report.batch, console)
    # The same shoppers come back once the models are promoted: their for-you and similar
    # lists come from ALS and the item vectors, and their clicks measure each version online.
    console.print(f"the shoppers come back for {REVISIT_S:.0f} s (models promoted)")
    with serve_subprocess(env, log_path=log_path, relay=True) as base_url:
        report.revisit = run_simulation(
            base_url,
            catalog,
            revisit_config(config),
            console=console,
            tag=shoppers_tag,
            admin_token=admin_token(settings),
            upi_payer=upi_payer(settings, engine),
        )
    report.money = money_after_run(
        settings, endpoints.database_url, report.simulation, report.revisit
    )
    with console.status("[bold]asking the serving endpoints for the summary…"):
        report.serving = tour(
            settings,
            endpoints.database_url,
            endpoints.redis_url,
            report.simulation,
            since=shopping_began,
            revisit=report.revisit,
        )
    with console.status("[bold]the analytics store catching up…"):
        summary = analytics_summary(
            analytics,
            orders_placed=sum(report.orders_by_status.values()),
            revenue=dict(report.revenue),
            order_ids=list(report.simulation.orders) if report.simulation else [],
        )
    report.analytics = summary
    report.failures = _failures(report)
    return report


def _seed(
    settings: Settings, base_url: str, products: int, seed: int, console: Console
) -> SeededCatalog:
    with _progress(console) as progress:
        tasks: dict[str, Any] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"seed {stage} through the API", total=total)
            progress.update(tasks[stage], completed=done)

        return seed_catalog(
            base_url,
            admin_token(settings),
            SyntheticWorld([r for r in settings.regions if r in SIM_REGIONS] or ["eu"], seed),
            CatalogPlan(sellers=max(2, products // 10), products=products),
            advance,
        )


def _written_since(engine: Engine, first_id: int) -> dict[uuid.UUID, str]:
    """Event id → type of every outbox row written after ``first_id``."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event_id, event_type FROM outbox WHERE id > :first"),
            {"first": first_id},
        ).all()
    return {row.event_id: row.event_type for row in rows}


def _count_from_database(
    engine: Engine, report: DemoReport, first_id: int, event_ids: list[uuid.UUID]
) -> None:
    """Written, published and audited events; orders and revenue of the simulated shoppers."""
    order_ids = list(report.simulation.orders) if report.simulation else []
    with engine.connect() as connection:
        for row in connection.execute(
            text(
                "SELECT event_type, topic, count(*) AS n, "
                "count(*) FILTER (WHERE published_at IS NOT NULL) AS published "
                "FROM outbox WHERE event_id = ANY(:ids) GROUP BY event_type, topic"
            ),
            {"ids": event_ids},
        ):
            report.written[row.event_type] += row.n
            report.published[row.topic] += row.published
            report.pending += row.n - row.published
        for row in connection.execute(
            text(
                "SELECT event_type, count(*) AS n FROM inbox WHERE consumer = :c "
                "AND event_id = ANY(:ids) GROUP BY event_type"
            ),
            {"c": AUDIT_CONSUMER, "ids": event_ids},
        ):
            report.consumed[row.event_type] += row.n
        latency = connection.execute(
            text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, "
                "percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99 FROM ("
                "SELECT extract(epoch FROM i.processed_at - o.created_at) * 1000 AS ms "
                "FROM inbox AS i JOIN outbox AS o USING (event_id) "
                "WHERE i.consumer = :c AND o.id > :first) AS delays"
            ),
            {"c": AUDIT_CONSUMER, "first": first_id},
        ).one()
        report.latency_ms = (float(latency.p50 or 0), float(latency.p99 or 0))
        for row in connection.execute(
            text(
                "SELECT status, currency, count(*) AS n, "
                "sum(coalesce(paid_minor, 0) - refunded_minor) AS net "
                "FROM orders WHERE order_id = ANY(:ids) GROUP BY status, currency"
            ),
            {"ids": order_ids},
        ):
            report.orders_by_status[row.status] += row.n
            report.revenue[row.currency.strip()] += int(row.net or 0)


def _failures(report: DemoReport) -> list[str]:
    """The invariants that did not hold, one line each."""
    failures = []
    written, consumed = sum(report.written.values()), sum(report.consumed.values())
    if not report.delivered_once:
        failures.append(
            f"{consumed}/{written} events delivered exactly once to the audit consumer "
            f"({report.pending} still unpublished)"
        )
    simulation = report.simulation
    if simulation is not None:
        if simulation.five_xx or simulation.transport_errors:
            failures.append(
                f"{simulation.five_xx} server errors (5xx) and "
                f"{simulation.transport_errors} transport errors"
            )
        if simulation.unexpected:
            failures.append(f"{sum(simulation.unexpected.values())} unexpected API answers")
        if simulation.replay_mismatches:
            failures.append(f"{simulation.replay_mismatches} idempotent replays answered otherwise")
        if not simulation.orders:
            failures.append("no order was placed")
    streaming = report.streaming
    for job, where in streaming.started.items():
        if where.startswith("error"):
            failures.append(f"streaming job {job}: {where}")
    if streaming.skus_differing:
        failures.append(
            f"the inventory view differs from PostgreSQL for {streaming.skus_differing} SKUs"
        )
    if report.stock is not None and not report.stock.ok:
        failures.append(
            f"{sum(report.stock.oversold.values())} units oversold, "
            f"{len(report.stock.invalid)} stock rows negative or over-reserved"
        )
    failures += report.batch.failures
    failures += [f"serving {failure}" for failure in report.serving.failures]
    failures += [f"analytics: {failure}" for failure in report.analytics.failures]
    failures += [f"money: {failure}" for failure in report.money.failures]
    revisit = report.revisit
    if revisit is not None and (revisit.five_xx or revisit.transport_errors):
        failures.append(
            f"second visit: {revisit.five_xx} server errors (5xx) and "
            f"{revisit.transport_errors} transport errors"
        )
    return failures


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


def _print_summary(
    console: Console, settings: Settings, endpoints: Endpoints, report: DemoReport
) -> None:
    if report.simulation is not None:
        for table in report_tables(report.simulation):
            console.print(table)
    table = Table(title="Events: written through the outbox → consumed once")
    table.add_column("event type")
    table.add_column("written", justify="right")
    table.add_column("consumed", justify="right")
    for event_type in sorted(report.written):
        table.add_row(event_type, str(report.written[event_type]), str(report.consumed[event_type]))
    written, consumed = sum(report.written.values()), sum(report.consumed.values())
    table.add_row("[bold]total", f"[bold]{written}", f"[bold]{consumed}")
    console.print(table)
    topics = Table(title=f"Published per topic (regions {', '.join(settings.regions)})")
    topics.add_column("topic")
    topics.add_column("events", justify="right")
    for topic, count in sorted(report.published.items()):
        topics.add_row(topic, str(count))
    console.print(topics)

    figures = Table(title="Purchase path", show_header=False)
    figures.add_column("what")
    figures.add_column("value", justify="right")
    if report.catalog is not None:
        figures.add_row(
            "catalog seeded through the API",
            f"{len(report.catalog.sellers)} sellers, {len(report.catalog.products)} products, "
            f"{len(report.catalog.skus)} SKUs ({report.seed_s:.1f} s)",
        )
    for status, count in sorted(report.orders_by_status.items()):
        figures.add_row(f"orders {status}", str(count))
    for currency, minor in sorted(report.revenue.items()):
        figures.add_row(f"revenue {currency} (paid - refunded)", _money(minor, currency))
    simulation = report.simulation
    if simulation is not None:
        figures.add_row("checkout stock-outs (409)", str(simulation.checkouts_out_of_stock))
        figures.add_row("add-to-cart stock-outs (409)", str(simulation.items_refused))
        figures.add_row("declined payments (402)", str(simulation.checkouts_declined))
        figures.add_row("5xx responses", str(simulation.five_xx))
    if report.stock is not None:
        figures.add_row(
            "units seeded / sold / on hand",
            f"{report.stock.seeded:,} / {report.stock.sold:,} / {report.stock.on_hand:,}",
        )
        figures.add_row("oversold units", str(sum(report.stock.oversold.values())))
        figures.add_row("SKUs whose stock and live orders disagree", str(len(report.stock.drift)))
    figures.add_row("write → all consumed", f"{report.deliver_s:.1f} s after the shoppers left")
    figures.add_row(
        "outbox commit → audit consumer p50 / p99",
        f"{report.latency_ms[0]:,.0f} / {report.latency_ms[1]:,.0f} ms",
    )
    figures.add_row("dead-lettered", str(report.dead_lettered))
    figures.add_row("redeliveries absorbed by the inbox", str(report.duplicates))
    figures.add_row("still unpublished in the outbox", str(report.pending))
    console.print(figures)
    print_report(console, report.streaming)
    print_batch(console, report.batch)
    print_serving(console, report.serving)
    print_money(console, report.money)
    for line in report.analytics.lines:
        console.print(line)
    where = Table(title="Endpoints", show_header=False)
    where.add_row("PostgreSQL", endpoints.database_url)
    where.add_row("Redis", endpoints.redis_url)
    where.add_row("Kafka", endpoints.kafka_bootstrap)
    console.print(where)
    for line in report.failures:
        console.print(f"[red]invariant failed:[/red] {line}")
    verdict = "[green]OK[/green]" if report.ok else "[red]FAILED[/red]"
    console.print(
        f"demo {verdict}: {consumed}/{written} events delivered exactly once to the audit "
        f"consumer, {len(simulation.orders) if simulation else 0} orders, "
        f"{simulation.five_xx if simulation else 0} 5xx, "
        f"{sum(report.stock.oversold.values()) if report.stock else 0} units oversold"
    )
