"""``souk billing …``: invoice PDFs and the invoicing consumer (mounted by ``souk.cli``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from souk.settings import get_settings
from souk.stack.endpoints import resolve_url
from souk.stack.errors import StackError
from transactional.shared.errors import SoukError

billing_app = typer.Typer(
    name="billing",
    help="Billing: write an order's invoice PDF, run the invoicing consumer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


@billing_app.command("invoice")
def invoice(
    order_id: Annotated[str, typer.Argument(help="The order, e.g. ord_eu_0190….")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the PDF.")] = Path(
        "invoice.pdf"
    ),
    seller_id: Annotated[
        str | None, typer.Option("--seller", help="Only this seller's invoice.")
    ] = None,
    credit_notes: Annotated[
        bool, typer.Option("--credit-notes", help="The order's credit notes instead.")
    ] = False,
    issue: Annotated[
        bool,
        typer.Option(
            "--issue/--no-issue", help="Issue a paid order's missing invoices first (idempotent)."
        ),
    ] = True,
) -> None:
    """Write an order's invoices (or credit notes) as one PDF."""
    from sqlalchemy import Engine

    from souk.billing import tax_rules
    from transactional.billing.model import Kind
    from transactional.billing.service import BillingService
    from transactional.shared.db import create_db_engine

    settings = get_settings()
    try:
        database_url = resolve_url(settings, "postgres")
    except StackError as exc:
        raise _fail(str(exc)) from None
    engine: Engine = create_db_engine(database_url, pool_size=1, application_name="souk-cli")
    billing = BillingService(engine, tax=tax_rules(settings))
    try:
        if issue and not credit_notes:
            billing.issue(order_id)
        kind: Kind = "credit_note" if credit_notes else "invoice"
        content, documents = billing.pdf(order_id, None, seller_id=seller_id, kind=kind)
    except SoukError as exc:
        raise _fail(str(exc)) from None
    finally:
        engine.dispose()
    out.write_bytes(content)
    numbers = ", ".join(document.number for document in documents)
    console.print(f"wrote {out} ({len(content)} bytes): {numbers}")


@billing_app.command("consume")
def consume() -> None:
    """Run the invoicing consumer in the foreground until Ctrl-C (`souk serve` runs one)."""
    from souk.billing import invoice_forever

    settings = get_settings()
    stop = threading.Event()
    try:
        database_url, bootstrap = resolve_url(settings, "postgres"), resolve_url(settings, "kafka")
    except StackError as exc:
        raise _fail(str(exc)) from None
    console.print("issuing invoices from order.paid and credit notes from payment.refunded")
    try:
        invoice_forever(settings, database_url, bootstrap, stop)
    except KeyboardInterrupt:
        stop.set()
