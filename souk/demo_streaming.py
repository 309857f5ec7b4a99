"""The demo's streaming part: start the three jobs, then read back what they computed.

Inventory: the Redis view against PostgreSQL for every seeded SKU. Trending: the top 5 per
region of the newest window. Fraud: alerts raised, with precision and recall against the
simulator's labels (per account).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import redis
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from schemas.registry import topic_for
from souk.settings import Settings
from souk.simulation.report import SimulationReport

#: How long the read models get to catch up with the last event.
CONVERGE_TIMEOUT_S = 60.0


@dataclass
class StreamingReport:
    """What the demo shows of the streaming jobs."""

    started: dict[str, str] = field(default_factory=dict)  # job → where, or the error
    skus_checked: int = 0
    skus_differing: int = 0
    inventory_converged_s: float | None = None
    trending: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    trending_window_end: dict[str, str] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)  # product id → title (PostgreSQL)
    alerts: int = 0
    alerted_customers: set[str] = field(default_factory=set)
    rules: dict[str, int] = field(default_factory=dict)
    rules_on_fraud: dict[str, int] = field(default_factory=dict)  # of those, on labelled fraud
    precision: float | None = None
    recall: float | None = None

    @property
    def ok(self) -> bool:
        """Every job started and the inventory view equals PostgreSQL."""
        started = all(not value.startswith("error") for value in self.started.values())
        return started and self.skus_checked > 0 and self.skus_differing == 0


def start_jobs(settings: Settings, report: StreamingReport) -> threading.Thread:
    """Start every job in the background (a thread, so seeding goes on meanwhile)."""
    from pipelines import control, registry
    from pipelines.common.errors import PipelineError

    def start_all() -> None:
        for name in registry.names():
            try:
                report.started[name] = control.start(settings, name)
            except PipelineError as error:
                report.started[name] = f"error: {error}"

    thread = threading.Thread(target=start_all, name="start-pipelines", daemon=True)
    thread.start()
    return thread


def stop_jobs(settings: Settings, report: StreamingReport) -> None:
    """Stop the jobs this demo started (checkpoints stay); ones that ran before keep running."""
    from pipelines import control

    for name, where in report.started.items():
        if not where.startswith(("already running", "error")):
            control.stop(settings, name)


def collect(
    settings: Settings,
    engine: Engine,
    redis_url: str,
    kafka_bootstrap: str,
    simulation: SimulationReport | None,
    report: StreamingReport,
) -> None:
    """Read the three jobs' results into ``report`` (waits for the inventory view)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        _inventory(engine, client, report)
        _trending(settings, client, report)
    finally:
        client.close()
    _titles(engine, report)
    _fraud(settings, kafka_bootstrap, simulation, report)


def _inventory(engine: Engine, client: redis.Redis, report: StreamingReport) -> None:
    from pipelines.inventory import stock_key

    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT sku, warehouse_id, on_hand - reserved AS available FROM stock_levels")
        ).all()
    truth = {(row.sku, row.warehouse_id): int(row.available) for row in rows}
    report.skus_checked = len({sku for sku, _ in truth})
    started = time.monotonic()
    deadline = started + CONVERGE_TIMEOUT_S
    while True:
        pipe = client.pipeline(transaction=False)
        for sku, warehouse in truth:
            pipe.hget(stock_key(sku), f"wh:{warehouse}")
        shown = pipe.execute()
        differing = {
            sku
            for (sku, _), value in zip(truth, shown, strict=True)
            if value is None or int(value) != truth[(sku, _)]
        }
        report.skus_differing = len(differing)
        if not differing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    report.inventory_converged_s = time.monotonic() - started


def _trending(settings: Settings, client: redis.Redis, report: StreamingReport) -> None:
    from pipelines import trending

    for region in settings.regions:
        scope = f"region:{region}"
        report.trending[scope] = trending.top(client, scope, 5)
        end = str(client.hget(trending.LATEST_KEY, scope) or "")
        if end:
            stamp = time.strftime("%H:%M:%S", time.gmtime(int(end) / 1000))
            report.trending_window_end[scope] = f"{stamp} UTC"


def _titles(engine: Engine, report: StreamingReport) -> None:
    """The titles of the trending products (the read model holds ids only)."""
    ids = sorted({product for top in report.trending.values() for product, _ in top})
    if not ids:
        return
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT product_id, title FROM products WHERE product_id = ANY(:ids)"),
            {"ids": ids},
        ).all()
    report.titles = {row.product_id: row.title for row in rows}


def _wait_caught_up(settings: Settings, kafka_bootstrap: str, job: str) -> None:
    """Wait (bounded) until ``job`` has read every event: no consumer lag at a checkpoint."""
    from pipelines import control

    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = control.status(settings, job, kafka_bootstrap)
        if not status.running or status.lag == 0:
            return
        time.sleep(1.0)


def _fraud(
    settings: Settings,
    kafka_bootstrap: str,
    simulation: SimulationReport | None,
    report: StreamingReport,
) -> None:
    """Alerts on the fraud topics for this run's customers; precision/recall per account."""
    customers = (
        {order.customer_id for order in simulation.orders.values()} | simulation.fraud_customers()
        if simulation
        else set()
    )
    _wait_caught_up(settings, kafka_bootstrap, "fraud")
    # A checkout's rules run once the watermark passes it or, in a quiet stream, this long
    # after it arrived: read until no alert came for that long.
    from pipelines.fraud import EVALUATION_GRACE_S

    quiet_s = (
        settings.stream_out_of_orderness_s + settings.stream_idle_timeout_s + EVALUATION_GRACE_S
    ) + 2
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"souk-demo-alerts-{time.time_ns()}",
            "enable.auto.commit": False,
        }
    )
    # Assigned, not subscribed: no group join to wait for (the embedded broker is slow at it).
    topics = [topic_for("fraud", region) for region in settings.regions]
    metadata = consumer.list_topics(timeout=10).topics
    consumer.assign(
        [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in topics
            if topic in metadata
            for partition in metadata[topic].partitions
        ]
    )
    quiet_since = time.monotonic()
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    rules: dict[str, int] = {}
    labelled = simulation.fraud_customers() if simulation else set()
    try:
        while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_s:
            message = consumer.poll(0.5)
            value = None if message is None or message.error() else message.value()
            if value is None:
                continue
            quiet_since = time.monotonic()
            envelope = json.loads(value)
            if envelope.get("event_type") != "fraud.alert_raised":
                continue
            payload = envelope["payload"]
            customer = payload.get("customer_id")
            if customers and customer not in customers:
                continue  # an earlier run's alert
            report.alerts += 1
            if customer:
                report.alerted_customers.add(customer)
            for rule in payload.get("rules", []):
                rules[rule] = rules.get(rule, 0) + 1
                if customer in labelled:
                    report.rules_on_fraud[rule] = report.rules_on_fraud.get(rule, 0) + 1
    finally:
        consumer.close()
    report.rules = dict(sorted(rules.items(), key=lambda item: -item[1]))
    if simulation is not None:
        fraud = simulation.fraud_customers()
        hits = len(report.alerted_customers & fraud)
        report.precision = (
            hits / len(report.alerted_customers) if report.alerted_customers else None
        )
        report.recall = hits / len(fraud) if fraud else None


def tables(report: StreamingReport) -> list[Table]:
    """The streaming part of the demo's summary."""
    jobs = Table(title="Streaming jobs (PyFlink)", show_header=False)
    jobs.add_column("what")
    jobs.add_column("value", overflow="fold")
    for name, where in report.started.items():
        jobs.add_row(f"job {name}", where)
    jobs.add_row(
        "inventory view vs PostgreSQL",
        f"{report.skus_differing} of {report.skus_checked} SKUs differ "
        f"(checked {report.inventory_converged_s or 0:.1f} s after the shoppers left)",
    )
    jobs.add_row("fraud alerts raised", str(report.alerts))
    jobs.add_row(
        "alerted accounts: precision / recall vs labels",
        f"{_share(report.precision)} / {_share(report.recall)}",
    )
    if report.rules:
        jobs.add_row(
            "rules fired (on labelled fraud)",
            ", ".join(
                f"{rule} {count} ({report.rules_on_fraud.get(rule, 0)})"
                for rule, count in report.rules.items()
            ),
        )
    trend = Table(title="Trending now: top 5 per region (weighted views, cart adds, purchases)")
    for column in ("region", "window end", "top 5 (product: score)"):
        trend.add_column(column, overflow="fold")
    for scope, top in report.trending.items():
        trend.add_row(
            scope.split(":", 1)[1],
            report.trending_window_end.get(scope, "-"),
            "\n".join(f"{report.titles.get(product, product)}: {score:g}" for product, score in top)
            or "(no window yet)",
        )
    return [jobs, trend]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def print_report(console: Console, report: StreamingReport) -> None:
    """Print the streaming tables."""
    for table in tables(report):
        console.print(table)
