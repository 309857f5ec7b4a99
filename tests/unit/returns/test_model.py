"""The returns domain: windows, line values, the refund rules and their rounding."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.returns.fakes import NOW, sold_order
from transactional.returns.model import (
    AskedLine,
    Funds,
    IllegalReturnTransition,
    Inspection,
    OrderNotReturnable,
    Refunded,
    RefundExceedsCaptured,
    ReturnNotFound,
    ReturnWindowClosed,
    ReturnWindows,
    SoldOrder,
    TooManyUnits,
    allocate,
    line_values,
    new_return,
    plan_refund,
    units_value,
)
from transactional.shared.errors import InvalidRequest

WINDOWS = ReturnWindows(30, {"cat_electronics": 15, "cat_electronics_phones": 7, "cat_food": 0})


def test_a_category_takes_its_nearest_configured_ancestors_window() -> None:
    assert WINDOWS.days_for("cat_electronics_phones_android") == 7
    assert WINDOWS.days_for("cat_electronics_tv") == 15
    assert WINDOWS.days_for("cat_electronics") == 15
    assert WINDOWS.days_for("cat_fashion") == 30
    assert WINDOWS.days_for(None) == 30
    assert WINDOWS.days_for("cat_foodstuff") == 30  # a prefix match is per id segment


def test_windows_refuse_nonsense_days() -> None:
    with pytest.raises(ValueError, match=r"0\.\.3650"):
        ReturnWindows(-1)
    with pytest.raises(ValueError, match="cat_x"):
        ReturnWindows(30, {"cat_x": 10_000})


def test_allocate_is_exact_and_favours_the_largest_remainders() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(10, [0, 0]) == [0, 0]
    assert sum(allocate(99_999, [7, 13, 29, 1])) == 99_999


def test_line_values_spread_discount_and_tax_and_add_up_to_the_goods() -> None:
    order = sold_order(lines=(("a", 3, 333), ("b", 1, 1)), discount=100, tax=77, shipping=499)
    values = line_values(order)
    assert sum(values.values()) == 3 * 333 + 1 - 100 + 77
    # "a" is 999 of 1000 of the order: nearly all the discount and the tax are its.
    assert values["a"] == 999 - 100 + 77 and values["b"] == 1


def test_per_line_tax_on_top_is_used_when_it_adds_up() -> None:
    base = sold_order(lines=(("a", 1, 1000), ("b", 1, 1000)), tax=300)
    lines = [
        type(base.lines[0])(**{**vars(base.lines[0]), "tax_on_top_minor": 70}),
        type(base.lines[1])(**{**vars(base.lines[1]), "tax_on_top_minor": 230}),
    ]
    order = SoldOrder(**{**vars(base), "lines": lines})
    assert line_values(order) == {"a": 1070, "b": 1230}


def test_units_refunded_in_parts_add_up_to_the_lines_value() -> None:
    value, quantity = 1000, 3  # 333.33 a unit
    parts = [units_value(value, quantity, 0, 1), units_value(value, quantity, 1, 1)]
    parts.append(units_value(value, quantity, 2, 1))
    assert parts == [333, 333, 334] and sum(parts) == value
    assert units_value(value, quantity, 0, 3) == value
    assert units_value(value, quantity, 1, 0) == 0


def _received(order: SoldOrder, asked: list[AskedLine], inspected: list[Inspection]):  # type: ignore[no-untyped-def]
    ret = new_return(
        "ret_1",
        order,
        asked,
        customer_id="cus_1",
        categories={},
        windows=WINDOWS,
        already_asked={},
        comment=None,
        now=NOW,
    )
    ret.approve("admin:a", None, NOW)
    ret.receive(inspected, NOW)
    return ret


def _funds(order: SoldOrder, refunded: int = 0) -> Funds:
    captured = sum(line_values(order).values()) + order.shipping_minor
    return Funds("pay_1", "card", "EUR", captured, refunded)


def test_a_partial_return_for_no_fault_keeps_the_shipping() -> None:
    order = sold_order()  # 2 x 1000 + 1 x 500, shipping 499
    ret = _received(order, [AskedLine("lin_1", 1, "no_longer_needed")], [Inspection("lin_1", 1)])
    plan = plan_refund(ret, order, Refunded(), _funds(order), refund_id="rfd_1", now=NOW)
    assert (plan.amount_minor, plan.goods_minor, plan.shipping_minor) == (1000, 1000, 0)
    assert plan.method == "original_payment" and plan.units == {"lin_1": 1}


def test_a_defect_refunds_the_shipping_once() -> None:
    order = sold_order()
    ret = _received(order, [AskedLine("lin_2", 1, "defective")], [Inspection("lin_2", 0, 1)])
    plan = plan_refund(ret, order, Refunded(), _funds(order), refund_id="rfd_1", now=NOW)
    assert (plan.goods_minor, plan.shipping_minor) == (500, 499)
    again = plan_refund(
        ret, order, Refunded({}, shipping_minor=499), _funds(order, 999), refund_id="r2", now=NOW
    )
    assert again.shipping_minor == 0


def test_the_return_that_completes_the_order_refunds_the_shipping() -> None:
    order = sold_order()
    ret = _received(
        order,
        [AskedLine("lin_1", 1), AskedLine("lin_2", 1)],
        [Inspection("lin_1", 1), Inspection("lin_2", 1)],
    )
    earlier = Refunded({"lin_1": 1})
    plan = plan_refund(ret, order, earlier, _funds(order, 1000), refund_id="rfd_2", now=NOW)
    assert (plan.goods_minor, plan.shipping_minor) == (1500, 499)
    # Everything over both refunds: exactly what was captured.
    assert 1000 + plan.amount_minor == _funds(order).captured_minor


def test_missing_units_are_not_refunded_and_none_back_is_nothing_to_refund() -> None:
    order = sold_order()
    ret = _received(order, [AskedLine("lin_1", 2)], [Inspection("lin_1", 1)])
    plan = plan_refund(ret, order, Refunded(), _funds(order), refund_id="rfd_1", now=NOW)
    assert plan.amount_minor == 1000 and ret.lines[0].missing == 1
    lost = _received(order, [AskedLine("lin_1", 2)], [Inspection("lin_1", 0)])
    with pytest.raises(InvalidRequest) as refused:
        plan_refund(lost, order, Refunded(), _funds(order), refund_id="rfd_2", now=NOW)
    assert refused.value.code == "nothing_to_refund"


def test_never_more_than_is_left_of_the_capture() -> None:
    order = sold_order()
    ret = _received(order, [AskedLine("lin_1", 2)], [Inspection("lin_1", 2)])
    funds = _funds(order, refunded=_funds(order).captured_minor - 1500)  # 1500 left
    with pytest.raises(RefundExceedsCaptured) as refused:
        plan_refund(ret, order, Refunded(), funds, refund_id="rfd_1", now=NOW)
    assert refused.value.extra["refundable"] == 1500
    with pytest.raises(RefundExceedsCaptured):
        plan_refund(
            ret, order, Refunded(), _funds(order), refund_id="r", now=NOW, amount_override=10**6
        )
    plan = plan_refund(
        ret, order, Refunded(), _funds(order), refund_id="r", now=NOW, amount_override=700
    )
    assert (plan.amount_minor, plan.goods_minor, plan.shipping_minor) == (700, 700, 0)


def test_a_wallet_payment_is_refunded_as_a_wallet_credit() -> None:
    order = sold_order()
    ret = _received(order, [AskedLine("lin_1", 1)], [Inspection("lin_1", 1)])
    funds = Funds("pay_1", "wallet", "EUR", 2999, 0)
    plan = plan_refund(ret, order, Refunded(), funds, refund_id="rfd_1", now=NOW)
    assert plan.method == "wallet_credit"


def test_requests_outside_the_window_or_over_the_units_bought_are_refused() -> None:
    order = sold_order(delivered_at=NOW - timedelta(days=8))
    phone = {"prd_lin_1": "cat_electronics_phones"}

    def ask(
        lines: list[AskedLine], *, already: dict[str, int] | None = None, **kw: object
    ) -> object:
        return new_return(
            "ret_1",
            kw.get("order", order),  # type: ignore[arg-type]
            lines,
            customer_id=str(kw.get("customer", "cus_1")),
            categories=phone,
            windows=WINDOWS,
            already_asked=already or {},
            comment=None,
            now=NOW,
        )

    with pytest.raises(ReturnWindowClosed):
        ask([AskedLine("lin_1", 1)])  # a phone: 7 days
    assert ask([AskedLine("lin_2", 1)])  # no category: 30 days
    with pytest.raises(TooManyUnits):
        ask([AskedLine("lin_2", 2)])
    with pytest.raises(TooManyUnits):
        ask([AskedLine("lin_2", 1)], already={"lin_2": 1})
    with pytest.raises(InvalidRequest, match="no line"):
        ask([AskedLine("lin_9", 1)])
    with pytest.raises(InvalidRequest, match="twice"):
        ask([AskedLine("lin_2", 1), AskedLine("lin_2", 1)])
    with pytest.raises(ReturnNotFound):
        ask([AskedLine("lin_2", 1)], customer="cus_2")
    with pytest.raises(OrderNotReturnable):
        ask([AskedLine("lin_2", 1)], order=sold_order(status="shipped", delivered_at=None))


def test_the_state_machine_refuses_moves_out_of_order() -> None:
    order = sold_order()
    ret = new_return(
        "ret_1",
        order,
        [AskedLine("lin_1", 2)],
        customer_id="cus_1",
        categories={},
        windows=WINDOWS,
        already_asked={},
        comment="too big",
        now=NOW,
    )
    assert ret.requested_refund_minor == 2000
    with pytest.raises(IllegalReturnTransition):
        ret.receive([Inspection("lin_1", 1)], NOW)
    assert ret.reject("admin:a", "no", NOW) and not ret.reject("admin:a", "no", NOW)
    with pytest.raises(IllegalReturnTransition):
        ret.approve("admin:a", None, NOW)


def test_an_inspection_must_cover_every_line_within_its_units() -> None:
    order = sold_order()
    ret = new_return(
        "ret_1",
        order,
        [AskedLine("lin_1", 1), AskedLine("lin_2", 1)],
        customer_id="cus_1",
        categories={},
        windows=WINDOWS,
        already_asked={},
        comment=None,
        now=NOW,
    )
    ret.approve("seller:s", None, NOW)
    with pytest.raises(InvalidRequest, match="missing: lin_2"):
        ret.receive([Inspection("lin_1", 1)], NOW)
    with pytest.raises(TooManyUnits):
        ret.receive([Inspection("lin_1", 1, 1), Inspection("lin_2", 0)], NOW)
    assert ret.status == "approved" and ret.lines[0].resellable == 0  # nothing half-applied
