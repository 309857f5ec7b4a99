"""`souk analytics load | query "SQL" [--json] | metrics`: the analytics store from the shell."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from souk.settings import get_settings
from transactional.shared.errors import SoukError

analytics_app = typer.Typer(no_args_is_help=True)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


@analytics_app.command("load")
def load(
    until_idle: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without events.")
    ] = None,
    batch: Annotated[int | None, typer.Option(help="Events per batch at most.")] = None,
) -> None:
    """Load every topic into the analytics tables (foreground; serves queries on loopback)."""
    import logging
    import signal

    from jobs.analytics.loader import serve_and_load

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        stats = serve_and_load(get_settings(), stop, idle_exit_s=until_idle, batch_max=batch)
    except SoukError as error:
        raise _fail(str(error)) from None
    console.print(
        f"loaded {stats.loaded:,} events in {stats.batches:,} batches "
        f"({stats.duplicates:,} duplicates skipped, {stats.rejected:,} rejected)"
    )


@analytics_app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="One SELECT (ClickHouse SQL).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """Run one SELECT against the analytics store; a table, or JSON rows with --json."""
    from jobs.analytics import connect

    try:
        with connect(get_settings()) as db:
            table = db.arrow(sql)
    except SoukError as error:
        raise _fail(str(error)) from None
    records = table.to_pylist()
    if json_output:
        rows = [{k: _jsonable(v) for k, v in r.items()} for r in records]
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    out = Table(show_lines=False)
    for name in table.column_names:
        out.add_column(name, overflow="fold")
    for record in records:
        out.add_row(*(escape(str(_jsonable(v))) for v in record.values()))
    console.print(out)
    console.print(f"{len(records):,} rows")


@analytics_app.command("metrics")
def metrics(
    since: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Last day, YYYY-MM-DD (UTC).")] = None,
    region: Annotated[str | None, typer.Option(help="One region.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the API's JSON.")] = False,
) -> None:
    """The headline numbers (the same as GET /v1/admin/metrics)."""
    import msgspec

    from jobs.analytics import connect
    from jobs.analytics.metrics import Window
    from jobs.analytics.rates import rate_table
    from jobs.analytics.report import headline, lines
    from serving.analytics.schemas import MetricsOut, WindowOut

    settings = get_settings()
    try:
        first = date.fromisoformat(since) if since else None
        last = date.fromisoformat(until) if until else None
        window = Window(first, last, region)
    except ValueError as error:
        raise _fail(str(error)) from None
    try:
        with connect(settings) as db:
            figures = headline(db.source, rate_table(settings), window)
    except SoukError as error:
        raise _fail(str(error)) from None
    if json_output:
        body = MetricsOut.of(figures, WindowOut(since=first, until=last, region=region))
        typer.echo(msgspec.json.format(msgspec.json.encode(body), indent=2).decode())
        return
    table = Table(title="Analytics: headline metrics", show_header=False)
    table.add_column("figure", overflow="fold")
    for line in lines(figures):
        table.add_row(escape(line))
    console.print(table)
