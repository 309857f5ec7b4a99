"""`souk recommendations`: click-through per model version, a customer's list, the consumer."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from souk.settings import get_settings

if TYPE_CHECKING:
    from souk.services import Services

recommendations_app = typer.Typer(no_args_is_help=True)
console = Console()


def _service() -> Services:
    from souk.services import build_services
    from souk.stack.endpoints import resolve_url

    settings = get_settings()
    return build_services(
        settings,
        database_url=resolve_url(settings, "postgres"),
        redis_url=resolve_url(settings, "redis"),
        pool_size=2,
    )


@recommendations_app.command("ctr")
def ctr() -> None:
    """Served lists, clicked lists and click-through per model version."""
    services = _service()
    try:
        rows = services["recommendations"].click_through()
    finally:
        services.close()
    table = Table("model", "version", "served", "clicked", "ctr")
    for row in rows:
        table.add_row(
            row.model, row.model_version, str(row.served), str(row.clicked), f"{row.rate:.3f}"
        )
    console.print(table)


@recommendations_app.command("for")
def for_customer(
    customer_id: Annotated[str, typer.Argument(help="The customer id.")],
    region: Annotated[str | None, typer.Option(help="Region (default SOUK_REGION).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=50)] = 5,
) -> None:
    """A customer's for-you list with its model and version (emits recommendation.served)."""
    from serving.recommendations.bench import demo_lines

    services = _service()
    try:
        for line in demo_lines(
            services["recommendations"], customer_id, region or services.settings.region, limit
        ):
            console.print(line, highlight=False)
    finally:
        services.close()


@recommendations_app.command("activity")
def activity() -> None:
    """Run the activity consumer (recent signals, click-through counts) until Ctrl-C."""
    from serving.recommendations.activity import run_activity

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_activity(get_settings(), stop)
    except KeyboardInterrupt:
        stop.set()
