"""``souk jobs …``: list, run and schedule the batch jobs, their run history, the Airflow DAG.

Job targets are imported only when a job runs (Spark and the model libraries are slow to
import), so ``list``, ``history`` and ``export-airflow`` stay fast.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from jobs.schedule import (
    JobDefinition,
    JobRun,
    ScheduleError,
    due_jobs,
    is_due,
    job,
    last_successes,
    next_tick,
    run_plan,
    topological_order,
    with_upstream,
)
from souk.logging import configure_logging
from souk.settings import get_settings

if TYPE_CHECKING:
    from jobs.runs import RunHistory

jobs_app = typer.Typer(
    name="jobs",
    help="Batch jobs: list, run, schedule what is due, history, export to Airflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

#: `souk jobs run --if-due` exits with this when the job is not due: BashOperator's skip code.
NOT_DUE_EXIT = 99
_COLOURS = {"succeeded": "green", "failed": "red", "skipped": "yellow"}


def fail(message: str) -> typer.Exit:
    """Print a one-line error in red; the caller raises the returned Exit."""
    err_console.print(f"[red]error:[/red] {escape(' '.join(message.split()))}")
    return typer.Exit(1)


def load_definitions() -> tuple[JobDefinition, ...]:
    """The platform's job definitions (``jobs.definitions.DEFINITIONS``)."""
    from jobs.definitions import DEFINITIONS

    return DEFINITIONS


def open_history() -> RunHistory:
    """The run history (``ops/job_runs``) in the configured lake."""
    from jobs.runs import run_history

    return run_history(get_settings())


def _now() -> datetime:
    return datetime.now(UTC)


def _ordered() -> list[JobDefinition]:
    try:
        return topological_order(load_definitions())
    except ScheduleError as exc:
        raise fail(f"job definitions: {exc}") from None


def _runs(history: RunHistory, name: str | None = None, limit: int | None = None) -> list[JobRun]:
    try:
        return history.runs(name, limit)
    except Exception as exc:  # an unreachable or broken lake: one line, not a traceback
        raise fail(f"run history {history.table}: {exc}") from None


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status(status: str) -> str:
    colour = _COLOURS.get(status, "white")
    return f"[{colour}]{status}[/{colour}]"


def _rows_out(run: JobRun) -> str:
    return ", ".join(f"{table} {rows:,}" for table, rows in run.rows_out.items()) or "-"


def _summary(run: JobRun, *, with_error: bool = True) -> str:
    """One line per run: status, time, rows (or why it failed or was skipped)."""
    text = f"{run.job}: {_status(run.status)} in {run.duration_s:.1f} s"
    if run.status == "succeeded":
        return f"{text}, {run.rows_in:,} rows in → {escape(_rows_out(run))}"
    return f"{text}: {escape(run.error or '')}" if with_error else text


def _interrupted() -> typer.Exit:
    err_console.print("[red]interrupted:[/red] the running job is recorded as failed")
    return typer.Exit(130)


def _parse_since(since: str | None) -> date | None:
    if since is None:
        return None
    try:
        return date.fromisoformat(since)
    except ValueError:
        raise fail(f"--since {since!r} is not a date (YYYY-MM-DD)") from None


@jobs_app.callback()
def jobs() -> None:
    """Batch jobs: list, run, schedule what is due, history, export to Airflow."""
    # A callback keeps this a command group, whatever the number of commands.


@jobs_app.command("list")
def list_jobs() -> None:
    """Every job: its cron, dependencies, tables read and written, last run and next due."""
    definitions = _ordered()
    history = open_history()
    try:
        runs = history.runs()
    except Exception as exc:  # still list the definitions without their runs
        err_console.print(f"[yellow]warning:[/yellow] run history unavailable: {escape(str(exc))}")
        runs = []
    latest: dict[str, JobRun] = {}
    for run in runs:  # newest first
        latest.setdefault(run.job, run)
    successes = last_successes(runs)
    now = _now()
    table = Table(title="Batch jobs (cron in UTC)")
    for column in ("Job", "Schedule", "Depends on", "Inputs → outputs", "Last run", "Next"):
        table.add_column(column, overflow="fold")
    for definition in definitions:
        last = latest.get(definition.name)
        last_text = "never" if last is None else f"{_status(last.status)} {_when(last.started_at)}"
        success = successes.get(definition.name)
        if success is None or is_due(definition, success, now):
            next_text = "[bold]due now[/bold]"
        else:
            next_text = _when(next_tick(definition, success))
        table.add_row(
            definition.name,
            definition.schedule,
            ", ".join(definition.depends_on) or "-",
            escape(
                f"{', '.join(definition.inputs) or '-'} → {', '.join(definition.outputs) or '-'}"
            ),
            last_text,
            next_text,
        )
    console.print(table)


@contextmanager
def _progress() -> Iterator[Progress]:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield progress


def _run_with_progress(
    plan: Sequence[JobDefinition],
    history: RunHistory,
    *,
    full: bool,
    since: date | None,
    with_errors: bool = True,
) -> list[JobRun]:
    """Run ``plan`` in order under a progress bar, printing one line per finished job."""
    configure_logging("WARNING")  # a failing job's traceback, through rich on stderr
    with _progress() as progress:
        bar = progress.add_task("starting", total=len(plan))

        def started(definition: JobDefinition) -> None:
            progress.update(bar, description=f"{definition.name}: running")

        def ended(run: JobRun) -> None:
            line = _summary(run, with_error=with_errors)
            progress.console.print(line, highlight=False, soft_wrap=True)
            progress.advance(bar)

        return run_plan(
            plan,
            get_settings(),
            full=full,
            since=since,
            record=history.record,
            on_start=started,
            on_end=ended,
        )


@jobs_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The job to run.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Reprocess from this date (YYYY-MM-DD).")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Rebuild from scratch.")] = False,
    with_deps: Annotated[
        bool, typer.Option("--with-deps", help="Run its upstream jobs first, in order.")
    ] = False,
    if_due: Annotated[
        bool,
        typer.Option(
            "--if-due",
            help=f"Run only if its cron ticked since its last success; else exit {NOT_DUE_EXIT}.",
        ),
    ] = False,
) -> None:
    """Run one job now (and its upstream jobs with --with-deps); record each run."""
    since_date = _parse_since(since)
    definitions = load_definitions()
    try:
        definition = job(definitions, name)
        plan = with_upstream(definitions, name) if with_deps else [definition]
    except ScheduleError as exc:
        raise fail(str(exc)) from None
    history = open_history()
    if if_due:
        success = last_successes(_runs(history, name)).get(name)
        if not is_due(definition, success, _now()):
            assert success is not None  # never-run jobs are always due
            console.print(f"{name}: not due (next tick {_when(next_tick(definition, success))})")
            raise typer.Exit(NOT_DUE_EXIT)
    try:
        runs = _run_with_progress(plan, history, full=full, since=since_date, with_errors=False)
    except KeyboardInterrupt:
        raise _interrupted() from None
    failed = [run for run in runs if run.status != "succeeded"]
    if failed:  # the first failure; the jobs after it were skipped because of it
        first = failed[0]
        raise fail(f"{first.job} {first.status}: {first.error}")


@jobs_app.command("schedule")
def schedule(
    loop: Annotated[bool, typer.Option("--loop", help="Keep scheduling until Ctrl-C.")] = False,
    every: Annotated[
        float, typer.Option("--every", min=1, help="Seconds between passes with --loop.")
    ] = 60.0,
) -> None:
    """Run every due job in dependency order (one pass; --loop repeats every --every seconds)."""
    definitions = _ordered()
    history = open_history()
    if not loop:
        try:
            runs = _schedule_pass(definitions, history)
        except KeyboardInterrupt:
            raise _interrupted() from None
        if any(run.status == "failed" for run in runs):
            raise typer.Exit(1)
        return
    console.print(f"scheduling every {every:g} s (Ctrl-C stops)")
    try:
        while True:
            try:
                _schedule_pass(definitions, history)
            except typer.Exit:  # history unreadable this pass: try again next time
                pass
            except Exception as exc:  # the loop outlives any one pass
                err_console.print(f"[red]error:[/red] scheduler pass: {escape(str(exc))}")
            time.sleep(every)
    except KeyboardInterrupt:
        console.print("scheduler stopped")


def _schedule_pass(definitions: list[JobDefinition], history: RunHistory) -> list[JobRun]:
    """One pass: read the history, run what is due, print what happened."""
    now = _now()
    due = due_jobs(definitions, _runs(history), now)
    if not due:
        console.print(f"{_when(now)}: nothing due")
        return []
    console.print(f"{_when(now)}: due: {', '.join(d.name for d in due)}")
    return _run_with_progress(due, history, full=False, since=None)


@jobs_app.command("history")
def history(
    name: Annotated[str | None, typer.Argument(help="Only this job's runs.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest runs to show.")] = 20,
) -> None:
    """Recorded runs, newest first: status, start, duration, rows in and out, errors."""
    runs = _runs(open_history(), name, limit)
    if not runs and name is not None:
        try:  # a typo deserves the list of jobs; a removed job's runs stay readable
            job(load_definitions(), name)
        except ScheduleError as exc:
            raise fail(str(exc)) from None
    if not runs:
        console.print("no runs recorded" + (f" for {name}" if name else ""))
        return
    table = Table(title=f"Job runs{' of ' + name if name else ''} (newest first, UTC)")
    for column in ("Run", "Job", "Status", "Started", "Took", "Rows in", "Rows out", "Notes"):
        table.add_column(column, overflow="fold", min_width=6)
    for run in runs:
        notes = [f"since {run.since}"] if run.since else []
        notes += ["full"] if run.full else []
        notes += [run.error] if run.error else []
        table.add_row(
            run.run_id[:8],
            run.job,
            _status(run.status),
            _when(run.started_at),
            f"{run.duration_s:.1f} s",
            f"{run.rows_in:,}",
            escape(_rows_out(run)),
            escape("; ".join(notes)),
        )
    console.print(table)


@jobs_app.command("export-airflow")
def export_airflow_cmd(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the DAG file here (default: stdout).")
    ] = None,
) -> None:
    """Print (or write) an Airflow DAG file that runs the jobs on their crons, in order."""
    from jobs.airflow_export import DAG_ID, export_airflow

    try:
        text = export_airflow(load_definitions(), get_settings())
    except ScheduleError as exc:
        raise fail(f"job definitions: {exc}") from None
    compile(text, str(out or "<dag>"), "exec")  # a generator bug must not ship a broken DAG
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except OSError as exc:
        raise fail(f"cannot write {out}: {exc}") from None
    console.print(f"wrote DAG {DAG_ID} ({len(load_definitions())} tasks) to {out}")
