"""`souk up`, `souk down`, `souk status`: Typer command functions the main CLI mounts."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from souk.settings import get_settings
from souk.stack.endpoints import Endpoints
from souk.stack.errors import StackError
from souk.stack.stack import Stack
from souk.stack.status import ComponentStatus, statuses_to_json
from souk.stack.urls import redact_url
from transactional.shared.errors import SoukError

console = Console()
err_console = Console(stderr=True)


def _fail(error: StackError | SoukError) -> NoReturn:
    """Print the error's one-line message in red and exit 1 (no traceback)."""
    message = error.message if isinstance(error, StackError) else str(error)
    err_console.print(
        f"error: {message}", style="red", markup=False, highlight=False, soft_wrap=True
    )
    raise typer.Exit(1)


def _start_components(stack: Stack) -> Endpoints:
    """Bring each component up under its own spinner; keep every step message on screen."""
    urls: dict[str, str] = {}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        for name in stack.component_names:
            task = progress.add_task(f"{name}: starting", total=1)

            def report(message: str, task_id: TaskID = task) -> None:
                progress.update(task_id, description=message)
                progress.console.print(
                    f"  {message}", markup=False, highlight=False, soft_wrap=True
                )

            urls[name] = stack.up_component(name, on_progress=report)
            progress.update(task, completed=1)
    return Endpoints(urls["postgres"], urls["redis"], urls["kafka"])


def up(
    pipelines: Annotated[
        bool, typer.Option("--pipelines", help="Also start every streaming job.")
    ] = False,
    archive: Annotated[
        bool, typer.Option(help="Also run the archiver (every topic → the lake's bronze).")
    ] = True,
    analytics: Annotated[
        bool, typer.Option(help="Also run the analytics loader (every topic → ClickHouse).")
    ] = True,
) -> None:
    """Start (or reuse) PostgreSQL, Redis and Kafka, migrate, create topics, show endpoints."""
    # Imported here: they pull in Alembic and the schema registry, which status/down never need.
    from souk.startup import embedded_broker_identity, prepare_platform

    settings = get_settings()
    stack = Stack(settings)
    try:
        broker_before = embedded_broker_identity(settings)
        endpoints = _start_components(stack)
        with console.status("Migrating the database and creating topics"):
            prepare_platform(
                settings,
                endpoints,
                broker_before=broker_before,
                progress=lambda line: console.print(
                    f"  {line}", markup=False, highlight=False, soft_wrap=True
                ),
            )
    except (StackError, SoukError) as error:
        _fail(error)
    table = Table(title=f"Souk stack ({settings.state_dir})")
    table.add_column("Component")
    table.add_column("Setting")
    table.add_column("Endpoint", overflow="fold")
    for label, setting, value in (
        ("PostgreSQL", "SOUK_DATABASE_URL", endpoints.database_url),
        ("Redis", "SOUK_REDIS_URL", endpoints.redis_url),
        ("Kafka", "SOUK_KAFKA_BOOTSTRAP", endpoints.kafka_bootstrap),
    ):
        table.add_row(label, setting, redact_url(value))
    console.print(table)
    if archive:
        from souk import archiver

        try:
            console.print(f"archiver: {archiver.start(settings)}")
        except RuntimeError as error:
            err_console.print(f"error: {error}", style="red", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
    if analytics:
        from souk import analytics_process

        try:
            console.print(f"analytics loader: {analytics_process.start(settings)}")
        except RuntimeError as error:
            err_console.print(f"error: {error}", style="red", markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
    if pipelines:
        from pipelines import registry
        from souk.pipelines_cli import start_jobs

        start_jobs(settings, registry.names())


def down(
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the embedded servers' data and logs.")
    ] = False,
) -> None:
    """Stop the servers `souk up` started (never external ones)."""
    settings = get_settings()
    from pipelines import control, registry

    for name in registry.names():
        if control.stop(settings, name):
            console.print(f"stopped pipeline {name}")
    from souk import archiver

    if archiver.stop(settings):
        console.print("stopped the archiver")
    from souk import analytics_process

    if analytics_process.stop(settings):
        console.print("stopped the analytics loader")
    try:
        stopped = Stack(settings).down(purge=purge)
    except StackError as error:
        _fail(error)
    if stopped:
        console.print(f"stopped: {', '.join(stopped)}")
    else:
        console.print("nothing of ours was running")
    if purge:
        console.print(f"deleted the embedded servers' data and logs under {settings.state_dir}")


def _status_table(statuses: list[ComponentStatus]) -> Table:
    """One row per component."""
    table = Table(title="Souk stack")
    for column in ("Component", "Managed", "State", "Version"):
        table.add_column(column, no_wrap=True)
    table.add_column("URL", overflow="fold")
    for s in statuses:
        state = "[green]up[/green]" if s.up else "[red]down[/red]"
        table.add_row(s.name, s.managed, state, s.version or s.engine, s.url or "-")
    return table


def _kafka_tables(status: ComponentStatus) -> list[Table]:
    """Topics and consumer-group offsets of the Kafka component (empty tables left out)."""
    topics = Table(title="Kafka topics")
    topics.add_column("Topic")
    topics.add_column("Partitions", justify="right")
    for topic in status.topics:
        topics.add_row(topic.name, str(topic.partitions))
    groups = Table(title="Consumer groups (lag as the broker reports it)")
    for column in ("Group", "State", "Topic", "Committed", "Lag"):
        groups.add_column(column)
    for group in status.consumer_groups:
        for offsets in group.topics or []:
            committed = ", ".join(
                f"{p.partition}:{'-' if p.committed is None else p.committed}"
                for p in offsets.partitions
            )
            lag = "-" if offsets.lag is None else str(offsets.lag)
            groups.add_row(group.group_id, group.state, offsets.topic, committed, lag)
        if not group.topics:
            groups.add_row(group.group_id, group.state, "-", "-", "-")
    return [t for t in (topics, groups) if t.row_count]


def status(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """Show each component's URL, state and version; exit 1 if any is down."""
    try:
        statuses = Stack(get_settings()).status()
    except StackError as error:
        _fail(error)
    from souk.pipelines_cli import job_statuses, status_table

    jobs = job_statuses()
    if json_output:
        document = {**statuses_to_json(statuses), "pipelines": [asdict(j) for j in jobs]}
        typer.echo(json.dumps(document, indent=2))
    else:
        console.print(_status_table(statuses))
        for s in statuses:
            if s.error:
                colour = "yellow" if s.up else "red"
                console.print(f"{s.name}: {s.error}", style=colour, markup=False, highlight=False)
            if s.name == "kafka" and s.up:
                for table in _kafka_tables(s):
                    console.print(table)
        console.print(status_table(jobs))
    if not all(s.up for s in statuses):
        raise typer.Exit(1)
