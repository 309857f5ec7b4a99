"""``souk payments sandbox deliver``: play the UPI payers of waiting collect requests and send
their signed webhooks to a running server (the simulator's and the demo's step)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from souk.settings import get_settings
from souk.stack.endpoints import resolve_url
from souk.stack.errors import StackError

payments_app = typer.Typer(
    name="payments",
    help="Payments: the sandbox providers' side (UPI payers and their webhooks).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(
    name="sandbox", help="The sandbox providers in test mode.", no_args_is_help=True
)
payments_app.add_typer(sandbox_app, name="sandbox")
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


@sandbox_app.command("deliver")
def deliver(
    url: Annotated[
        str | None,
        typer.Option(help="The server receiving webhooks (default: this host's souk serve)."),
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="Only this collect request (upi_…); default: all waiting.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many collects.")] = 100,
) -> None:
    """Answer waiting UPI collects as their VPA says (success@souk approves, failure@souk
    declines, timeout@souk lets it lapse) and POST each signed webhook; an acknowledged one
    (2xx, or 409: seen already) is not sent again."""
    from souk.async_payments_wiring import upi_sandbox
    from transactional.shared.db import create_db_engine

    settings = get_settings()
    try:
        database_url = resolve_url(settings, "postgres")
    except StackError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    target = (url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")
    engine = create_db_engine(database_url, pool_size=1, application_name="souk-payments")
    sent: dict[int, int] = {}
    try:
        upi = upi_sandbox(settings, engine, lambda: datetime.now(UTC))
        with httpx.Client(timeout=30) as client:
            for webhook in upi.deliver(reference, limit=limit):
                try:
                    response = client.post(
                        f"{target}/v1/payments/webhooks/{webhook.provider}",
                        content=webhook.body,
                        headers=webhook.headers,
                    )
                except httpx.TransportError as exc:
                    err_console.print(f"[red]error:[/red] {escape(target)}: {escape(str(exc))}")
                    raise typer.Exit(1) from None
                sent[response.status_code] = sent.get(response.status_code, 0) + 1
                if 200 <= response.status_code < 300 or response.status_code == 409:
                    upi.acknowledge(json.loads(webhook.body)["data"]["reference"])
    finally:
        engine.dispose()
    summary = ", ".join(f"{count} x HTTP {status}" for status, count in sorted(sent.items()))
    console.print(
        f"delivered {sum(sent.values())} webhook(s) to {target}" + (f": {summary}" if sent else "")
    )
