"""The demo's batch half: the archiver fills the lake, then every scheduled job runs once.

While the shoppers shop, the archiver (jobs/archive.py) writes every topic into the bronze
Delta tables. After they leave, the demo waits until bronze holds every event the outbox
wrote, records the simulator's fraud labels, and runs the job definitions (jobs/definitions.py)
once in dependency order: silver → gold → ALS (evaluated beside item-kNN and popularity) →
item embeddings and their FAISS index, feature materialization, the fraud model. The summary
shows the lake's row counts, each run, the models' offline metrics, the FAISS recall, the
fraud model's AUC and the path of the HTML evaluation report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from jobs.archive import Archiver, build_archiver
from jobs.lake.store import lake_root, table_store
from souk.settings import Settings

if TYPE_CHECKING:
    from datetime import datetime

    from jobs.schedule import JobRun
    from souk.simulation.model import ShopperModel
    from souk.simulation.report import SimulationReport

#: How long the archiver gets to hold every event once the shoppers left.
ARCHIVE_TIMEOUT_S = 120.0
#: The shoppers' earlier visits imported before the jobs run: sessions, over this many days.
HISTORY_SESSIONS = 4000
HISTORY_DAYS = 28


@dataclass
class BatchReport:
    """What the batch half did."""

    expected: int = 0
    archived: int = 0
    archive_s: float = 0.0
    runs: list[JobRun] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    faiss: dict[str, Any] = field(default_factory=dict)
    fraud: dict[str, Any] = field(default_factory=dict)
    report_path: str | None = None
    history_events: int = 0
    history_customers: int = 0
    history_days: int = 0
    failures: list[str] = field(default_factory=list)


class ArchiverThread:
    """The archiver in a background thread of the demo (started before the shoppers)."""

    def __init__(self, settings: Settings) -> None:
        self.stop = threading.Event()
        self.archiver: Archiver = build_archiver(settings)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="archiver", daemon=True)

    def _run(self) -> None:
        try:
            self.archiver.run(self.stop)
        except BaseException as error:  # reported in the summary
            self.error = error

    def start(self) -> ArchiverThread:
        """Start archiving."""
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop archiving (after the current batch)."""
        self.stop.set()
        self.thread.join(60)


def bronze_event_ids(settings: Settings) -> set[str]:
    """Every event id in the bronze tables."""
    from souk.lake_cli import lake_tables

    store = table_store(settings)
    ids: set[str] = set()
    for name in lake_tables(lake_root(settings)):
        if name.startswith("bronze/") and not name.startswith("bronze/_"):
            ids.update(store.read(name, columns=["event_id"]).column("event_id").to_pylist())
    return ids


def wait_archived(
    settings: Settings, expected: Iterable[str], report: BatchReport, console: Console
) -> None:
    """Wait until bronze holds every expected event id (or the timeout)."""
    wanted = set(expected)
    report.expected = len(wanted)
    started = time.perf_counter()
    deadline = time.monotonic() + ARCHIVE_TIMEOUT_S
    with console.status("[bold]archiver: events → bronze Delta tables…"):
        while True:
            report.archived = len(wanted & bronze_event_ids(settings))
            if report.archived == len(wanted) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    report.archive_s = time.perf_counter() - started
    if report.archived != len(wanted):
        report.failures.append(
            f"bronze holds {report.archived} of {len(wanted)} events "
            f"after {ARCHIVE_TIMEOUT_S:.0f} s"
        )


def import_history(
    settings: Settings,
    simulation: SimulationReport | None,
    model: ShopperModel,
    report: BatchReport,
    console: Console,
    *,
    before: datetime,
) -> None:
    """Import the registered shoppers' earlier visits into bronze (see souk.simulation.history)."""
    from datetime import timedelta

    from jobs.archive import import_envelopes
    from souk.simulation.history import history_events

    if simulation is None or not simulation.customer_ids:
        return
    with console.status("[bold]importing the shoppers' earlier visits into the lake…"):
        events = history_events(
            model,
            simulation.customer_ids,
            sessions=HISTORY_SESSIONS,
            end=before,
            span=timedelta(days=HISTORY_DAYS),
        )
        report.history_events = import_envelopes(table_store(settings), events)
    report.history_customers = len(simulation.customer_ids)
    report.history_days = HISTORY_DAYS


def run_jobs(
    settings: Settings,
    simulation: SimulationReport | None,
    report: BatchReport,
    console: Console,
) -> None:
    """Record the fraud labels, then run every job definition once, upstream first."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from jobs.definitions import DEFINITIONS
    from jobs.runs import run_history
    from jobs.schedule import topological_order

    if simulation is not None:
        from models.fraud.training import record_labels

        record_labels(settings, simulation.fraud_labels)
    # The demo's jobs are short, on a little data: a local Spark JVM starts faster on C1.
    settings = settings.model_copy(update={"spark_quick_jvm": True})
    plan = topological_order(DEFINITIONS)
    history = run_history(settings)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("batch jobs", total=len(plan))

        def started(definition: Any) -> None:
            progress.update(task, description=f"batch job {definition.name}")

        def ended(run: JobRun) -> None:
            progress.advance(task)

        from jobs.schedule import run_plan

        report.runs = run_plan(
            plan, settings, full=True, record=history.record, on_start=started, on_end=ended
        )
    for run in report.runs:
        # A skipped job had too little data (e.g. no labelled fraud in a short run): shown
        # with its reason in the summary, not a failure of the platform.
        if run.status == "failed":
            report.failures.append(f"batch job {run.job} failed: {run.error}")
    _collect(settings, report)


def _collect(settings: Settings, report: BatchReport) -> None:
    """Row counts of the lake's tables and the models' figures."""
    from souk.lake_cli import lake_tables

    store = table_store(settings)
    for name in lake_tables(lake_root(settings)):
        report.tables[name] = store.read(name, columns=[]).num_rows
    from models.jobs import latest_figures

    figures = latest_figures(settings)
    report.metrics = figures.get("metrics", {})
    report.faiss = figures.get("faiss", {})
    report.fraud = figures.get("fraud", {})
    report.report_path = figures.get("report")


def print_batch(console: Console, report: BatchReport) -> None:
    """The batch half of the summary."""
    lake = Table(title="Lake (Delta): rows per table")
    lake.add_column("table")
    lake.add_column("rows", justify="right")
    for name, rows in sorted(report.tables.items()):
        lake.add_row(name, f"{rows:,}")
    lake.add_row(
        "[bold]archived events",
        f"[bold]{report.archived:,} of {report.expected:,} ({report.archive_s:.1f} s to catch up)",
    )
    if report.history_events:
        lake.add_row(
            "[bold]imported history",
            f"[bold]{report.history_events:,} events: {HISTORY_SESSIONS:,} earlier sessions "
            f"of {report.history_customers:,} shoppers over {report.history_days} days",
        )
    console.print(lake)
    runs = Table(title="Batch jobs (run once, upstream first)")
    for column in ("job", "status", "seconds", "rows in", "rows out"):
        runs.add_column(column)
    for run in report.runs:
        seconds = (run.ended_at - run.started_at).total_seconds()
        written = sum(run.rows_out.values())
        tables = len(run.rows_out)
        out = f"{written:,} in {tables} table{'s' if tables != 1 else ''}" if tables else ""
        colour = {"succeeded": "", "skipped": "yellow"}.get(run.status, "red")
        status = f"[{colour}]{run.status}[/{colour}]" if colour else run.status
        runs.add_row(
            run.job, status, f"{seconds:.1f}", f"{run.rows_in:,}", out or (run.error or "")
        )
    console.print(runs)
    if report.metrics:
        names = sorted({metric for values in report.metrics.values() for metric in values})
        models = Table(title="Recommenders: offline evaluation (time-based split)")
        models.add_column("model")
        for metric in names:
            models.add_column(metric, justify="right")
        for model, values in report.metrics.items():
            models.add_row(model, *(f"{values.get(metric, float('nan')):.3f}" for metric in names))
        console.print(models)
    extra = Table(show_header=False, title="Vectors and fraud model")
    extra.add_column("what")
    extra.add_column("value", justify="right")
    for key, value in report.faiss.items():
        extra.add_row(f"FAISS {key}", _show(value))
    for key, value in report.fraud.items():
        extra.add_row(f"fraud model {key}", _show(value))
    if report.report_path:
        extra.add_row("evaluation report", report.report_path)
    console.print(extra)


def _show(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)
