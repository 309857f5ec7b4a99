"""``souk ledger …``: check the double-entry ledger's invariants, and seller payouts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine

from souk.settings import get_settings
from souk.stack.endpoints import resolve_url
from souk.stack.errors import StackError
from souk.stack.urls import redact_url

ledger_app = typer.Typer(
    name="ledger",
    help="Ledger: check its invariants, list and book seller payouts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)

_SHOWN = 200  # rows of a violations table; the summary counts all of them


def _engine() -> tuple[Engine, str]:
    from transactional.shared.db import create_db_engine

    settings = get_settings()
    try:
        database_url = resolve_url(settings, "postgres")
    except StackError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    return create_db_engine(database_url, pool_size=1, application_name="souk-ledger"), database_url


def _unreachable(database_url: str, exc: Exception) -> typer.Exit:
    err_console.print(
        f"[red]error:[/red] the ledger at {escape(redact_url(database_url))} cannot be read: "
        f"{escape(' '.join(str(exc).split()))}"
    )
    return typer.Exit(1)


@ledger_app.command("check")
def check() -> None:
    """Check every invariant: balanced transactions, balances = postings, orders = payments."""
    from transactional.ledger.check import RULES, SqlLedgerSource
    from transactional.ledger.check import check as check_ledger

    engine, database_url = _engine()
    try:
        with engine.connect() as connection:
            found = check_ledger(SqlLedgerSource(connection))
    except Exception as exc:  # unreachable or unmigrated: one line, not a traceback
        raise _unreachable(database_url, exc) from None
    finally:
        engine.dispose()
    if not found:
        console.print("[green]ledger check passed[/green]: every invariant holds")
        return
    table = Table(title="Ledger invariant violations")
    for column in ("rule", "subject", "currency"):
        table.add_column(column)
    table.add_column("expected", justify="right")
    table.add_column("found", justify="right")
    for violation in found[:_SHOWN]:
        table.add_row(
            violation.rule,
            escape(violation.subject),
            violation.currency,
            str(violation.expected),
            str(violation.actual),
        )
    console.print(table)
    for rule in sorted({violation.rule for violation in found}):
        console.print(f"{rule}: {RULES[rule]}")
    err_console.print(f"[red]ledger check failed[/red]: {len(found)} violation(s)")
    raise typer.Exit(1)


@ledger_app.command("payouts")
def payouts(
    book: Annotated[
        bool,
        typer.Option("--book/--no-book", help="Book a payout of what each seller is owed."),
    ] = False,
    batch: Annotated[
        str | None,
        typer.Option(help="The payout batch id (re-running a batch books nothing twice)."),
    ] = None,
) -> None:
    """What each seller is owed per currency; with --book, pay it out (ledger entries)."""
    from transactional.ledger.payouts import book_payouts, owed

    minimum = get_settings().ledger_payout_minimum_minor
    now = datetime.now(UTC)
    engine, database_url = _engine()
    try:
        if book:
            run = batch or f"payout_{now:%Y%m%dT%H%M%S}"
            booked = book_payouts(engine, run, now, minimum)
            dues = [entry.due for entry in booked]
            states = ["booked" if entry.booked else "already booked" for entry in booked]
        else:
            dues = owed(engine, minimum)
            states = ["owed"] * len(dues)
    except Exception as exc:
        raise _unreachable(database_url, exc) from None
    finally:
        engine.dispose()
    table = Table(title="Seller payouts" + (f" (batch {run})" if book else ""))
    table.add_column("seller")
    table.add_column("currency")
    table.add_column("amount (minor)", justify="right")
    table.add_column("state")
    for due, state in zip(dues, states, strict=True):
        table.add_row(escape(due.seller_id), due.currency, str(due.owed_minor), state)
    console.print(table)
    totals: dict[str, int] = {}
    for due in dues:
        totals[due.currency] = totals.get(due.currency, 0) + due.owed_minor
    summary = ", ".join(f"{c} {t}" for c, t in sorted(totals.items())) or "nothing"
    console.print(f"{len(dues)} seller balance(s); total {summary}")
