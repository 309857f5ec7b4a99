"""A short simulation paying with every method on the real stack: wallet top-ups, split and
EMI payments, 3-D Secure step-ups confirmed and abandoned, UPI collects approved, declined
and left to expire (signed webhooks from the sandbox payers), and delivered orders returned
and refunded. Its report agrees with PostgreSQL, the ledger check passes afterwards, and the
demo's money section reads the same figures and writes the invoice PDFs.

Its own app over the session's PostgreSQL and Redis, with its own SOUK_HOME, served by
uvicorn on loopback.
"""

from __future__ import annotations

import secrets
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from rich.console import Console
from sqlalchemy import Engine, text

from serving.app import create_app
from souk.demo_money import MoneySummary, money_lines, money_summary, print_money
from souk.seed import (
    CatalogPlan,
    SeededCatalog,
    SeededProduct,
    SeededSku,
    seed_catalog,
    storefront_prices,
)
from souk.services import Services, build_services
from souk.settings import Settings
from souk.simulation import (
    METHODS,
    ShopperModel,
    SimulationConfig,
    SimulationReport,
    audit_stock,
    run_simulation,
    with_money,
)
from souk.stack.endpoints import Endpoints
from souk.stack.homes import temporary_home
from souk.synthetic import SyntheticWorld
from tests.integration.http import admin_headers, serve_in_thread
from transactional.ledger.check import SqlLedgerSource, check

# Seed 22 plans every method, both step-up answers and every UPI answer (checked below).
CONFIG = SimulationConfig(
    users=16,
    rate=8.0,
    duration=6.0,
    seed=22,
    workers=4,
    regions=("eu", "us", "in"),
    region_weights=(0.35, 0.3, 0.35),
    fraud_share=0.0,
    guest_share=0.2,
    search_share=0.0,
    recommendation_share=0.0,
    cart_share=1.0,
    checkout_share=1.0,
    cancel_share=0.0,  # every refund is a return's
    return_share=0.5,
    upi_decline_share=0.3,
    upi_timeout_share=0.3,
    abandon_step_up_share=0.4,
)


def test_the_integration_runs_seed_plans_every_method_and_every_answer() -> None:
    model = ShopperModel(_any_catalog(), with_money(CONFIG))
    plans = [p for p in model.sessions(len(model.arrivals())) if p.outcome == "checkout"]
    assert {p.payment for p in plans} == set(METHODS)
    assert {p.step_up for p in plans if p.payment == "card_3ds"} == {"confirm", "abandon"}
    assert {p.upi_answer for p in plans if p.payment == "upi"} == {"approve", "decline", "timeout"}
    assert {p.topup for p in plans} >= {"separate", "at_checkout"}
    assert any(p.damaged_lines for p in plans) and any(p.return_lines for p in plans)


def _any_catalog() -> SeededCatalog:
    """A small catalog: the money decisions do not depend on it."""
    sku = SeededSku("SKU-1", "prd_1", storefront_prices(1999, "EUR"), {"wh_eu_1": 5})
    return SeededCatalog([SeededProduct("prd_1", "sel_1", "Thing", "cat_a", (sku,), 1.0)])


@dataclass
class Run:
    """A simulation with every payment method: its report, settings and services."""

    report: SimulationReport
    settings: Settings
    services: Services
    catalog: SeededCatalog


@pytest.fixture(scope="module")
def simulated(endpoints: Endpoints) -> Iterator[Run]:
    """A short money-heavy simulation on its own shop."""
    home = temporary_home("souk-sim-money-")
    settings = Settings(  # type: ignore[call-arg]
        home=home,
        _env_file=None,
        password_time_cost=1,
        password_memory_kib=1024,
        upi_collect_ttl_s=1.0,  # the silent payers' collects lapse within the run
    )
    services = build_services(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    try:
        with serve_in_thread(create_app(services)) as url:
            token = admin_headers(services.tokens)["Authorization"].removeprefix("Bearer ")
            catalog = seed_catalog(
                url,
                token,
                SyntheticWorld(["eu", "us", "in"], seed=13),
                CatalogPlan(
                    sellers=3, products=24, stock=(40, 80), scarce_share=0.0, scarce_top_products=0
                ),
                tag=secrets.token_hex(3),
            )
            report = run_simulation(
                url,
                catalog,
                with_money(CONFIG),
                show_progress=False,
                tag=secrets.token_hex(3),
                admin_token=token,
                upi_payer=services["upi_sandbox"],
            )
        yield Run(report, settings, services, catalog)
    finally:
        services.close()
        shutil.rmtree(home, ignore_errors=True)


def test_every_method_pays_wallets_top_up_step_ups_and_upi_answer_and_orders_come_back(
    simulated: Run,
) -> None:
    report = simulated.report
    assert report.ok, "\n".join([str(report.unexpected), *report.samples])
    paid = {method for (method, outcome), n in report.payments.items() if outcome == "paid" and n}
    assert paid == set(METHODS)
    assert report.topups > report.topups_separate > 0 and report.topped_up_minor
    assert report.step_ups_confirmed > 0 and report.step_ups_abandoned > 0
    assert report.payments[("card_3ds", "abandoned")] == report.step_ups_abandoned
    assert report.upi_approved > 0 and report.upi_declined > 0
    assert report.upi_expired + report.upi_pending > 0  # the silent payers
    assert report.webhooks_delivered >= report.upi_approved + report.upi_declined
    upi = {o: n for (m, o), n in report.payments.items() if m == "upi"}
    assert upi == {
        k: v
        for k, v in {
            "paid": report.upi_approved,
            "declined": report.upi_declined,
            "expired": report.upi_expired,
            "pending": report.upi_pending,
        }.items()
        if v
    }
    assert report.deliveries >= report.returns_requested >= report.returns_refunded > 0
    assert report.returned_lines_damaged > 0 and report.refunded_minor


def _paid_by_method(engine: Engine, order_ids: list[str]) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT method, count(*) AS n FROM payments "
                "WHERE order_id = ANY(:ids) AND captured_minor > 0 GROUP BY method"
            ),
            {"ids": order_ids},
        ).all()
    return Counter({row.method: int(row.n) for row in rows})


def test_the_report_agrees_with_postgresql_and_the_ledger_check_passes(
    simulated: Run, engine: Engine
) -> None:
    report = simulated.report
    order_ids = list(report.orders)
    # Paid checkouts per payments.method (a split is a wallet payment).
    assert _paid_by_method(engine, order_ids) == report.paid_by_method()
    customers = list(report.customer_ids.values())
    with engine.connect() as connection:
        refunds = connection.execute(
            text(
                "SELECT btrim(r.currency) AS currency, count(DISTINCT p.order_id) AS orders, "
                "sum(r.amount_minor) AS total FROM payment_refunds r "
                "JOIN payments p USING (payment_id) WHERE p.order_id = ANY(:ids) GROUP BY 1"
            ),
            {"ids": order_ids},
        ).all()
        topped_up = connection.execute(
            text(
                "SELECT btrim(currency) AS currency, sum(amount_minor) AS total "
                "FROM wallet_entries WHERE kind = 'topup' AND customer_id = ANY(:c) GROUP BY 1"
            ),
            {"c": customers},
        ).all()
        statuses: dict[str, str] = {
            str(row.order_id): str(row.status)
            for row in connection.execute(
                text("SELECT order_id, status FROM orders WHERE order_id = ANY(:ids)"),
                {"ids": order_ids},
            )
        }
        found = check(SqlLedgerSource(connection))
    returned = [record for record in report.orders.values() if record.returned]
    assert {row.currency: int(row.orders) for row in refunds} == Counter(
        record.currency for record in returned
    )
    assert {row.currency: int(row.total) for row in refunds} == dict(report.refunded_minor)
    assert {row.currency: int(row.total) for row in topped_up} == dict(report.topped_up_minor)
    # Declined and expired collects and failed step-ups cancelled their orders; paid ones
    # stayed paid, or were delivered (and returned).
    for order_id, record in report.orders.items():
        if record.status in ("declined", "expired"):
            assert statuses[order_id] == "cancelled", record
        elif record.status == "paid":
            assert statuses[order_id] in ("paid", "delivered", "returned"), record
    assert found == [], [violation.detail for violation in found]
    # Returned units are back on hand (or in the damaged bucket), not counted as sold twice.
    audit = audit_stock(engine, simulated.catalog.initial_stock())
    assert audit.ok and audit.drift == {}, audit


def test_the_demo_money_section_reads_the_same_figures_and_writes_invoices(
    simulated: Run, engine: Engine
) -> None:
    report = simulated.report
    summary: MoneySummary = money_summary(
        simulated.settings, engine, list(report.orders), set(report.customer_ids.values())
    )
    assert summary.failures == [] and summary.violations == []
    assert summary.paid_by_method() == report.paid_by_method()
    assert {method for method, _ in summary.payments} >= {"card", "wallet", "split", "emi", "upi"}
    assert summary.refunded == report.refunded_minor
    assert sum(summary.refunds.values()) == report.returns_refunded
    assert summary.wallets and all(balance >= 0 for balance in summary.wallets.values())
    assert len(summary.top_wallets) <= 3
    assert summary.payouts  # the sellers are owed their share of the sales
    invoices = simulated.settings.state_dir / "invoices"
    assert summary.invoices and all(path.parent == invoices for path in summary.invoices)
    assert all(path.read_bytes().startswith(b"%PDF") for path in summary.invoices)
    # One PDF per paid order at least (credit notes come from the invoicing consumer).
    assert len({path.name.split("-")[0] for path in summary.invoices}) == len(
        {o for o, r in report.orders.items() if r.status == "paid"}
    )
    console = Console(record=True, width=200)
    print_money(console, summary)
    printed = console.export_text()
    assert "souk ledger check" in printed and "payments by upi" in printed
    rows = dict(money_lines(summary))
    assert rows["souk ledger check"] == "passed: every invariant holds"
    assert rows[f"invoice PDFs written ({len(summary.invoices)})"] == str(summary.invoices[0])
