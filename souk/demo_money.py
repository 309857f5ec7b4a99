"""The demo's money section: payments by method, refunds, wallets, the ledger check, seller
payouts and the invoice PDFs, read from PostgreSQL after the shoppers' run.

``money_summary`` reads (and writes the invoices' PDFs under ``SOUK_HOME/invoices/``);
``print_money`` prints it. The demo fails when the ledger check finds a violation, or when
paid orders got no invoice PDF.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, Engine, text

from souk.async_payments_wiring import upi_sandbox
from souk.billing import tax_rules, write_invoice_pdfs
from souk.settings import Settings
from souk.simulation import SimulationReport, UpiPayer
from transactional.billing.service import BillingService
from transactional.ledger.check import SqlLedgerSource, Violation
from transactional.ledger.check import check as check_ledger
from transactional.ledger.payouts import PayoutDue, owed
from transactional.shared.db import create_db_engine

# The serving child's UPI collect requests lapse within the demo's run (the default, ten
# minutes, is a real payer's), so the silent payers' collects expire before the summary.
MONEY_SERVER_ENV = {"SOUK_UPI_COLLECT_TTL_S": "5"}
INVOICE_LIMIT = 100  # orders whose PDFs the demo writes (returned ones first)
TOP_WALLETS = 3


@dataclass
class MoneySummary:
    """What the shoppers' money did, as PostgreSQL and the ledger say."""

    # (method, status) -> payments; a split payment is method "split" here (wallet + card).
    payments: Counter[tuple[str, str]] = field(default_factory=Counter)
    captured: Counter[tuple[str, str]] = field(default_factory=Counter)  # (method, currency)
    refunds: Counter[str] = field(default_factory=Counter)  # currency -> refunds
    refunded: Counter[str] = field(default_factory=Counter)  # currency -> minor units
    wallets: Counter[str] = field(default_factory=Counter)  # currency -> total balance
    top_wallets: list[tuple[str, str, int]] = field(default_factory=list)  # customer, cur, minor
    violations: list[Violation] = field(default_factory=list)
    ledger_checked: bool = False
    payouts: list[PayoutDue] = field(default_factory=list)
    invoices: list[Path] = field(default_factory=list)
    invoice_dir: Path | None = None
    failures: list[str] = field(default_factory=list)

    def paid_by_method(self) -> Counter[str]:
        """Payments that captured money, per payments.method (a split is a wallet one)."""
        paid: Counter[str] = Counter()
        for (method, status), count in self.payments.items():
            if status in ("captured", "partially_refunded", "refunded"):
                paid["wallet" if method == "split" else method] += count
        return paid


def payments_by_method(
    connection: Connection, order_ids: Sequence[str]
) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """((method, status) -> payments, (method, currency) -> captured minus refunded) of the
    orders' payments; a split (gateway ``split``) is told apart from a wallet payment."""
    counts: Counter[tuple[str, str]] = Counter()
    captured: Counter[tuple[str, str]] = Counter()
    rows = connection.execute(
        text(
            "SELECT CASE WHEN gateway = 'split' THEN 'split' ELSE method END AS method, status, "
            "btrim(currency) AS currency, count(*) AS n, "
            "sum(captured_minor - refunded_minor) AS net "
            "FROM payments WHERE order_id = ANY(:ids) GROUP BY 1, 2, 3"
        ),
        {"ids": list(order_ids)},
    )
    for row in rows:
        counts[(row.method, row.status)] += int(row.n)
        if row.net:
            captured[(row.method, row.currency)] += int(row.net)
    return counts, captured


def refunds_of(connection: Connection, order_ids: Sequence[str]) -> tuple[Counter[str], ...]:
    """(currency -> refunds, currency -> refunded minor units) of the orders' payments."""
    counts: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    rows = connection.execute(
        text(
            "SELECT btrim(r.currency) AS currency, count(*) AS n, sum(r.amount_minor) AS total "
            "FROM payment_refunds r JOIN payments p USING (payment_id) "
            "WHERE p.order_id = ANY(:ids) GROUP BY 1"
        ),
        {"ids": list(order_ids)},
    )
    for row in rows:
        counts[row.currency] += int(row.n)
        amounts[row.currency] += int(row.total)
    return counts, amounts


def wallet_balances(
    connection: Connection, customer_ids: Collection[str] | None
) -> tuple[Counter[str], list[tuple[str, str, int]]]:
    """(currency -> total balance, the largest balances) of the customers' wallets (every
    wallet when ``customer_ids`` is None)."""
    scope = "" if customer_ids is None else "WHERE customer_id = ANY(:ids)"
    params = {} if customer_ids is None else {"ids": list(customer_ids)}
    totals: Counter[str] = Counter()
    for row in connection.execute(
        text(f"SELECT btrim(currency), sum(balance_minor) FROM wallets {scope} GROUP BY 1"),
        params,
    ):
        totals[str(row[0])] += int(row[1])
    top = [
        (str(row[0]), str(row[1]), int(row[2]))
        for row in connection.execute(
            text(
                f"SELECT customer_id, btrim(currency), balance_minor FROM wallets {scope} "
                f"ORDER BY balance_minor DESC, customer_id LIMIT {TOP_WALLETS}"
            ),
            params,
        )
    ]
    return totals, top


def _invoice_order(connection: Connection, order_ids: Sequence[str]) -> list[str]:
    """The paid orders, those with refunds first (their PDFs include credit notes)."""
    rows = connection.execute(
        text(
            "SELECT order_id, bool_or(refunded_minor > 0) AS refunded FROM payments "
            "WHERE order_id = ANY(:ids) AND captured_minor > 0 "
            "GROUP BY order_id ORDER BY 2 DESC, 1"
        ),
        {"ids": list(order_ids)},
    )
    return [str(row.order_id) for row in rows]


def money_summary(
    settings: Settings,
    engine: Engine,
    order_ids: Sequence[str],
    customer_ids: Collection[str] | None = None,
    *,
    invoice_limit: int = INVOICE_LIMIT,
) -> MoneySummary:
    """The money section of the demo over the shoppers' orders (and wallets): reads
    PostgreSQL, runs the ledger check, and writes invoice PDFs under SOUK_HOME/invoices/."""
    summary = MoneySummary()
    with engine.connect() as connection:
        summary.payments, summary.captured = payments_by_method(connection, order_ids)
        summary.refunds, summary.refunded = refunds_of(connection, order_ids)
        summary.wallets, summary.top_wallets = wallet_balances(connection, customer_ids)
        paid = _invoice_order(connection, order_ids)
    with engine.connect() as connection:
        summary.violations = check_ledger(SqlLedgerSource(connection))
    summary.ledger_checked = True
    summary.payouts = owed(engine)
    billing = BillingService(engine, tax=tax_rules(settings), clock=lambda: datetime.now(UTC))
    summary.invoice_dir = settings.state_dir / "invoices"
    summary.invoices = write_invoice_pdfs(billing, paid[:invoice_limit], summary.invoice_dir)
    if summary.violations:
        first = summary.violations[0].detail
        summary.failures.append(
            f"ledger check: {len(summary.violations)} violation(s), e.g. {first}"
        )
    if paid and not summary.invoices:
        summary.failures.append(f"no invoice PDF written for {len(paid)} paid orders")
    return summary


def _money(minor: int, currency: str) -> str:
    return f"{minor / 100:,.2f} {currency}"


def money_lines(summary: MoneySummary) -> list[tuple[str, str]]:
    """The section's (what, value) rows."""
    rows: list[tuple[str, str]] = []
    for method in sorted({method for method, _ in summary.payments}):
        statuses = {s: n for (m, s), n in summary.payments.items() if m == method}
        held = ", ".join(
            _money(v, c) for (m, c), v in sorted(summary.captured.items()) if m == method
        )
        rows.append(
            (
                f"payments by {method}",
                ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))
                + (f" (net {held})" if held else ""),
            )
        )
    rows.append(
        (
            "refunds",
            ", ".join(
                f"{summary.refunds[c]} = {_money(summary.refunded[c], c)}"
                for c in sorted(summary.refunds)
            )
            or "none",
        )
    )
    rows.append(
        (
            "wallet balances",
            ", ".join(_money(v, c) for c, v in sorted(summary.wallets.items())) or "none",
        )
    )
    for customer, currency, minor in summary.top_wallets:
        rows.append((f"  {customer}", _money(minor, currency)))
    verdict = (
        "passed: every invariant holds"
        if not summary.violations
        else f"FAILED: {len(summary.violations)} violation(s)"
    )
    rows.append(("souk ledger check", verdict if summary.ledger_checked else "not run"))
    due: Counter[str] = Counter()
    for payout in summary.payouts:
        due[payout.currency] += payout.owed_minor
    rows.append(
        (
            f"seller payouts due ({len({p.seller_id for p in summary.payouts})} sellers)",
            ", ".join(_money(v, c) for c, v in sorted(due.items())) or "none",
        )
    )
    where = f"{summary.invoices[0]}" if summary.invoices else str(summary.invoice_dir or "-")
    rows.append((f"invoice PDFs written ({len(summary.invoices)})", where))
    return rows


def print_money(console: Console, summary: MoneySummary) -> None:
    """Print the money section."""
    table = Table(title="Money: payments, refunds, wallets, ledger, payouts, invoices")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    for what, value in money_lines(summary):
        table.add_row(what, value)
    console.print(table)


def upi_payer(settings: Settings, engine: Engine) -> UpiPayer:
    """The UPI sandbox's payers on the demo's database (they answer the shoppers' collects)."""
    return upi_sandbox(settings, engine, lambda: datetime.now(UTC))


def money_after_run(
    settings: Settings, database_url: str, *reports: SimulationReport | None
) -> MoneySummary:
    """The money section over the orders and wallets of the simulation ``reports``."""
    order_ids = [order for report in reports if report for order in report.orders]
    customers = {c for report in reports if report for c in report.customer_ids.values()}
    engine = create_db_engine(database_url, pool_size=2, application_name="souk-demo-money")
    try:
        return money_summary(settings, engine, order_ids, customers)
    finally:
        engine.dispose()
