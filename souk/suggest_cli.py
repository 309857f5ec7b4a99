"""``souk suggest …``: autosuggest from the command line (mounted by ``souk.cli``)."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from rich.console import Console

from souk.settings import get_settings
from souk.stack.endpoints import resolve_url

suggest_app = typer.Typer(
    name="suggest",
    help="Autosuggest: try prefixes, run the consumer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()


@suggest_app.command("show")
def show(
    prefixes: Annotated[list[str], typer.Argument(help="What a shopper typed so far.")],
    region: Annotated[str | None, typer.Option(help="Region (default: SOUK_REGION).")] = None,
) -> None:
    """Print the suggestions for prefixes, from the catalog and the stored counts."""
    from serving.suggest.demo import demo_lines
    from souk.services import build_services

    settings = get_settings()
    services = build_services(
        settings,
        database_url=resolve_url(settings, "postgres"),
        redis_url=resolve_url(settings, "redis"),
        pool_size=2,
    )
    try:
        for line in demo_lines(services["suggest"], prefixes, region, per_prefix=10):
            console.print(line, markup=False)
    finally:
        services.close()


@suggest_app.command("consume")
def consume() -> None:
    """Run the autosuggest consumer group in the foreground until Ctrl-C."""
    from serving.suggest.consumer import consume_forever
    from serving.suggest.wiring import build_suggest_consumer

    settings = get_settings()
    stop = threading.Event()
    bootstrap, redis_url = resolve_url(settings, "kafka"), resolve_url(settings, "redis")
    console.print("consuming behaviour and catalog topics into Redis; Ctrl-C stops")
    try:
        consume_forever(lambda: build_suggest_consumer(settings, bootstrap, redis_url), stop)
    except KeyboardInterrupt:
        stop.set()
