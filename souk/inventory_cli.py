"""``souk inventory …``: operate the stock of the running platform (mounted by ``souk.cli``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from souk.settings import get_settings
from souk.stack.endpoints import resolve_url
from souk.stack.errors import StackError
from souk.stack.urls import redact_url
from transactional.inventory.model import DriftReport
from transactional.shared.errors import SoukError

inventory_app = typer.Typer(
    name="inventory",
    help="Stock: compare and repair the Redis counters against PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

_SHOWN = 200  # rows of the drift table; the totals always count everything


@inventory_app.callback()
def inventory() -> None:
    """Stock: compare and repair the Redis counters against PostgreSQL."""
    # A callback keeps this a command group, so `reconcile` stays a sub-command on its own too.


@inventory_app.command("reconcile")
def reconcile(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair/--no-repair",
            help="Overwrite drifted Redis counters with PostgreSQL's on_hand - reserved.",
        ),
    ] = False,
) -> None:
    """Compare Redis available counters with PostgreSQL per (SKU, warehouse); print the drift."""
    from souk.services import build_services

    settings = get_settings()
    try:
        database_url = resolve_url(settings, "postgres")
        redis_url = resolve_url(settings, "redis")
    except StackError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    services = build_services(settings, database_url=database_url, redis_url=redis_url, pool_size=2)
    try:
        report = services["inventory"].reconcile(repair)
    except SoukError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    except Exception as exc:  # unreachable servers: one line, not a traceback
        err_console.print(
            f"[red]error:[/red] reconciliation against {escape(redact_url(database_url))} "
            f"failed: {escape(' '.join(str(exc).split()))}"
        )
        raise typer.Exit(1) from None
    finally:
        services.close()
    print_report(report, repair=repair)


def print_report(report: DriftReport, *, repair: bool, out: Console | None = None) -> None:
    """The drift table and a one-line summary."""
    out = out or console
    if report.drifts:
        table = Table(title="Stock counter drift (Redis vs PostgreSQL)")
        table.add_column("sku")
        table.add_column("warehouse")
        table.add_column("redis", justify="right")
        table.add_column("postgres", justify="right")
        table.add_column("difference", justify="right")
        for drift in report.drifts[:_SHOWN]:
            table.add_row(
                escape(drift.sku),
                escape(drift.warehouse_id),
                "missing" if drift.redis is None else str(drift.redis),
                str(drift.postgres),
                "-" if drift.redis is None else f"{drift.redis - drift.postgres:+d}",
            )
        out.print(table)
        if len(report.drifts) > _SHOWN:
            out.print(f"… and {len(report.drifts) - _SHOWN} more")
    action = f"repaired {report.repaired}" if repair else "nothing changed (use --repair to fix)"
    out.print(
        f"checked {report.checked} counters: {report.drifted} drifted, "
        f"{report.missing} missing in Redis; {action}"
    )
