"""Returns through HTTP on the real stack: a checkout pays, an admin delivers, the customer
asks, the seller decides and receives, the money goes back to the card, stock comes back.

The ledger's invariants are LEDGER's fixture; here: every refund is on the payment once, the
gateway agrees with it, and each step's event is in the outbox with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.returns.helpers import (
    WAREHOUSE,
    delivered_order,
    events_of,
    gateway_refunded,
    line_of,
    payment_row,
    received,
    refunds_of,
    stock_row,
)
from transactional.inventory.counters import RedisStockCounters


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


@pytest.fixture
def admin(services: Services) -> dict[str, str]:
    return admin_headers(services.tokens)


def ask(client: Any, shopper: dict[str, Any], order_id: str, lines: list[dict[str, Any]]) -> Any:
    return client.post(
        f"/v1/orders/{order_id}/returns", json={"lines": lines}, headers=shopper["headers"]
    )


def counter(services: Services, sku: str) -> int | None:
    (value,) = RedisStockCounters(services.redis).read([(sku, WAREHOUSE)])
    return value


def test_a_partial_return_is_refunded_to_the_card_and_restocked(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], admin: dict[str, str]
) -> None:
    shopper, order, (shirt, _mug) = delivered_order(client, admin, seller, {1999: 2, 500: 1})
    payment_id = order["payment_id"]
    captured = payment_row(engine, payment_id)["captured_minor"]
    assert captured == order["totals"]["grand_total"]["amount_minor"]
    before = stock_row(engine, shirt)
    line = line_of(order, shirt)

    asked = ask(client, shopper, order["order_id"], [{"line_id": line["line_id"], "quantity": 1}])
    assert asked.status_code == 201, asked.text
    ret = asked.json()
    assert (ret["status"], ret["lines"][0]["quantity"]) == ("requested", 1)
    return_id = ret["return_id"]
    # The customer cannot decide on it; the seller of the line can.
    assert_problem(
        client.post(f"/v1/returns/{return_id}/approve", json={}, headers=shopper["headers"]),
        403,
        "not_returns_desk",
    )
    approved = client.post(
        f"/v1/returns/{return_id}/approve", json={"note": "ok"}, headers=seller["headers"]
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["decided_by"] == f"seller:{seller['seller_id']}"
    received = client.post(
        f"/v1/returns/{return_id}/receive",
        json={"lines": [{"line_id": line["line_id"], "resellable": 1}]},
        headers=seller["headers"],
    )
    assert received.status_code == 200, received.text
    done = received.json()
    assert done["status"] == "refunded" and done["restocked"]
    refund = done["refund"]
    # One shirt's share of what the goods cost (no discount here): a unit's price and tax on
    # top of it, if any; no shipping (a partial return for no fault).
    tax_share = order["totals"]["tax"]["amount_minor"] * 1999 * 2 // (1999 * 2 + 500) // 2
    assert refund["shipping"]["amount_minor"] == 0
    assert abs(refund["amount"]["amount_minor"] - 1999 - tax_share) <= 1
    assert refund["method"] == "original_payment" and refund["issued"]

    amount = refund["amount"]["amount_minor"]
    assert payment_row(engine, payment_id) == {
        "status": "partially_refunded",
        "captured_minor": captured,
        "refunded_minor": amount,
    }
    assert refunds_of(engine, payment_id) == [amount]
    assert gateway_refunded(engine, payment_id) == amount
    assert [e["type"] for e in events_of(engine, return_id)] == [
        "return.requested",
        "return.approved",
        "return.received",
        "refund.issued",
    ]
    refunded = [e for e in events_of(engine, payment_id) if e["type"] == "payment.refunded"]
    assert len(refunded) == 1 and refunded[0]["payload"]["return_id"] == return_id
    assert refunded[0]["payload"]["amount"]["amount_minor"] == amount
    # Back on sale: PostgreSQL and the Redis counter agree.
    assert stock_row(engine, shirt) == (before[0] + 1, 0, 0)
    assert counter(services, shirt) in (None, before[0] + 1)
    restock = [e for e in events_of(engine, shirt) if e["type"] == "stock.adjusted"][-1]
    assert restock["payload"]["reason"] == "return_restock"
    assert restock["payload"]["reference_id"] == return_id
    # The order stays delivered (the mug and a shirt are still the customer's).
    shown = client.get(f"/v1/orders/{order['order_id']}", headers=shopper["headers"]).json()
    assert shown["status"] == "delivered"
    assert shown["refunded"]["amount_minor"] == amount  # and shows what was refunded
    # The customer sees it in their list; another customer does not see it at all.
    mine = client.get("/v1/returns", headers=shopper["headers"]).json()
    assert [r["return_id"] for r in mine["items"]] == [return_id] and mine["total"] == 1
    other = register(client)
    assert_problem(
        client.get(f"/v1/returns/{return_id}", headers=other["headers"]), 404, "return_not_found"
    )


def test_damaged_units_go_to_the_damaged_bucket_and_stay_off_sale(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], admin: dict[str, str]
) -> None:
    shopper, order, (sku,) = delivered_order(client, admin, seller, {2500: 2})
    line = line_of(order, sku)
    before = stock_row(engine, sku)
    counted = counter(services, sku)
    ret = ask(
        client,
        shopper,
        order["order_id"],
        [{"line_id": line["line_id"], "quantity": 2, "reason": "defective"}],
    ).json()
    client.post(f"/v1/returns/{ret['return_id']}/approve", json={}, headers=admin)
    received = client.post(
        f"/v1/returns/{ret['return_id']}/receive",
        json={"lines": [{"line_id": line["line_id"], "resellable": 1, "damaged": 1}]},
        headers=admin,
    )
    assert received.status_code == 200, received.text
    assert stock_row(engine, sku) == (before[0] + 1, 0, 1)
    assert counter(services, sku) in (None, (counted or 0) + 1)
    assert services["inventory"].reconcile(repair=False, settle_s=0.05).drifted == 0
    body = received.json()
    # Both units are refunded (the damaged one too), and the shipping: a defect.
    assert body["refund"]["shipping"]["amount_minor"] == order["totals"]["shipping"]["amount_minor"]
    payload = events_of(engine, ret["return_id"])[2]["payload"]
    assert sorted((line["condition"], line["restock"]) for line in payload["lines"]) == [
        ("damaged", False),
        ("sellable", True),
    ]


def test_returning_everything_refunds_all_captured_and_the_order_becomes_returned(
    client: Any, engine: Engine, seller: dict[str, Any], admin: dict[str, str]
) -> None:
    shopper, order, skus = delivered_order(client, admin, seller, {1999: 3, 333: 1})
    payment_id = order["payment_id"]
    captured = payment_row(engine, payment_id)["captured_minor"]
    total = 0
    # Three returns, one unit at a time for the shirts (rounding must still add up).
    for sku, quantity in ((skus[0], 1), (skus[0], 2), (skus[1], 1)):
        line = line_of(order, sku)
        ret = ask(
            client,
            shopper,
            order["order_id"],
            [{"line_id": line["line_id"], "quantity": quantity, "reason": "no_longer_needed"}],
        )
        assert ret.status_code == 201, ret.text
        return_id = ret.json()["return_id"]
        client.post(f"/v1/returns/{return_id}/approve", json={}, headers=admin)
        done = client.post(
            f"/v1/returns/{return_id}/receive",
            json={"lines": [{"line_id": line["line_id"], "resellable": quantity}]},
            headers=admin,
        ).json()
        total += done["refund"]["amount"]["amount_minor"]
    assert total == captured  # shipping came back with the last unit
    assert payment_row(engine, payment_id)["status"] == "refunded"
    assert gateway_refunded(engine, payment_id) == captured
    shown = client.get(f"/v1/orders/{order['order_id']}", headers=shopper["headers"]).json()
    assert shown["status"] == "returned" and shown["refunded"]["amount_minor"] == captured
    assert "order.returned" in [e["type"] for e in events_of(engine, order["order_id"])]
    # Nothing is left to return.
    line = line_of(order, skus[1])
    assert_problem(
        ask(client, shopper, order["order_id"], [{"line_id": line["line_id"], "quantity": 1}]),
        409,
        "order_not_returnable",
    )


def test_bad_requests_are_problems_and_book_nothing(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], admin: dict[str, str]
) -> None:
    shopper, order, (sku,) = delivered_order(client, admin, seller, {1200: 2})
    order_id, payment_id = order["order_id"], order["payment_id"]
    line_id = line_of(order, sku)["line_id"]
    assert_problem(
        ask(client, shopper, order_id, [{"line_id": line_id, "quantity": 3}]), 422, "too_many_units"
    )
    assert_problem(
        ask(client, register(client), order_id, [{"line_id": line_id, "quantity": 1}]),
        404,
        "order_not_found",
    )
    assert_problem(
        ask(client, shopper, order_id, [{"line_id": "lin_nope", "quantity": 1}]),
        422,
        "unknown_order_line",
    )
    assert_problem(ask(client, shopper, order_id, []), 400)
    # Forty days after the delivery: outside the default 30-day window.
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE order_transitions SET at = at - interval '40 days' "
                "WHERE order_id = :id AND to_status = 'delivered'"
            ),
            {"id": order_id},
        )
    assert_problem(
        ask(client, shopper, order_id, [{"line_id": line_id, "quantity": 1}]),
        422,
        "return_window_closed",
    )
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE order_transitions SET at = at + interval '40 days' "
                "WHERE order_id = :id AND to_status = 'delivered'"
            ),
            {"id": order_id},
        )
    # A paid order not delivered yet cannot be returned.
    payer, paid, (paid_sku,) = delivered_order(client, admin, seller, {700: 1}, deliver=False)
    paid_line = line_of(paid, paid_sku)["line_id"]
    assert_problem(
        ask(client, payer, paid["order_id"], [{"line_id": paid_line, "quantity": 1}]),
        409,
        "order_not_returnable",
    )
    with engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM returns WHERE order_id IN (:a, :b)"),
                {"a": order_id, "b": paid["order_id"]},
            ).scalar_one()
            == 0
        )

    ret = ask(client, shopper, order_id, [{"line_id": line_id, "quantity": 1}]).json()
    return_id = ret["return_id"]
    assert_problem(
        client.post(f"/v1/returns/{return_id}/refund", json={}, headers=admin),
        409,
        "illegal_return_transition",
    )
    client.post(f"/v1/returns/{return_id}/approve", json={}, headers=admin)
    # Inspection of more units than asked back.
    assert_problem(
        client.post(
            f"/v1/returns/{return_id}/receive",
            json={"lines": [{"line_id": line_id, "resellable": 2}]},
            headers=admin,
        ),
        422,
        "too_many_units",
    )
    captured = payment_row(engine, payment_id)["captured_minor"]
    received(services, return_id, {line_id: 1})  # refunds are automatic; not this one
    refused = client.post(
        f"/v1/returns/{return_id}/refund", json={"amount_minor": captured + 1}, headers=admin
    )
    assert_problem(refused, 422, "refund_exceeds_captured")
    assert payment_row(engine, payment_id)["refunded_minor"] == 0
    assert refunds_of(engine, payment_id) == []
    assert "refund.issued" not in [e["type"] for e in events_of(engine, return_id)]
    assert [e["type"] for e in events_of(engine, payment_id)].count("payment.refunded") == 0
    assert (
        client.get(f"/v1/returns/{return_id}", headers=shopper["headers"]).json()["status"]
        == "received"
    )
    # The customer cannot refund themselves; the admin's plain refund works.
    assert_problem(
        client.post(f"/v1/returns/{return_id}/refund", json={}, headers=shopper["headers"]), 403
    )
    done = client.post(f"/v1/returns/{return_id}/refund", json={}, headers=admin)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "refunded"
