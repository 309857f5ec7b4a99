"""``souk pipelines …``: list, run, start, stop and watch the streaming jobs."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from souk.settings import Settings, get_settings

if TYPE_CHECKING:
    from pipelines.control import JobStatus

pipelines_app = typer.Typer(
    name="pipelines",
    help="Streaming jobs (PyFlink): inventory, trending, fraud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> NoReturn:
    err_console.print(f"error: {message}", style="red", markup=False, highlight=False)
    raise typer.Exit(1)


def _names(name: str | None, all_jobs: bool) -> list[str]:
    from pipelines import registry

    if all_jobs or name is None:
        if not all_jobs:
            _fail("name a job or pass --all")
        return registry.names()
    try:
        registry.job(name)
    except KeyError as error:
        _fail(str(error.args[0]))
    return [name]


@pipelines_app.command("list")
def list_jobs() -> None:
    """Every job: what it computes, the topics it reads and the read models it writes."""
    from pipelines import registry

    settings = get_settings()
    table = Table(title="Streaming jobs")
    for column in ("Job", "What", "Reads", "Writes"):
        table.add_column(column, overflow="fold")
    for name in registry.names():
        job = registry.job(name)
        reads = ", ".join(f"<region>.{d}.v1" for d in job.source_domains)
        writes = ", ".join([*job.read_models, *job.sink_topics(settings)])
        table.add_row(name, job.description, reads, writes)
    console.print(table)


@pipelines_app.command("run")
def run(name: Annotated[str, typer.Argument(help="The job to run.")]) -> None:
    """Run one job in the foreground on Flink's mini-cluster (or SOUK_FLINK_URL) until Ctrl-C."""
    from pipelines import registry
    from pipelines.common.errors import PipelineError
    from pipelines.common.runner import run as run_job

    try:
        job = registry.job(name)
    except KeyError as error:
        _fail(str(error.args[0]))
    console.print(f"{name}: starting (Ctrl-C stops it; checkpoints are kept)")
    try:
        run_job(job, get_settings())
    except PipelineError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        console.print(f"{name}: stopped")


@pipelines_app.command("start")
def start(
    name: Annotated[str | None, typer.Argument(help="The job to start.")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Start every job.")] = False,
) -> None:
    """Start jobs in the background (resuming from their last checkpoint) and wait for them."""
    start_jobs(get_settings(), _names(name, all_jobs))


def start_jobs(settings: Settings, names: list[str]) -> None:
    """Start ``names`` in the background, one line each; exit 1 if any failed to start."""
    from pipelines import control
    from pipelines.common.errors import PipelineError

    failed = False
    for job in names:
        with console.status(f"{job}: starting"):
            try:
                where = control.start(settings, job)
            except PipelineError as error:
                err_console.print(f"error: {error}", style="red", markup=False)
                failed = True
                continue
        console.print(f"{job}: {where}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


@pipelines_app.command("stop")
def stop(
    name: Annotated[str | None, typer.Argument(help="The job to stop.")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Stop every job.")] = False,
) -> None:
    """Stop jobs (their checkpoints stay: the next start resumes from them)."""
    from pipelines import control

    settings = get_settings()
    for job in _names(name, all_jobs):
        stopped = control.stop(settings, job)
        console.print(f"{job}: {'stopped' if stopped else 'was not running'}")


@pipelines_app.command("reset")
def reset(
    name: Annotated[str | None, typer.Argument(help="The job to reset.")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Reset every job.")] = False,
) -> None:
    """Stop jobs and discard their checkpoints (after a plan change): they restart from scratch."""
    from pipelines import control

    settings = get_settings()
    for job in _names(name, all_jobs):
        discarded = control.reset(settings, job)
        console.print(f"{job}: {'checkpoints discarded' if discarded else 'no checkpoints'}")


def job_statuses() -> list[JobStatus]:
    """Status of every job (used by `souk status` too)."""
    from pipelines import control, registry
    from souk.stack.endpoints import resolve_url
    from souk.stack.errors import StackError

    settings = get_settings()
    try:
        bootstrap: str | None = resolve_url(settings, "kafka")
    except StackError:
        bootstrap = None
    return [control.status(settings, name, bootstrap) for name in registry.names()]


def status_table(statuses: list[JobStatus]) -> Table:
    """One row per job."""
    table = Table(title="Streaming jobs")
    for column in ("Job", "State", "Where", "Last checkpoint", "Records/s", "Lag"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        data = asdict(s)
        colour = "green" if data["running"] else "yellow"
        chk = "-" if data["last_checkpoint"] is None else f"#{data['last_checkpoint']}"
        if data["checkpoint_age_s"] is not None:
            chk += f" ({data['checkpoint_age_s']:.0f} s ago)"
        rate = "-" if data["records_per_s"] is None else f"{data['records_per_s']:,.0f}"
        lag = "-" if data["lag"] is None else str(data["lag"])
        table.add_row(
            data["job"], f"[{colour}]{data['state']}[/{colour}]", data["where"], chk, rate, lag
        )
    return table


@pipelines_app.command("status")
def status(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Per job: running or not, the last checkpoint, records/s and consumer lag."""
    statuses = job_statuses()
    if json_output:
        typer.echo(json.dumps([asdict(s) for s in statuses], indent=2))
        return
    console.print(status_table(statuses))
