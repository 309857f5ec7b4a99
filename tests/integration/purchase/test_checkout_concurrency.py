"""Checkout under real concurrency (uvicorn + threads): no overselling, one charge per key."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    checkout_ids_of,
    filled_cart,
    order_of,
    saga_of,
    stock_of,
    stock_sku,
)

T = TypeVar("T")


def race(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls on their own threads, released together."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def post(
    http: httpx.Client, shopper: Mapping[str, Any], body: Mapping[str, Any], key: str
) -> httpx.Response:
    return http.post(
        "/v1/checkout", json=dict(body), headers={**shopper["headers"], "Idempotency-Key": key}
    )


def test_thirty_buyers_racing_for_five_units_never_oversell(
    client: Any, engine: Engine, services: Services, live_url: str
) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))
    sku = stock_sku(client, seller, 5, price_minor=4999)
    buyers = [register(client) for _ in range(30)]
    carts = [filled_cart(client, buyer, {sku: 1}) for buyer in buyers]

    with httpx.Client(base_url=live_url, timeout=60) as http:
        responses = race(
            [
                lambda b=buyer, c=cart: post(http, b, checkout_body(c), str(uuid.uuid4()))
                for buyer, cart in zip(buyers, carts, strict=True)
            ]
        )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 5, 409: 25}, [r.text for r in responses if r.status_code != 201][:3]
    assert all(r.json()["code"] == "insufficient_stock" for r in responses if r.status_code == 409)
    assert all(r.json()["skus"] == [sku] for r in responses if r.status_code == 409)
    assert stock_of(engine, sku) == (0, 0)
    with engine.connect() as connection:
        sold = connection.execute(
            text(
                "SELECT o.status, count(*) FROM order_lines l JOIN orders o "
                "USING (region, order_id) WHERE l.sku = :sku GROUP BY o.status"
            ),
            {"sku": sku},
        ).all()
        held = connection.execute(
            text("SELECT count(*) FROM reservations WHERE sku = :sku AND status = 'held'"),
            {"sku": sku},
        ).scalar_one()
    assert dict(sold) == {"paid": 5} and held == 0
    winners = [r.json() for r in responses if r.status_code == 201]
    assert len({w["order_id"] for w in winners}) == 5


def test_one_key_retried_concurrently_and_sequentially_charges_once(
    client: Any, engine: Engine, services: Services, live_url: str
) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))
    sku = stock_sku(client, seller, 10, price_minor=1250)
    shopper = register(client)
    body = checkout_body(filled_cart(client, shopper, {sku: 2}))
    key = str(uuid.uuid4())

    with httpx.Client(base_url=live_url, timeout=60) as http:
        concurrent = race([lambda: post(http, shopper, body, key) for _ in range(10)])
        sequential = [post(http, shopper, body, key) for _ in range(5)]
        other_body = post(http, shopper, {**body, "cart_id": "crt_other"}, key)

    assert {r.status_code for r in concurrent} <= {201, 409}, [r.text for r in concurrent]
    in_flight = [r.json() for r in concurrent if r.status_code == 409]
    assert all(p["code"] == "idempotency_key_in_use" for p in in_flight)
    originals = [
        r for r in concurrent if r.status_code == 201 and "idempotent-replayed" not in r.headers
    ]
    assert len(originals) == 1, [r.headers for r in concurrent]
    first = originals[0].json()
    for replay in [r for r in concurrent if r.status_code == 201 and r is not originals[0]]:
        assert replay.headers["idempotent-replayed"] == "true" and replay.json() == first
    for replay in sequential:
        assert replay.status_code == 201, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first
    assert other_body.status_code == 422 and other_body.json()["code"] == "idempotency_key_reused"

    assert checkout_ids_of(engine, shopper["customer_id"]) == [first["checkout_id"]]
    order = order_of(engine, first["checkout_id"])
    assert order is not None and order["status"] == "paid"
    token = saga_of(engine, first["checkout_id"])["instrument_token"]
    with engine.connect() as connection:
        orders = connection.execute(
            text("SELECT count(*) FROM orders WHERE customer_id = :id"),
            {"id": shopper["customer_id"]},
        ).scalar_one()
        payments = connection.execute(
            text("SELECT status, count(*) FROM payments WHERE customer_id = :id GROUP BY status"),
            {"id": shopper["customer_id"]},
        ).all()
        charges = connection.execute(
            text(
                "SELECT status, count(*) FROM sandbox_gateway_charges WHERE token = :t GROUP BY 1"
            ),
            {"t": token},
        ).all()
        captures = connection.execute(
            text(
                "SELECT count(*) FROM sandbox_gateway_requests WHERE operation = 'capture' "
                "AND result->>'reference' IN (SELECT reference FROM sandbox_gateway_charges "
                "WHERE token = :t)"
            ),
            {"t": token},
        ).scalar_one()
    assert orders == 1
    assert dict(payments) == {"captured": 1}
    assert dict(charges) == {"captured": 1} and captures == 1
    assert stock_of(engine, sku) == (8, 0)
