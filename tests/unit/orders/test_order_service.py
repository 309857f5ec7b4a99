"""OrderService on fakes: place (idempotent, split, validated), pay, move, cancel, read."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from schemas.common import Address
from schemas.registry import REGISTRY
from tests.unit.orders.fakes import FakeInventory, FakeOrdersUnitOfWork, FakePayments
from tests.unit.payments.fakes import FakeClock
from transactional.orders.model import IllegalTransition, OrderNotFound, Totals
from transactional.orders.placement import NewLine, PlaceOrder
from transactional.orders.service import OrderService
from transactional.shared.errors import Conflict, InvalidRequest

LINES = [
    NewLine("sku_a", "prd_a", "sel_1", "Mug", 2, 1250, "wh_eu_1"),
    NewLine("sku_b", "prd_b", "sel_2", "Tea", 1, 499, "wh_eu_1"),
    ("sku_c", "prd_c", "sel_1", "Spoon", 3, 100, "wh_eu_2"),
]
ADDRESS = Address(country="DE", city="Berlin", postal_code="10115", address_id="adr_1")


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.uow = FakeOrdersUnitOfWork()
        self.inventory = FakeInventory()
        self.payments = FakePayments()
        self.service = OrderService(
            lambda: self.uow,
            inventory=self.inventory,
            payments=self.payments,
            regions=["eu", "us", "in"],
            clock=self.clock,
        )
        self.count = 0

    def place(self, **changes: Any) -> Any:
        self.count += 1
        fields: dict[str, Any] = {
            "checkout_id": f"chk_{self.count}",
            "customer_id": "cus_1",
            "region": "eu",
            "currency": "EUR",
            "lines": LINES,
            "shipping_address": ADDRESS,
            "totals": Totals(3299, 300, 499, 0, 3498),
        }
        fields.update(changes)
        self.clock.advance(seconds=1)
        return self.service.place(PlaceOrder(**fields))

    def paid(self, **changes: Any) -> Any:
        placed = self.place(**changes)
        self.payments.captured["pay_1"] = placed.totals.grand_total
        return self.service.mark_paid(placed.order_id, "pay_1", placed.totals.grand_total, "card")

    def types(self) -> list[str]:
        return self.uow.event_types()

    def payloads(self, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.uow.committed if e.event_type == event_type]


@pytest.fixture
def world() -> World:
    return World()


def test_place_creates_a_split_order_and_emits_a_valid_order_placed(world: World) -> None:
    order = world.place()
    assert order.order_id.startswith("ord_eu_") and order.status == "placed"
    assert [(g.seller_id, g.warehouse_id, len(g.line_ids)) for g in order.groups] == [
        ("sel_1", "wh_eu_1", 1),
        ("sel_2", "wh_eu_1", 1),
        ("sel_1", "wh_eu_2", 1),
    ]
    assert world.types() == ["order.placed"]
    event = world.uow.committed[0]
    assert event.region == "eu" and event.aggregate_id == order.order_id
    REGISTRY.validate(event)  # the contract of schemas/orders.py
    body = event.payload
    assert body["checkout_id"] == "chk_1" and len(body["fulfilment_groups"]) == 3
    assert body["totals"]["grand_total"] == {"amount_minor": 3498, "currency": "EUR"}
    assert body["shipping_address"]["address_id"] == "adr_1"
    moves = world.service.transitions(order.order_id)
    assert [(m.from_status, m.to_status, m.actor) for m in moves] == [(None, "placed", "system")]


def test_place_is_idempotent_per_checkout(world: World) -> None:
    first = world.place(checkout_id="chk_same")
    again = world.place(checkout_id="chk_same")
    assert again.order_id == first.order_id
    assert world.types() == ["order.placed"]
    with pytest.raises(Conflict) as other:
        world.place(checkout_id="chk_same", customer_id="cus_2")
    assert other.value.code == "checkout_already_placed"


def test_totals_default_to_the_lines(world: World) -> None:
    order = world.place(totals=None)
    assert order.totals.grand_total == 3299


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"region": "mars"}, "unknown_region"),
        ({"currency": "XYZ"}, "unsupported_currency"),
        ({"payment_method": "barter"}, "invalid_method"),
        ({"checkout_id": " "}, "invalid_id"),
        ({"lines": []}, "empty_order"),
        ({"lines": [("sku", "prd", "sel", "T", 0, 100, "wh")]}, "invalid_quantity"),
        ({"lines": [("sku", "prd", "sel", "T", -1, 100, "wh")]}, "invalid_quantity"),
        ({"lines": [("sku", "prd", "sel", "T", 1, -100, "wh")]}, "invalid_price"),
        ({"lines": [("sku", "prd", "sel", "T", 1, 1.5, "wh")]}, "invalid_price"),
        ({"lines": [("sku", "prd", "sel", "T", 1, 100, "")]}, "invalid_line"),
        ({"lines": [("sku", "prd", "sel", "T", 1)]}, "invalid_line"),
        ({"totals": Totals(1)}, "invalid_totals"),
        ({"customer_id": "c" * 129}, "invalid_id"),
        ({"lines": [("s" * 129, "prd", "sel", "T", 1, 100, "wh")]}, "invalid_line"),
        ({"shipping_address": Address(country="de")}, "invalid_address"),
        ({"shipping_address": Address(country="DE", address_id="")}, "invalid_address"),
    ],
)
def test_bad_orders_are_refused(world: World, changes: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        world.place(**changes)
    assert raised.value.code == code
    assert world.types() == []


def test_mark_paid_emits_order_paid_once(world: World) -> None:
    order = world.paid()
    assert order.status == "paid" and order.payment_id == "pay_1"
    again = world.service.mark_paid(order.order_id, "pay_1", 3498, "card")
    assert again.status == "paid"
    assert world.types() == ["order.placed", "order.paid"]
    assert world.payloads("order.paid")[0]["amount"]["amount_minor"] == 3498
    with pytest.raises(InvalidRequest):
        world.service.mark_paid(order.order_id, "pay_1", 3498, "barter")  # type: ignore[arg-type]


def test_the_fulfilment_path_emits_one_event_per_group(world: World) -> None:
    order = world.paid()
    for to in ("packed", "shipped", "delivered"):
        world.clock.advance(hours=1)
        moved = world.service.transition(order.order_id, to, f"{to} at the dock", "admin:adm_1")
        assert moved.status == to
    assert (
        world.types()
        == ["order.placed", "order.paid"]
        + ["order.packed"] * 3
        + ["order.shipped"] * 3
        + ["order.delivered"] * 3
    )
    shipped = world.payloads("order.shipped")
    assert len({s["shipment_id"] for s in shipped}) == 3
    assert all(s["carrier"] == "sandbox-post" and s["tracking_number"] for s in shipped)
    delivered = world.payloads("order.delivered")
    assert [d["order_complete"] for d in delivered] == [False, False, True]
    assert [d["shipment_id"] for d in delivered] == [s["shipment_id"] for s in shipped]
    moves = world.service.transitions(order.order_id)
    assert [(m.from_status, m.to_status) for m in moves] == [
        (None, "placed"),
        ("placed", "paid"),
        ("paid", "packed"),
        ("packed", "shipped"),
        ("shipped", "delivered"),
    ]
    assert moves[2].cause == "packed at the dock" and moves[2].actor == "admin:adm_1"
    assert moves[3].at - moves[2].at == timedelta(hours=1)
    # Repeating a move is a no-op; skipping back is illegal.
    world.service.transition(order.order_id, "delivered", "again", "admin")
    assert world.types().count("order.delivered") == 3
    with pytest.raises(IllegalTransition):
        world.service.transition(order.order_id, "packed", "back", "admin")


def test_illegal_transitions_change_nothing(world: World) -> None:
    order = world.place()
    for to in ("packed", "shipped", "delivered", "returned"):
        with pytest.raises(IllegalTransition):
            world.service.transition(order.order_id, to, "skip", "admin")
    assert world.service.get(order.order_id).status == "placed"
    assert world.types() == ["order.placed"]
    with pytest.raises(InvalidRequest) as bad_target:
        world.service.transition(order.order_id, "paid", "x", "admin")
    assert bad_target.value.code == "invalid_status"
    with pytest.raises(InvalidRequest) as no_cause:
        world.service.transition(order.order_id, "packed", " ", "admin")
    assert no_cause.value.code == "missing_cause"


def test_cancel_a_placed_order_voids_the_authorisation_then_releases_stock(world: World) -> None:
    order = world.place(payment_id="pay_auth")
    cancelled = world.service.cancel(order.order_id, "system:checkout", "payment_failed")
    assert cancelled.status == "cancelled" and cancelled.pending is None
    assert world.inventory.calls == [
        ("release", order.checkout_id, "order_cancelled"),
        ("restock", order.order_id, "order_cancelled"),
    ]
    assert world.payments.calls == [("void", "pay_auth")]
    event = world.payloads("order.cancelled")[0]
    assert (event["reason"], event["cancelled_by"], event["refund_amount"]) == (
        "payment_failed",
        "system",
        None,
    )
    # Idempotent: a second cancel changes nothing and compensates nothing.
    world.service.cancel(order.order_id, "system:checkout", "payment_failed")
    world.service.cancel(order.order_id, "customer:cus_1", "customer_request", "cus_1")
    assert world.types() == ["order.placed", "order.cancelled"]
    assert len(world.payments.calls) == 1


def test_cancel_a_paid_order_refunds_it(world: World) -> None:
    order = world.paid()
    cancelled = world.service.cancel(
        order.order_id, "system:checkout", "payment_failed", note="fraud screen"
    )
    assert cancelled.refunded_minor == 3498
    assert world.payments.calls == [("refund", "pay_1", None, "cancellation")]
    assert world.inventory.calls == [("restock", order.order_id, "order_cancelled")]
    event = world.payloads("order.cancelled")[0]
    assert event["refund_amount"] == {"amount_minor": 3498, "currency": "EUR"}
    assert event["cancelled_by"] == "system" and event["note"] == "fraud screen"
    last = world.service.transitions(order.order_id)[-1]
    assert (last.to_status, last.cause, last.actor) == (
        "cancelled",
        "payment_failed: fraud screen",
        "system:checkout",
    )


def test_admin_cancel_goes_through_transition_with_a_cancel_reason(world: World) -> None:
    order = world.place()
    with pytest.raises(InvalidRequest) as bad:
        world.service.transition(order.order_id, "cancelled", "because", "admin:adm")
    assert bad.value.code == "invalid_cancel_reason"
    world.service.transition(order.order_id, "cancelled", "seller_cancelled", "admin:adm")
    assert world.payloads("order.cancelled")[0]["cancelled_by"] == "support"


def test_a_failed_refund_leaves_the_cancel_pending_with_no_stock_back(world: World) -> None:
    order = world.paid()
    world.payments.fail = Conflict("gateway says no")
    with pytest.raises(Conflict):
        world.service.cancel(order.order_id, "support", "customer_request")
    stuck = world.service.get(order.order_id)
    assert stuck.status == "paid" and stuck.pending is not None
    assert "order.cancelled" not in world.types()
    assert world.inventory.calls == []  # money first: no unit went back on sale
    world.payments.fail = None
    assert world.service.cancel(order.order_id, "support", "customer_request").status == (
        "cancelled"
    )


def test_cancel_after_packing_is_illegal_and_compensates_nothing(world: World) -> None:
    order = world.paid()
    world.service.transition(order.order_id, "packed", "packed", "admin")
    with pytest.raises(IllegalTransition):
        world.service.cancel(order.order_id, "customer:cus_1", "customer_request", "cus_1")
    assert world.payments.calls == [] and world.inventory.calls == []


def test_return_restocks_and_refunds(world: World) -> None:
    order = world.paid()
    for to in ("packed", "shipped", "delivered"):
        world.service.transition(order.order_id, to, to, "admin")
    returned = world.service.transition(
        order.order_id, "returned", "parcel back", "admin", note="box damaged"
    )
    assert returned.status == "returned" and returned.refunded_minor == 3498
    assert world.inventory.calls == [("restock", order.order_id, "return_restock")]
    assert world.payments.calls == [("refund", "pay_1", None, "return")]
    event = world.payloads("order.returned")[0]
    assert event["refund_amount"]["amount_minor"] == 3498 and event["note"] == "box damaged"


def test_cancel_validates_reason_and_actor(world: World) -> None:
    order = world.place()
    with pytest.raises(InvalidRequest) as reason:
        world.service.cancel(order.order_id, "customer", "bored")  # type: ignore[arg-type]
    assert reason.value.code == "invalid_cancel_reason"
    with pytest.raises(InvalidRequest) as actor:
        world.service.cancel(order.order_id, "martian", "customer_request")
    assert actor.value.code == "invalid_actor"


def test_other_customers_orders_and_unknown_ids_are_not_found(world: World) -> None:
    order = world.place()
    assert world.service.get(order.order_id, "cus_1").order_id == order.order_id
    for call in (
        lambda: world.service.get(order.order_id, "cus_2"),
        lambda: world.service.transitions(order.order_id, "cus_2"),
        lambda: world.service.cancel(order.order_id, "customer", "customer_request", "cus_2"),
        lambda: world.service.get("ord_eu_missing"),
        lambda: world.service.get("not-an-order-id"),
        lambda: world.service.mark_paid("ord_us_missing", "pay", 1, "card"),
    ):
        with pytest.raises(OrderNotFound):
            call()
    assert world.service.get(order.order_id).status == "placed"


def test_list_for_pages_newest_first(world: World) -> None:
    placed = [world.place().order_id for _ in range(5)]
    world.place(customer_id="cus_other")
    first = world.service.list_for("cus_1", page=1, page_size=2)
    assert first.total == 5 and [o.order_id for o in first.items] == placed[::-1][:2]
    last = world.service.list_for("cus_1", page=3, page_size=2)
    assert [o.order_id for o in last.items] == [placed[0]]
    assert world.service.list_for("cus_1", page=4, page_size=2).items == []
    for page, size in ((0, 10), (1, 0), (1, 101)):
        with pytest.raises(InvalidRequest):
            world.service.list_for("cus_1", page, size)


def test_by_checkout_finds_the_order(world: World) -> None:
    order = world.place(checkout_id="chk_find")
    found = world.service.by_checkout("chk_find")
    assert found is not None and found.order_id == order.order_id
    assert world.service.by_checkout("chk_none") is None
