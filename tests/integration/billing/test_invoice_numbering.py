"""Invoice numbers under concurrency, on the real PostgreSQL: many issuers racing over one
seller's paid orders (each order issued by several of them at once) leave one invoice per
order, numbered 1..N with no gap and no duplicate; a rolled-back issue gives its number back."""

from __future__ import annotations

import random
import secrets
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from schemas.common import Address
from souk.services import Services
from transactional.billing.repository import SqlBillingRepository
from transactional.billing.service import BillingService
from transactional.orders.placement import NewLine, PlaceOrder, new_order
from transactional.orders.repository import SqlOrderRepository

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def _paid_order(engine: Engine, seller_ids: list[str]) -> str:
    """A paid EU order with one taxed line per seller, written straight to the orders tables."""
    order = new_order(
        PlaceOrder(
            checkout_id=f"chk_{secrets.token_hex(8)}",
            customer_id=f"cus_{secrets.token_hex(6)}",
            region="eu",
            currency="EUR",
            lines=[
                NewLine(
                    f"SKU-{index}",
                    "prd_1",
                    seller,
                    "Thing",
                    1,
                    1190,
                    "wh_eu_1",
                    Decimal(19),
                    190,
                    True,
                )
                for index, seller in enumerate(seller_ids)
            ],
            shipping_address=Address(country="DE", city="Berlin", postal_code="10115"),
        ),
        {"eu"},
        NOW,
    )
    order.mark_paid(f"pay_{secrets.token_hex(8)}", order.totals.grand_total, NOW, "system:test")
    with engine.begin() as connection:
        assert SqlOrderRepository(connection).add(order)
    return order.order_id


def _numbers(engine: Engine, seller_id: str) -> list[int]:
    with engine.connect() as connection:
        return SqlBillingRepository(connection).numbers(seller_id, "eu", "invoice")


def test_concurrent_issuers_number_each_sellers_invoices_without_gaps_or_duplicates(
    services: Services, engine: Engine
) -> None:
    billing: BillingService = services["billing"]
    first, second = f"sel_{secrets.token_hex(6)}", f"sel_{secrets.token_hex(6)}"
    # Orders of one seller, of the other, and of both (their counters locked in one order).
    orders = [
        _paid_order(engine, sellers)
        for sellers in [[first]] * 8 + [[second]] * 4 + [[second, first]] * 6
    ]
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def issuer(seed: int) -> None:
        mine = list(orders)
        random.Random(seed).shuffle(mine)
        start.wait()
        try:
            for order_id in mine:
                billing.issue(order_id)
        except BaseException as error:  # reported below, with the numbers
            errors.append(error)

    threads = [threading.Thread(target=issuer, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert _numbers(engine, first) == list(range(1, 8 + 6 + 1))
    assert _numbers(engine, second) == list(range(1, 4 + 6 + 1))
    for order_id in orders:
        invoices = billing.documents(order_id, None)
        assert len({invoice.seller_id for invoice in invoices}) == len(invoices)
        assert all(invoice.gross_minor == 1190 and invoice.tax_minor == 190 for invoice in invoices)
    # Numbers are per seller: two sellers both have an INV-EU-000001.
    issued = [
        (i.seller_id, i.number) for order_id in orders for i in billing.documents(order_id, None)
    ]
    assert len(issued) == 8 + 4 + 12 == len(set(issued))


def test_a_rolled_back_issue_gives_its_number_back(services: Services, engine: Engine) -> None:
    billing: BillingService = services["billing"]
    seller = f"sel_{secrets.token_hex(6)}"
    kept, dropped, later = (_paid_order(engine, [seller]) for _ in range(3))
    assert [i.number for i in billing.issue(kept)] == ["INV-EU-000001"]
    with engine.connect() as connection:
        transaction = connection.begin()
        [lost] = billing.issue_invoices(connection, dropped)
        assert lost.number == "INV-EU-000002"
        transaction.rollback()  # e.g. the consumer crashed before committing
    assert [i.number for i in billing.issue(later)] == ["INV-EU-000002"]
    assert [i.number for i in billing.issue(dropped)] == ["INV-EU-000003"]
    assert billing.issue(dropped) == billing.issue(dropped)  # issued once
    assert _numbers(engine, seller) == [1, 2, 3]


def test_an_unpaid_order_gets_no_invoice(services: Services, engine: Engine) -> None:
    billing: BillingService = services["billing"]
    order = new_order(
        PlaceOrder(
            checkout_id=f"chk_{secrets.token_hex(8)}",
            customer_id="cus_x",
            region="eu",
            currency="EUR",
            lines=[("SKU-1", "prd_1", "sel_unpaid", "Thing", 1, 500, "wh_eu_1")],
            shipping_address=Address(country="DE"),
        ),
        {"eu"},
        NOW,
    )
    with engine.begin() as connection:
        SqlOrderRepository(connection).add(order)
    assert billing.issue(order.order_id) == []
    assert _numbers(engine, "sel_unpaid") == []
