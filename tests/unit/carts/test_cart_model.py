"""Cart arithmetic, limits, price-change and stock flags, and merge rules: pure domain."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.carts.fakes import NOW, offer
from transactional.carts.model import (
    MAX_LINE_QUANTITY,
    MAX_LINES,
    Cart,
    CartFull,
    InvalidQuantity,
    LineNotFound,
    NotEnoughStock,
    NotForSale,
    PriceUnavailable,
    QuantityLimitExceeded,
    UnknownSku,
    price_cart,
)


def cart(currency: str = "EUR", customer_id: str | None = None) -> Cart:
    return Cart("crt_1", currency, NOW, customer_id)


def test_adding_sums_quantities_and_keeps_the_first_add_time() -> None:
    c = cart()
    first = c.add(offer("A"), 2, available=10, now=NOW)
    second = c.add(offer("A"), 3, available=10, now=NOW + timedelta(minutes=1))
    assert (first.delta, first.line.quantity) == (2, 2)
    assert (second.delta, second.line.quantity) == (3, 5)
    assert c.lines["A"].added_at == NOW
    assert c.quantity_of("A") == 5 and c.quantity_of("B") == 0


@pytest.mark.parametrize("quantity", [0, -1])
def test_adding_needs_a_positive_quantity(quantity: int) -> None:
    with pytest.raises(InvalidQuantity):
        cart().add(offer("A"), quantity, available=10, now=NOW)


def test_a_line_holds_at_most_99_units() -> None:
    c = cart()
    c.add(offer("A"), 98, available=500, now=NOW)
    with pytest.raises(QuantityLimitExceeded) as error:
        c.add(offer("A"), 2, available=500, now=NOW)
    assert error.value.extra == {"sku": "A", "max": MAX_LINE_QUANTITY, "in_cart": 98}
    assert c.quantity_of("A") == 98  # unchanged
    with pytest.raises(QuantityLimitExceeded):
        cart().add(offer("A"), 100, available=500, now=NOW)


def test_a_line_never_exceeds_availability() -> None:
    c = cart()
    c.add(offer("A"), 3, available=4, now=NOW)
    with pytest.raises(NotEnoughStock) as error:
        c.add(offer("A"), 2, available=4, now=NOW)
    assert error.value.code == "insufficient_stock"
    assert error.value.extra == {"sku": "A", "available": 4, "requested": 5}


def test_price_must_exist_in_the_cart_currency_and_product_be_on_sale() -> None:
    with pytest.raises(PriceUnavailable) as error:
        cart("USD").add(offer("A", EUR=1000), 1, available=5, now=NOW)
    assert error.value.extra == {"sku": "A", "currency": "USD"}
    with pytest.raises(NotForSale):
        cart().add(offer("A", status="archived"), 1, available=5, now=NOW)


def test_a_cart_holds_a_bounded_number_of_skus() -> None:
    c = cart()
    for index in range(MAX_LINES):
        c.add(offer(f"S{index}"), 1, available=5, now=NOW)
    with pytest.raises(CartFull):
        c.add(offer("one-more"), 1, available=5, now=NOW)
    c.add(offer("S0"), 1, available=5, now=NOW)  # an existing line can still grow


def test_set_quantity_lowers_raises_removes_and_ignores_no_change() -> None:
    c = cart()
    c.add(offer("A", EUR=1000), 5, available=10, now=NOW)
    lowered = c.set_quantity("A", 2, None, available=0)  # lowering needs no catalog or stock
    assert lowered is not None and (lowered.delta, lowered.line.quantity) == (-3, 2)
    assert c.set_quantity("A", 2, None, available=0) is None
    raised = c.set_quantity("A", 7, offer("A", EUR=1200), available=10)
    assert raised is not None and (raised.delta, raised.line.unit_price_minor) == (5, 1200)
    removed = c.set_quantity("A", 0, None, available=0)
    assert removed is not None and removed.removed and removed.delta == -7
    assert removed.line.product_id == "prd_A"  # kept for the event
    assert "A" not in c.lines


def test_set_quantity_rejects_negative_unknown_lines_and_unchecked_raises() -> None:
    c = cart()
    c.add(offer("A"), 1, available=10, now=NOW)
    with pytest.raises(InvalidQuantity):
        c.set_quantity("A", -1, offer("A"), available=10)
    with pytest.raises(LineNotFound):
        c.set_quantity("B", 1, offer("B"), available=10)
    with pytest.raises(UnknownSku):
        c.set_quantity("A", 2, None, available=10)
    with pytest.raises(NotEnoughStock):
        c.set_quantity("A", 11, offer("A"), available=10)
    with pytest.raises(QuantityLimitExceeded):
        c.set_quantity("A", 100, offer("A"), available=1000)
    with pytest.raises(LineNotFound):
        c.remove("B")


def test_clear_removes_every_line_in_order() -> None:
    c = cart()
    c.add(offer("B"), 1, available=10, now=NOW)
    c.add(offer("A"), 2, available=10, now=NOW + timedelta(seconds=1))
    changes = c.clear()
    assert [(ch.line.sku, ch.delta) for ch in changes] == [("B", -1), ("A", -2)]
    assert not c.lines


def test_check_out_takes_only_the_bought_units() -> None:
    c = cart()
    c.add(offer("A"), 3, available=10, now=NOW)  # bought 2, then one more added meanwhile
    c.add(offer("B"), 1, available=10, now=NOW + timedelta(seconds=1))  # bought
    c.add(offer("C"), 4, available=10, now=NOW + timedelta(seconds=2))  # added meanwhile
    changes = c.check_out({"A": 2, "B": 1, "Z": 5})
    assert [(ch.line.sku, ch.delta, ch.line.quantity) for ch in changes] == [
        ("A", -2, 1),
        ("B", -1, 0),
    ]
    assert {sku: line.quantity for sku, line in c.lines.items()} == {"A": 1, "C": 4}


def test_check_out_of_a_line_lowered_meanwhile_removes_what_is_left() -> None:
    c = cart()
    c.add(offer("A"), 1, available=10, now=NOW)
    [change] = c.check_out({"A": 3})
    assert (change.delta, change.removed) == (-1, True) and not c.lines


def test_view_prices_now_and_flags_price_changes_and_short_stock() -> None:
    c = cart()
    c.add(offer("A", EUR=1000), 2, available=10, now=NOW)
    c.add(offer("B", EUR=500), 3, available=10, now=NOW + timedelta(seconds=1))
    view = price_cart(c, {"A": offer("A", EUR=1100), "B": offer("B", EUR=500)}, {"A": 10, "B": 1})
    a, b = view.lines
    assert (a.unit_price_minor, a.added_unit_price_minor, a.price_changed) == (1100, 1000, True)
    assert (a.line_total_minor, a.stock_short) == (2200, False)
    assert (b.price_changed, b.stock_short, b.available) == (False, True, 1)
    assert view.subtotal_minor == 2200 + 1500
    assert view.item_count == 5
    assert not view.ready_for_checkout  # B is short


def test_view_sets_aside_lines_that_cannot_be_bought() -> None:
    c = cart()
    for sku in ("A", "B", "C", "D"):
        c.add(offer(sku), 1, available=10, now=NOW)
    offers = {"B": offer("B", status="archived"), "C": offer("C", USD=10), "D": offer("D")}
    view = price_cart(c, offers, {"D": 5})
    assert [(u.sku, u.reason) for u in view.unavailable] == [
        ("A", "unknown_sku"),
        ("B", "not_for_sale"),
        ("C", "price_unavailable"),
    ]
    assert [line.sku for line in view.lines] == ["D"]
    assert view.subtotal_minor == 1000 and view.item_count == 4
    assert not view.ready_for_checkout
    assert price_cart(cart(), {}, {}).ready_for_checkout is False  # empty


def test_guest_and_customer_visibility() -> None:
    guest, mine = cart(), cart(customer_id="cus_1")
    assert guest.visible_to(None) and guest.visible_to("cus_2")
    assert mine.visible_to("cus_1")
    assert not mine.visible_to(None) and not mine.visible_to("cus_2")
    guest.merged_into = "crt_2"
    assert not guest.visible_to(None)


def test_absorb_sums_caps_and_drops_lines_without_a_price_in_the_currency() -> None:
    target = cart("EUR", "cus_1")
    target.add(offer("A"), 60, available=1000, now=NOW)
    guest = Cart("crt_g", "EUR", NOW)
    guest.add(offer("A"), 50, available=1000, now=NOW)
    guest.add(offer("B", EUR=700), 2, available=1000, now=NOW)
    guest.add(offer("C"), 1, available=1000, now=NOW)
    offers = {"A": offer("A"), "B": offer("B", EUR=900), "C": offer("C", USD=10)}
    changes, dropped = target.absorb(guest, offers, NOW)
    assert [(ch.line.sku, ch.delta, ch.line.quantity) for ch in changes] == [
        ("A", MAX_LINE_QUANTITY - 60, MAX_LINE_QUANTITY),
        ("B", 2, 2),
    ]
    assert dropped == ["C"]
    # Same currency: the price the guest saw is kept, so the change since is still flagged.
    assert target.lines["B"].unit_price_minor == 700


def test_absorb_into_another_currency_takes_current_prices() -> None:
    target = cart("USD", "cus_1")
    guest = Cart("crt_g", "EUR", NOW)
    guest.add(offer("A", EUR=1000, USD=1100), 2, available=10, now=NOW)
    changes, dropped = target.absorb(guest, {"A": offer("A", EUR=1000, USD=1150)}, NOW)
    assert dropped == [] and changes[0].line.unit_price_minor == 1150
