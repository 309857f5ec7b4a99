"""OrderService on the real PostgreSQL: idempotent place, region partitions, pay, cancel."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text

from schemas.common import Address
from souk.services import Services
from transactional.orders.model import IllegalTransition, Order, OrderNotFound, Totals
from transactional.orders.placement import NewLine, PlaceOrder
from transactional.orders.service import OrderService
from transactional.payments.model import Card
from transactional.payments.service import PaymentService

CURRENCY = {"eu": "EUR", "us": "USD", "in": "INR"}


def place_order(
    services: Services,
    customer_id: str | None = None,
    *,
    region: str = "eu",
    checkout_id: str | None = None,
    **changes: Any,
) -> Order:
    """A fresh two-seller, two-warehouse order placed directly through the order service."""
    orders: OrderService = services.provided["orders"]
    fields: dict[str, Any] = {
        "checkout_id": checkout_id or f"chk_{secrets.token_hex(8)}",
        "customer_id": customer_id or f"cus_{secrets.token_hex(8)}",
        "region": region,
        "currency": CURRENCY[region],
        "lines": [
            NewLine("sku_mug", "prd_mug", "sel_a", "Mug", 2, 1250, f"wh_{region}_1"),
            NewLine("sku_tea", "prd_tea", "sel_b", "Tea", 1, 499, f"wh_{region}_1"),
            NewLine("sku_pot", "prd_pot", "sel_a", "Pot", 1, 3000, f"wh_{region}_2"),
        ],
        "shipping_address": Address(country="DE", city="Berlin", address_id="adr_1"),
        "totals": Totals(5999, 500, 500, 0),
    }
    fields.update(changes)
    return orders.place(PlaceOrder(**fields))


def pay_order(services: Services, order: Order) -> Order:
    """Authorise and capture the order's total with the sandbox card, then mark it paid."""
    payments: PaymentService = services.provided["payments"]
    orders: OrderService = services.provided["orders"]
    token = payments.tokenize(
        Card(number="4242424242424242", exp_month=1, exp_year=2040, cvc="123", holder="A"),
        order.customer_id,
    )
    payment_id = f"pay_{secrets.token_hex(8)}"
    total = order.totals.grand_total
    payments.authorize(
        payment_id,
        order.order_id,
        order.customer_id,
        total,
        order.currency,
        token,
        f"{order.checkout_id}:authorize",
    )
    payments.capture(payment_id)
    return orders.mark_paid(order.order_id, payment_id, total, "card")


def outbox_types(engine: Engine, key: str) -> list[str]:
    """Event types written to the outbox for an aggregate, in order."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT event_type FROM outbox WHERE message_key = :key ORDER BY id"),
                {"key": key},
            ).scalars()
        )


def test_place_is_idempotent_per_checkout(services: Services, engine: Engine) -> None:
    first = place_order(services)
    again = place_order(services, first.customer_id, checkout_id=first.checkout_id)
    assert again.order_id == first.order_id
    assert [(g.seller_id, g.warehouse_id) for g in again.groups] == [
        ("sel_a", "wh_eu_1"),
        ("sel_b", "wh_eu_1"),
        ("sel_a", "wh_eu_2"),
    ]
    assert again.totals.grand_total == 5999 and len(again.lines) == 3
    assert outbox_types(engine, first.order_id) == ["order.placed"]
    with engine.connect() as connection:
        count = connection.execute(
            text("SELECT count(*) FROM orders WHERE checkout_id = :id"),
            {"id": first.checkout_id},
        ).scalar_one()
    assert count == 1


def test_concurrent_places_of_one_checkout_make_one_order(services: Services) -> None:
    checkout_id = f"chk_{secrets.token_hex(8)}"
    customer_id = f"cus_{secrets.token_hex(8)}"
    placed: list[str] = []
    errors: list[BaseException] = []

    def place() -> None:
        try:
            placed.append(place_order(services, customer_id, checkout_id=checkout_id).order_id)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=place) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(placed) == 5 and len(set(placed)) == 1


@pytest.mark.parametrize("region", ["eu", "us", "in"])
def test_rows_land_in_their_region_partition(
    services: Services, engine: Engine, region: str
) -> None:
    order = place_order(services, region=region)
    assert order.order_id.startswith(f"ord_{region}_")
    with engine.connect() as connection:
        tables = {
            table: connection.execute(
                text(f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE order_id = :id"),
                {"id": order.order_id},
            )
            .scalars()
            .all()
            for table in ("orders", "order_lines", "fulfilment_groups", "order_transitions")
        }
        plan = "\n".join(
            connection.execute(
                text("EXPLAIN SELECT * FROM orders WHERE region = :r AND order_id = :id"),
                {"r": region, "id": order.order_id},
            ).scalars()
        )
    assert tables == {table: [f"{table}_{region}"] for table in tables}
    assert f"orders_{region}" in plan and "orders_default" not in plan  # pruned to one


def test_the_full_path_to_delivered_is_recorded(services: Services, engine: Engine) -> None:
    orders: OrderService = services.provided["orders"]
    order = pay_order(services, place_order(services))
    assert order.status == "paid" and order.paid_minor == 5999
    for to in ("packed", "shipped", "delivered"):
        orders.transition(order.order_id, to, f"warehouse says {to}", "admin:adm_1")
    delivered = orders.get(order.order_id)
    assert delivered.status == "delivered"
    assert all(g.status == "delivered" and g.shipment_id for g in delivered.groups)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT from_status, to_status, cause, actor, at FROM order_transitions "
                "WHERE region = 'eu' AND order_id = :id ORDER BY seq"
            ),
            {"id": order.order_id},
        ).all()
    assert [(r.from_status, r.to_status) for r in rows] == [
        (None, "placed"),
        ("placed", "paid"),
        ("paid", "packed"),
        ("packed", "shipped"),
        ("shipped", "delivered"),
    ]
    assert rows[2].cause == "warehouse says packed" and rows[2].actor == "admin:adm_1"
    assert all(r.at.tzinfo is not None for r in rows)
    assert [r.at for r in rows] == sorted(r.at for r in rows)
    assert outbox_types(engine, order.order_id) == [
        "order.placed",
        "order.paid",
        *["order.packed"] * 3,
        *["order.shipped"] * 3,
        *["order.delivered"] * 3,
    ]


def test_cancel_a_placed_order(services: Services, engine: Engine) -> None:
    orders: OrderService = services.provided["orders"]
    order = place_order(services)
    cancelled = orders.cancel(order.order_id, "system:checkout", "out_of_stock")
    assert cancelled.status == "cancelled" and cancelled.refunded_minor == 0
    assert orders.cancel(order.order_id, "system:checkout", "out_of_stock").status == "cancelled"
    assert outbox_types(engine, order.order_id) == ["order.placed", "order.cancelled"]
    with pytest.raises(IllegalTransition):
        orders.mark_paid(order.order_id, "pay_late", 5999, "card")


def test_cancel_a_paid_order_refunds_the_capture(services: Services, engine: Engine) -> None:
    orders: OrderService = services.provided["orders"]
    payments: PaymentService = services.provided["payments"]
    order = pay_order(services, place_order(services))
    cancelled = orders.cancel(
        order.order_id, f"customer:{order.customer_id}", "customer_request", order.customer_id
    )
    assert cancelled.refunded_minor == 5999
    payment = payments.find(order.payment_id or "")
    assert payment is not None and (payment.status, payment.refunded_minor) == ("refunded", 5999)
    assert outbox_types(engine, order.order_id)[-1] == "order.cancelled"
    assert outbox_types(engine, payment.payment_id)[-1] == "payment.refunded"
    with engine.connect() as connection:
        refund = connection.execute(
            text("SELECT amount_minor, reason FROM payment_refunds WHERE payment_id = :id"),
            {"id": payment.payment_id},
        ).one()
        stored = connection.execute(
            text(
                "SELECT status, refunded_minor FROM orders WHERE region = 'eu' AND order_id = :id"
            ),
            {"id": order.order_id},
        ).one()
    assert tuple(refund) == (5999, "cancellation")
    assert tuple(stored) == ("cancelled", 5999)


def test_a_placed_order_with_an_authorisation_voids_it_on_cancel(services: Services) -> None:
    orders: OrderService = services.provided["orders"]
    payments: PaymentService = services.provided["payments"]
    payment_id = f"pay_{secrets.token_hex(8)}"
    order = place_order(services, payment_id=payment_id)
    token = payments.tokenize(
        Card(number="4242424242424242", exp_month=1, exp_year=2040, cvc="123", holder="A"),
        order.customer_id,
    )
    payments.authorize(
        payment_id, order.order_id, order.customer_id, 5999, "EUR", token, f"{payment_id}:a"
    )
    orders.cancel(order.order_id, "system", "payment_failed")
    voided = payments.find(payment_id)
    assert voided is not None and voided.status == "voided"


def test_return_refunds_and_is_final(services: Services, engine: Engine) -> None:
    orders: OrderService = services.provided["orders"]
    order = pay_order(services, place_order(services, region="us"))
    for to in ("packed", "shipped", "delivered", "returned"):
        orders.transition(order.order_id, to, to, "admin")
    returned = orders.get(order.order_id)
    assert (returned.status, returned.refunded_minor) == ("returned", 5999)
    assert outbox_types(engine, order.order_id)[-1] == "order.returned"
    with pytest.raises(IllegalTransition):
        orders.transition(order.order_id, "packed", "again", "admin")


def test_list_for_pages_across_regions_newest_first(services: Services) -> None:
    orders: OrderService = services.provided["orders"]
    customer_id = f"cus_{secrets.token_hex(8)}"
    placed = [place_order(services, customer_id, region=r).order_id for r in ("eu", "us", "in")]
    page = orders.list_for(customer_id, page=1, page_size=2)
    assert page.total == 3 and [o.order_id for o in page.items] == placed[::-1][:2]
    assert [len(o.lines) for o in page.items] == [3, 3]
    assert [o.order_id for o in orders.list_for(customer_id, 2, 2).items] == [placed[0]]


def test_unknown_and_foreign_orders_are_not_found(services: Services) -> None:
    orders: OrderService = services.provided["orders"]
    order = place_order(services)
    for order_id, customer in [
        (order.order_id, "cus_someone_else"),
        (f"ord_eu_{secrets.token_hex(16)}", None),
        (f"ord_zz_{secrets.token_hex(16)}", None),
        ("nonsense", None),
    ]:
        with pytest.raises(OrderNotFound):
            orders.get(order_id, customer)
