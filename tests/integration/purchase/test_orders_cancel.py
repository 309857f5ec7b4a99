"""Cancelling on the real stack: no phantom stock, no pool deadlock, checkout-owned orders.

Orders here are sold the way a checkout sells them (reserve, place, commit, pay) through the
inventory, order and payment services, so stock levels show what a cancel gives back.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from schemas.common import Address
from souk.services import Services, build_services
from souk.settings import Settings
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from tests.integration.purchase.test_orders_service import outbox_types, pay_order, place_order
from transactional.orders.model import Order
from transactional.orders.placement import NewLine, PlaceOrder
from transactional.orders.repository import SqlOrdersUnitOfWork
from transactional.orders.service import OrderService
from transactional.payments.model import GatewayTimeout, Payment
from transactional.payments.service import PaymentService

PRICE = 1999
WAREHOUSE = "wh_eu_1"


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


def stocked_sku(client: Any, seller: Mapping[str, Any], units: int) -> tuple[str, str]:
    """A new SKU (and its product id) with ``units`` on hand in wh_eu_1."""
    sku = fresh_sku("ORD")
    product = list_product(client, seller, skus_prices={sku: PRICE}, title=f"Thing {sku}")
    counted = client.put(
        f"/v1/inventory/{sku}/warehouses/{WAREHOUSE}",
        json={"on_hand": units, "reason": "receipt"},
        headers=seller["headers"],
    )
    assert counted.status_code == 200, counted.text
    return sku, product["product_id"]


def sold_order(
    services: Services,
    seller: Mapping[str, Any],
    sku: str,
    product_id: str,
    customer_id: str | None = None,
) -> Order:
    """One unit sold and paid, as a checkout does it."""
    inventory = services["inventory"]
    checkout_id = f"chk_{secrets.token_hex(8)}"
    (allocation,) = inventory.reserve(checkout_id, [(sku, 1)], "eu")
    order = services["orders"].place(
        PlaceOrder(
            checkout_id=checkout_id,
            customer_id=customer_id or f"cus_{secrets.token_hex(8)}",
            region="eu",
            currency="EUR",
            lines=[NewLine(sku, product_id, seller["seller_id"], "Thing", 1, PRICE, WAREHOUSE)],
            shipping_address=Address(country="DE", city="Berlin"),
        )
    )
    assert allocation.warehouse_id == WAREHOUSE
    inventory.commit(checkout_id, order.order_id)
    return pay_order(services, order)


def stock_of(engine: Engine, sku: str) -> tuple[int, int]:
    """(on_hand, reserved) of a SKU in wh_eu_1."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT on_hand, reserved FROM stock_levels WHERE sku = :sku AND warehouse_id = :w"
            ),
            {"sku": sku, "w": WAREHOUSE},
        ).one()
    return int(row.on_hand), int(row.reserved)


class TimingOutRefunds:
    """The payment service, except that every refund times out at the gateway."""

    def __init__(self, payments: PaymentService) -> None:
        self._payments = payments

    def void(self, payment_id: str) -> Payment:
        return self._payments.void(payment_id)

    def refund(
        self,
        payment_id: str,
        amount_minor: int | None = None,
        *,
        reason: Literal[
            "return", "cancellation", "goodwill", "duplicate", "fraud"
        ] = "cancellation",
    ) -> Payment:
        raise GatewayTimeout("refund", f"{payment_id}:refund:1")


def flaky_orders(services: Services) -> OrderService:
    """An order service whose refunds time out, on the test database."""
    return OrderService(
        lambda: SqlOrdersUnitOfWork(services.engine, services.outbox),
        inventory=services["inventory"],
        payments=TimingOutRefunds(services["payments"]),
        regions=services.settings.regions,
    )


def test_a_refund_timeout_returns_no_stock_and_a_retry_finishes_the_cancel(
    client: Any, services: Services, engine: Engine, seller: dict[str, Any]
) -> None:
    sku, product_id = stocked_sku(client, seller, 3)
    shopper = register(client)
    order = sold_order(services, seller, sku, product_id, shopper["customer_id"])
    assert stock_of(engine, sku) == (2, 0)
    with pytest.raises(GatewayTimeout):
        flaky_orders(services).cancel(order.order_id, "admin:adm_1", "fraud_suspected")
    assert stock_of(engine, sku) == (2, 0)  # no unit back on sale while the money is not back
    admin = admin_headers(services.tokens)
    shown = client.get(f"/v1/orders/{order.order_id}", headers=shopper["headers"]).json()
    assert (shown["status"], shown["pending_status"]) == ("paid", "cancelled")
    for to in ("packed", "shipped"):
        refused = client.post(
            f"/v1/admin/orders/{order.order_id}/transitions",
            json={"to": to, "cause": "at the dock"},
            headers=admin,
        )
        assert assert_problem(refused, 409, "illegal_transition")["pending"] == "cancelled"
    # The shopper's retry completes the first cancel (the admin's, with its reason).
    retried = client.post(
        f"/v1/orders/{order.order_id}/cancel", json={}, headers=shopper["headers"]
    )
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert (body["status"], body["pending_status"]) == ("cancelled", None)
    assert body["refunded"] == {"amount_minor": PRICE, "currency": "EUR"}
    assert stock_of(engine, sku) == (3, 0)
    again = client.post(f"/v1/orders/{order.order_id}/cancel", json={}, headers=shopper["headers"])
    assert again.status_code == 200 and stock_of(engine, sku) == (3, 0)
    assert outbox_types(engine, order.order_id) == ["order.placed", "order.paid", "order.cancelled"]
    with engine.connect() as connection:
        cancelled = connection.execute(
            text(
                "SELECT convert_from(value, 'UTF8') FROM outbox WHERE message_key = :id "
                "AND event_type = 'order.cancelled'"
            ),
            {"id": order.order_id},
        ).scalar_one()
    assert '"reason":"fraud_suspected"' in cancelled and '"cancelled_by":"support"' in cancelled


def test_the_sweeper_finishes_a_cancel_left_pending(
    client: Any, services: Services, engine: Engine, seller: dict[str, Any]
) -> None:
    sku, product_id = stocked_sku(client, seller, 2)
    order = sold_order(services, seller, sku, product_id)
    with pytest.raises(GatewayTimeout):
        flaky_orders(services).cancel(order.order_id, "system:fraud", "fraud_suspected")
    orders: OrderService = services["orders"]
    orders.finish_pending_cancellations(older_than_s=3600)  # too young for the sweeper
    waiting = orders.get(order.order_id)
    assert (waiting.status, waiting.pending and waiting.pending.to) == ("paid", "cancelled")
    assert stock_of(engine, sku) == (1, 0)
    assert orders.finish_pending_cancellations(older_than_s=0) >= 1
    done = orders.get(order.order_id)
    assert (done.status, done.refunded_minor, done.pending) == ("cancelled", PRICE, None)
    assert stock_of(engine, sku) == (2, 0)
    payment = services["payments"].find(order.payment_id)
    assert payment is not None and payment.status == "refunded"


def test_concurrent_cancels_on_a_one_connection_pool_finish(
    client: Any,
    services: Services,
    engine: Engine,
    seller: dict[str, Any],
    souk_settings: Settings,
    endpoints: Endpoints,
) -> None:
    sku, product_id = stocked_sku(client, seller, 6)
    sold = [sold_order(services, seller, sku, product_id) for _ in range(4)]
    assert stock_of(engine, sku) == (2, 0)
    # Every slice on one engine of create_db_engine(url, pool_size=1): 1 + 1 overflow.
    small = build_services(
        souk_settings,
        database_url=endpoints.database_url,
        redis_url=endpoints.redis_url,
        pool_size=1,
    )
    results: dict[str, str] = {}
    barrier = threading.Barrier(len(sold))

    def cancel(order_id: str) -> None:
        barrier.wait()
        try:
            results[order_id] = (
                small["orders"].cancel(order_id, "admin:adm_1", "fraud_suspected").status
            )
        except Exception as error:
            results[order_id] = repr(error)

    threads = [threading.Thread(target=cancel, args=(o.order_id,)) for o in sold]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
    finally:
        small.close()
    elapsed = time.monotonic() - started
    assert results == {o.order_id: "cancelled" for o in sold}
    assert elapsed < 10, f"cancels took {elapsed:.1f}s: waiting on the pool"
    assert stock_of(engine, sku) == (6, 0)


def test_a_customer_cannot_cancel_an_order_its_checkout_still_owns(
    client: Any, services: Services, engine: Engine
) -> None:
    shopper = register(client)
    order = place_order(services, shopper["customer_id"])
    path = f"/v1/orders/{order.order_id}/cancel"
    problem = assert_problem(
        client.post(path, json={}, headers=shopper["headers"]), 409, "checkout_in_progress"
    )
    assert problem["checkout_id"] == order.checkout_id
    shown = client.get(f"/v1/orders/{order.order_id}", headers=shopper["headers"]).json()
    assert (shown["status"], shown["pending_status"]) == ("placed", None)
    assert outbox_types(engine, order.order_id) == ["order.placed"]
    # An admin (or the checkout's own compensation, as "system") may still cancel it.
    moved = client.post(
        f"/v1/admin/orders/{order.order_id}/transitions",
        json={"to": "cancelled", "cause": "fraud_suspected"},
        headers=admin_headers(services.tokens),
    )
    assert moved.status_code == 200 and moved.json()["status"] == "cancelled"
    # Once paid, the customer may cancel (covered end to end in test_orders_api).
    paid = pay_order(services, place_order(services, shopper["customer_id"]))
    assert (
        client.post(
            f"/v1/orders/{paid.order_id}/cancel", json={}, headers=shopper["headers"]
        ).json()["status"]
        == "cancelled"
    )
