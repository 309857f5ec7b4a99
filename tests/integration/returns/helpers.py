"""Helpers of the returns tests: a paid order bought through the checkout and delivered."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import register
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    filled_cart,
    post_checkout,
    stock_sku,
)
from transactional.inventory.directory import SellerDirectory
from transactional.returns.adapters import (
    CatalogCategories,
    InventoryReturns,
    OrdersAdapter,
    PaymentRefunds,
    load_windows,
)
from transactional.returns.model import Inspection
from transactional.returns.repository import SqlReturnsUnitOfWork
from transactional.returns.service import ReturnService
from transactional.shared.auth import ADMIN, Principal

WAREHOUSE = "wh_eu_1"


def delivered_order(
    client: Any,
    admin: Mapping[str, str],
    seller: Mapping[str, Any],
    items: Mapping[int, int],
    shopper: dict[str, Any] | None = None,
    *,
    units: int = 10,
    deliver: bool = True,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(shopper, order, skus): new SKUs priced by ``items`` (price → quantity bought), a
    checkout paying for them, the order moved to delivered by an admin (unless not to)."""
    buyer = shopper or register(client)
    skus = {
        stock_sku(client, seller, units, price_minor=price): qty for price, qty in items.items()
    }
    response = post_checkout(client, buyer, checkout_body(filled_cart(client, buyer, skus)))
    assert response.status_code == 201, response.text
    order_id = response.json()["order_id"]
    for to in ("packed", "shipped", "delivered") if deliver else ():
        moved = client.post(
            f"/v1/admin/orders/{order_id}/transitions",
            json={"to": to, "cause": "test fulfilment"},
            headers=admin,
        )
        assert moved.status_code == 200, moved.text
    order = client.get(f"/v1/orders/{order_id}", headers=buyer["headers"]).json()
    assert order["status"] == ("delivered" if deliver else "paid")
    return buyer, order, list(skus)


def manual_returns(services: Services) -> ReturnService:
    """The stack's return service, except that receiving does not refund (an admin does)."""
    return ReturnService(
        lambda: SqlReturnsUnitOfWork(services.engine, services.outbox),
        orders=OrdersAdapter(services["orders"]),
        categories=CatalogCategories(services["catalog"]),
        stock=InventoryReturns(services["inventory"]),
        destinations=PaymentRefunds(services["payments"]),
        sellers=SellerDirectory(services["sellers"]),
        windows=load_windows(),
        auto_refund=False,
    )


def received(services: Services, return_id: str, inspections: Mapping[str, int]) -> None:
    """Approve and receive a return (resellable units per line id) without refunding it."""
    returns = manual_returns(services)
    desk = Principal("admin", "eu", frozenset({ADMIN}))
    returns.approve(return_id, desk)
    ret = returns.receive(
        return_id, desk, [Inspection(line_id, units) for line_id, units in inspections.items()]
    )
    assert ret.status == "received" and ret.refund is None


def line_of(order: Mapping[str, Any], sku: str) -> dict[str, Any]:
    """The order's line of a SKU."""
    return next(line for line in order["lines"] if line["sku"] == sku)


def stock_row(engine: Engine, sku: str) -> tuple[int, int, int]:
    """(on_hand, reserved, damaged) of a SKU in wh_eu_1."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT on_hand, reserved, damaged FROM stock_levels "
                "WHERE sku = :sku AND warehouse_id = :w"
            ),
            {"sku": sku, "w": WAREHOUSE},
        ).one()
    return int(row.on_hand), int(row.reserved), int(row.damaged)


def payment_row(engine: Engine, payment_id: str) -> dict[str, Any]:
    """The payment's status, captured and refunded amounts."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                text(
                    "SELECT status, captured_minor, refunded_minor FROM payments "
                    "WHERE payment_id = :id"
                ),
                {"id": payment_id},
            )
            .mappings()
            .one()
        )
    return dict(row)


def refunds_of(engine: Engine, payment_id: str) -> list[int]:
    """Amounts of the payment's recorded refunds."""
    with engine.connect() as connection:
        return [
            int(amount)
            for amount in connection.execute(
                text("SELECT amount_minor FROM payment_refunds WHERE payment_id = :id ORDER BY 1"),
                {"id": payment_id},
            ).scalars()
        ]


def gateway_refunded(engine: Engine, payment_id: str) -> int:
    """What the sandbox gateway itself refunded on the payment's charge."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT c.refunded_minor FROM sandbox_gateway_charges c JOIN payments p "
                    "ON p.gateway_reference = c.reference WHERE p.payment_id = :id"
                ),
                {"id": payment_id},
            ).scalar_one()
        )


def events_of(engine: Engine, key: str) -> list[dict[str, Any]]:
    """(type, payload) of the outbox rows of one aggregate key, in order."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event_type, value FROM outbox WHERE message_key = :key ORDER BY id"),
            {"key": key},
        ).all()
    return [
        {"type": row.event_type, "payload": json.loads(bytes(row.value))["payload"]} for row in rows
    ]
