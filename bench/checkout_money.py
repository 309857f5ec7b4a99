"""The checkout benchmark's money comparison: settings, schedule and database probes.

Two `souk serve` processes on the same PostgreSQL server and machine, each on its own
database, Valkey database and Kafka-protocol broker (so neither sees the other's events or
orders): "money on" (tax at checkout, the ledger booked in the checkout's own transaction,
the invoicing consumer running) and "money off" (all three disabled). Both relay their
outbox, so the difference between them is the money alone. The rounds alternate
(on, off, off, on, ...) so a change in the machine's load falls on both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

import psycopg
from sqlalchemy import Engine, make_url, text

from transactional.ledger.check import SqlLedgerSource, check

Config = Literal["on", "off"]
CONFIGS: tuple[Config, Config] = ("on", "off")


def money_environment(config: Config) -> dict[str, str]:
    """The SOUK_* switches of tax, hot-path ledger booking and invoicing for ``config``."""
    flag = "true" if config == "on" else "false"
    return {
        "SOUK_TAX_ENABLED": flag,
        "SOUK_LEDGER_HOT_PATH": flag,
        "SOUK_INVOICES_ENABLED": flag,
    }


def schedule(pairs: int) -> list[Config]:
    """The order of the rounds: ``pairs`` on/off pairs, every other one reversed (ABBA), so
    a drift in the machine's speed weighs on both configurations alike."""
    order: list[Config] = []
    for n in range(pairs):
        order += ["on", "off"] if n % 2 == 0 else ["off", "on"]
    return order


def ratio(on: float, off: float) -> float:
    """on ÷ off (0 when off is 0: nothing to compare with)."""
    return on / off if off > 0 else 0.0


def ratio_text(on: float, off: float) -> str:
    """The ratio as printed: ``0.87x (-13 %)``."""
    if off <= 0:
        return "-"
    value = ratio(on, off)
    return f"{value:.2f}x ({(value - 1) * 100:+.0f} %)"


def database_url_named(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` on the same server."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def redis_url_db(url: str, db: int) -> str:
    """``url`` pointing at logical database ``db`` of the same Valkey server."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/{db}"


def create_database(dsn: str, name: str) -> None:
    """A new empty database ``name`` on the server of ``dsn``."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')


@dataclass(frozen=True)
class InvoiceProgress:
    """Paid orders and how many of them the invoicing consumer has invoiced."""

    paid: int
    invoiced: int

    @property
    def backlog(self) -> int:
        """Paid orders still without an invoice."""
        return self.paid - self.invoiced


def invoice_progress(engine: Engine) -> InvoiceProgress:
    """Paid orders, and those of them with an invoice (one per seller; orders counted once)."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE EXISTS (SELECT 1 FROM invoices i "
                "WHERE i.kind = 'invoice' AND i.order_id = o.order_id)) "
                "FROM orders o WHERE o.paid_minor IS NOT NULL"
            )
        ).one()
    return InvoiceProgress(paid=int(row[0]), invoiced=int(row[1]))


def invoices_issued(engine: Engine) -> int:
    """Invoices issued (not credit notes)."""
    with engine.connect() as connection:
        return int(
            connection.execute(text("SELECT count(*) FROM invoices WHERE kind = 'invoice'")).one()[
                0
            ]
        )


def database_now(engine: Engine) -> datetime:
    """The database server's clock (the timestamps the lags are measured between)."""
    with engine.connect() as connection:
        return cast(datetime, connection.execute(text("SELECT now()")).scalar_one())


def invoice_lags_s(engine: Engine, since: datetime) -> list[float]:
    """Per invoice of an order paid at or after ``since``, seconds from the order turning
    paid to the invoice being issued."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT extract(epoch FROM i.issued_at - min(t.at)) FROM invoices i "
                "JOIN order_transitions t ON t.order_id = i.order_id AND t.to_status = 'paid' "
                "WHERE i.kind = 'invoice' GROUP BY i.invoice_id, i.issued_at "
                "HAVING min(t.at) >= :since"
            ),
            {"since": since},
        ).all()
    return [max(float(row[0]), 0.0) for row in rows]


def unpublished_events(engine: Engine) -> int:
    """Outbox rows the relay has not published yet."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            ).one()[0]
        )


@dataclass(frozen=True)
class MoneyTrace:
    """What a database shows of the money: taxed lines, ledger transactions, invoices."""

    order_lines: int
    taxed_lines: int
    ledger_transactions: int
    invoices: int

    def summary(self) -> dict[str, int]:
        """The counts for the JSON report."""
        return {
            "order_lines": self.order_lines,
            "taxed_lines": self.taxed_lines,
            "ledger_transactions": self.ledger_transactions,
            "invoices": self.invoices,
        }


def money_trace(engine: Engine) -> MoneyTrace:
    """The counts that show whether tax, the ledger and invoicing were really on."""
    with engine.connect() as connection:
        lines = connection.execute(
            text("SELECT count(*), count(*) FILTER (WHERE tax_minor > 0) FROM order_lines")
        ).one()
        ledger = connection.execute(text("SELECT count(*) FROM ledger_transactions")).one()
    return MoneyTrace(
        order_lines=int(lines[0]),
        taxed_lines=int(lines[1]),
        ledger_transactions=int(ledger[0]),
        invoices=invoices_issued(engine),
    )


def ledger_violations(engine: Engine) -> list[str]:
    """`souk ledger check` on this database: one line per broken invariant (empty: passes)."""
    with engine.connect() as connection:
        return [violation.detail for violation in check(SqlLedgerSource(connection))]


def wait_until(
    settled: Callable[[], bool], timeout_s: float, poll_s: float = 0.1
) -> tuple[bool, float]:
    """Poll ``settled`` until true or ``timeout_s``: (settled, seconds waited)."""
    began = time.perf_counter()
    while True:
        if settled():
            return True, time.perf_counter() - began
        if time.perf_counter() - began >= timeout_s:
            return False, time.perf_counter() - began
        time.sleep(poll_s)
