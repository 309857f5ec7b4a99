"""`souk lake`: the archiver and the lake's tables (bronze, silver, gold)."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from souk.settings import get_settings

lake_app = typer.Typer(no_args_is_help=True)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def lake_tables(root: str) -> list[str]:
    """The Delta tables under the lake root (``layer/name``), sorted."""
    from pathlib import Path

    base = Path(root)
    if not base.is_dir():
        return []
    return sorted(
        f"{log.parent.parent.name}/{log.parent.name}"
        for log in base.glob("*/*/_delta_log")
        if log.is_dir()
    )


@lake_app.command("archive")
def archive(
    until_idle: Annotated[
        float | None, typer.Option(help="Stop after this many seconds with nothing new.")
    ] = None,
    batch: Annotated[int, typer.Option(help="Records per Delta commit at most.")] = 5000,
) -> None:
    """Archive every event topic into the bronze Delta tables (until Ctrl-C or idle)."""
    from jobs.archive import build_archiver
    from souk.stack.errors import StackError

    settings = get_settings()
    try:
        archiver = build_archiver(settings, batch_max=batch)
    except StackError as error:
        raise _fail(str(error)) from None
    stop = threading.Event()
    with console.status("archiving… (Ctrl-C stops)"):
        try:
            stats = archiver.run(stop, idle_exit_s=until_idle)
        except KeyboardInterrupt:
            stop.set()
            stats = archiver.stats
    console.print(
        f"archived {stats.archived} events in {stats.batches} batches "
        f"({stats.duplicates} duplicates skipped, {stats.rejected} rejected)"
    )


@lake_app.command("tables")
def tables() -> None:
    """List the lake's tables with their version, rows and files."""
    from jobs.lake.store import lake_root, table_store

    settings = get_settings()
    store = table_store(settings)
    names = lake_tables(lake_root(settings))
    if not names:
        console.print(f"no tables under {lake_root(settings)}")
        return
    table = Table("table", "version", "rows", "files")
    for name in names:
        rows = store.read(name, columns=[]).num_rows if store.exists(name) else 0
        table.add_row(name, str(store.version(name)), f"{rows:,}", str(len(store.file_uris(name))))
    console.print(table)


@lake_app.command("history")
def history(
    name: Annotated[str, typer.Argument(help="A table, e.g. bronze/orders.")],
    limit: Annotated[int, typer.Option(help="Commits to show.")] = 20,
) -> None:
    """Show a table's commits, newest first (versions for time travel)."""
    from jobs.lake import LakeError
    from jobs.lake.store import table_store

    try:
        commits = table_store(get_settings()).history(name, limit)
    except LakeError as error:
        raise _fail(str(error)) from None
    table = Table("version", "time (UTC)", "operation", "rows written")
    for commit in commits:
        written = commit.metrics.get(
            "num_added_rows", commit.metrics.get("num_target_rows_inserted", "")
        )
        table.add_row(
            str(commit.version),
            f"{commit.timestamp:%Y-%m-%d %H:%M:%S}",
            commit.operation,
            str(written),
        )
    console.print(table)


@lake_app.command("compact")
def compact() -> None:
    """Compact every table's small files (the archiver writes many)."""
    from jobs.lake.store import lake_root, table_store

    settings = get_settings()
    store = table_store(settings)
    for name in lake_tables(lake_root(settings)):
        console.print(f"{name}: {store.compact(name)} files compacted")
