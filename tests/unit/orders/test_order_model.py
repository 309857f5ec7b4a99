"""The order state machine (every legal and illegal move), the fulfilment split, ids, totals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from transactional.orders.model import (
    ORDER_STATUSES,
    TRANSITIONS,
    IllegalTransition,
    Order,
    OrderLine,
    OrderNotFound,
    OrderStatus,
    ShippingAddress,
    Totals,
    actor_kind,
    order_id_for,
    region_of,
    split_into_groups,
)
from transactional.shared.errors import Conflict, InvalidRequest

NOW = datetime(2026, 3, 1, tzinfo=UTC)
LEGAL = {
    ("placed", "paid"),
    ("placed", "cancelled"),
    ("paid", "packed"),
    ("paid", "cancelled"),
    ("packed", "shipped"),
    ("shipped", "delivered"),
    ("delivered", "returned"),
    # held for a fraud review: approved (paid) or rejected (cancelled)
    ("placed", "on_hold"),
    ("on_hold", "paid"),
    ("on_hold", "cancelled"),
}


def line(n: int, seller: str = "sel_a", warehouse: str = "wh_1", qty: int = 1) -> OrderLine:
    return OrderLine(
        f"ord_eu_x_l{n}", f"sku_{n}", f"prd_{n}", seller, f"Item {n}", qty, 250, warehouse
    )


def order(status: OrderStatus = "placed") -> Order:
    lines = [line(1), line(2, "sel_b")]
    return Order(
        order_id="ord_eu_x",
        region="eu",
        checkout_id="chk_1",
        customer_id="cus_1",
        currency="EUR",
        lines=lines,
        groups=split_into_groups("ord_eu_x", lines),
        totals=Totals(subtotal_minor=500),
        shipping_address=ShippingAddress(country="DE"),
        payment_method="card",
        placed_at=NOW,
        updated_at=NOW,
        status=status,
    )


def test_the_transition_table_is_exactly_the_drawn_state_machine() -> None:
    drawn = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert drawn == LEGAL
    assert set(TRANSITIONS) == set(ORDER_STATUSES)


@pytest.mark.parametrize(("start", "to"), sorted(LEGAL))
def test_every_legal_transition_is_recorded(start: OrderStatus, to: OrderStatus) -> None:
    subject = order(start)
    move = subject.transition(to, NOW, "because", "admin:adm_1")
    assert move is not None
    assert (move.from_status, move.to_status, move.at, move.cause, move.actor) == (
        start,
        to,
        NOW,
        "because",
        "admin:adm_1",
    )
    assert subject.status == to and subject.history == [move]
    assert {group.status for group in subject.groups} == {to}


@pytest.mark.parametrize(
    ("start", "to"),
    sorted(
        (a, b) for a in ORDER_STATUSES for b in ORDER_STATUSES if a != b and (a, b) not in LEGAL
    ),
)
def test_every_illegal_transition_is_refused(start: OrderStatus, to: OrderStatus) -> None:
    subject = order(start)
    with pytest.raises(IllegalTransition) as raised:
        subject.transition(to, NOW, "nope", "admin")
    assert raised.value.code == "illegal_transition"
    assert isinstance(raised.value, Conflict)
    assert raised.value.extra == {"order_status": start, "to": to}
    assert subject.status == start and subject.history == []


@pytest.mark.parametrize("status", ORDER_STATUSES)
def test_moving_to_the_current_status_is_a_no_op(status: OrderStatus) -> None:
    subject = order(status)
    assert subject.transition(status, NOW, "again", "system") is None
    assert subject.history == []


def test_unknown_status_and_actor_are_invalid() -> None:
    with pytest.raises(InvalidRequest):
        order().transition("lost", NOW, "x", "admin")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        order().transition("paid", NOW, "x", "robot:1")
    assert actor_kind("customer:cus_1") == "customer" and actor_kind("system") == "system"


def test_mark_paid_checks_the_amount_and_is_idempotent_per_payment() -> None:
    subject = order()
    with pytest.raises(InvalidRequest) as wrong:
        subject.mark_paid("pay_1", 499, NOW, "system")
    assert wrong.value.code == "amount_mismatch"
    assert subject.mark_paid("pay_1", 500, NOW, "system") is True
    assert subject.status == "paid" and subject.paid_minor == 500
    assert subject.mark_paid("pay_1", 500, NOW, "system") is False
    with pytest.raises(Conflict) as other:
        subject.mark_paid("pay_2", 500, NOW, "system")
    assert other.value.code == "already_paid"
    cancelled = order("cancelled")
    with pytest.raises(IllegalTransition):
        cancelled.mark_paid("pay_1", 500, NOW, "system")


def test_lines_split_into_one_group_per_seller_and_warehouse() -> None:
    lines = [
        line(1, "sel_a", "wh_1"),
        line(2, "sel_b", "wh_1"),
        line(3, "sel_a", "wh_2"),
        line(4, "sel_a", "wh_1"),
    ]
    groups = split_into_groups("ord_eu_x", lines)
    assert [(g.group_id, g.seller_id, g.warehouse_id, g.line_ids) for g in groups] == [
        ("ord_eu_x_g1", "sel_a", "wh_1", ["ord_eu_x_l1", "ord_eu_x_l4"]),
        ("ord_eu_x_g2", "sel_b", "wh_1", ["ord_eu_x_l2"]),
        ("ord_eu_x_g3", "sel_a", "wh_2", ["ord_eu_x_l3"]),
    ]
    assert len(split_into_groups("ord_eu_y", [line(1), line(2)])) == 1


def test_order_ids_carry_their_region() -> None:
    order_id = order_id_for("us", "0192abc")
    assert order_id == "ord_us_0192abc" and region_of(order_id) == "us"
    for bad in ("nope", "ord_", "ord_eu", "cus_eu_1", "ord_eu_1_2"):
        with pytest.raises(OrderNotFound):
            region_of(bad)


def test_totals_must_add_up_and_match_the_lines() -> None:
    Totals(500, 50, 100, 20, 570).check(500)
    assert Totals(500, 50, 100, 20).grand_total == 570
    for totals, lines_subtotal in [
        (Totals(500, 0, 0, 0, 501), 500),
        (Totals(400), 500),
        (Totals(500, -1, 0, 0), 500),
        (Totals(500, 600), 500),  # a negative grand total
    ]:
        with pytest.raises(InvalidRequest) as raised:
            totals.check(lines_subtotal)
        assert raised.value.code == "invalid_totals"
