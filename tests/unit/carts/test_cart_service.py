"""Cart use cases on in-memory fakes: events, access, merge rules, checkout, rollback."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.registry import REGISTRY
from tests.unit.carts.fakes import Harness, offer
from transactional.carts.model import (
    CartCurrencyMismatch,
    CartNotFound,
    LineNotFound,
    NotEnoughStock,
    PriceUnavailable,
    UnknownSku,
)
from transactional.carts.service import Attribution
from transactional.shared.auth import Principal
from transactional.shared.errors import InvalidRequest

ADA = Principal("cus_ada", "eu")
BOB = Principal("cus_bob", "eu")


def payloads(h: Harness, event_type: str) -> list[dict[str, Any]]:
    return [e.payload for e in h.uow.committed if e.event_type == event_type]


def test_guest_cart_defaults_to_the_region_currency() -> None:
    h = Harness()
    view, created = h.service.create(None)
    assert created and view.currency == "EUR" and view.customer_id is None
    assert view.lines == [] and view.subtotal_minor == 0
    usd, _ = h.service.create(None, "USD")
    assert usd.currency == "USD" and usd.cart_id != view.cart_id


def test_customer_cart_defaults_to_the_customer_currency_and_is_unique() -> None:
    h = Harness(currencies={"cus_ada": "INR"})
    first, created = h.service.create(ADA)
    again, created_again = h.service.create(ADA, "INR")
    assert created and not created_again
    assert first.currency == "INR" and again.cart_id == first.cart_id
    assert first.customer_id == "cus_ada"


def test_unsupported_currency_is_refused() -> None:
    with pytest.raises(InvalidRequest) as error:
        Harness().service.create(None, "XYZ")
    assert error.value.code == "unsupported_currency"


def test_a_currency_is_answered_alike_for_guests_and_customers() -> None:
    h = Harness(currencies={"cus_ada": "EUR"})
    cart_id = h.service.create(ADA)[0].cart_id
    # Unsupported: the same 422 whether or not the customer already has a cart.
    for principal in (None, ADA, BOB):
        with pytest.raises(InvalidRequest) as unsupported:
            h.service.create(principal, "ZZZ")
        assert unsupported.value.code == "unsupported_currency"
    # Supported but not the active cart's: refused, naming that cart and its currency.
    with pytest.raises(CartCurrencyMismatch) as mismatch:
        h.service.create(ADA, "USD")
    assert mismatch.value.code == "cart_currency_mismatch"
    assert mismatch.value.extra == {
        "cart_id": cart_id,
        "currency": "EUR",
        "requested_currency": "USD",
    }
    # Same currency, or none: the active cart, as before.
    for currency in ("EUR", None):
        view, created = h.service.create(ADA, currency)
        assert (view.cart_id, view.currency, created) == (cart_id, "EUR", False)
    assert len(h.store.carts) == 1


def test_a_cart_opened_concurrently_in_another_currency_is_refused_too() -> None:
    h = Harness(currencies={"cus_ada": "EUR"})
    cart_id = h.service.create(ADA)[0].cart_id
    # The lookup misses it (another request is creating it); the store's get-or-create finds it.
    h.store.customer_cart_id = lambda customer_id: None  # type: ignore[method-assign]
    with pytest.raises(CartCurrencyMismatch) as mismatch:
        h.service.create(ADA, "GBP")
    assert mismatch.value.extra["cart_id"] == cart_id
    view, created = h.service.create(ADA, "EUR")
    assert (view.cart_id, created) == (cart_id, False)


def test_add_item_emits_item_added_with_the_quantity_in_cart() -> None:
    h = Harness(offer("A", EUR=1999), A=10)
    cart_id = h.service.create(None)[0].cart_id
    h.service.add_item(cart_id, None, "A", 2, Attribution(recommendation_id="rec_1"))
    view = h.service.add_item(cart_id, None, "A", 1)
    assert [(line.sku, line.quantity, line.line_total_minor) for line in view.lines] == [
        ("A", 3, 3 * 1999)
    ]
    added = payloads(h, "cart.item_added")
    assert [(p["quantity"], p["quantity_in_cart"]) for p in added] == [(2, 2), (1, 3)]
    assert added[0]["unit_price"] == {"amount_minor": 1999, "currency": "EUR"}
    assert added[0]["session_id"] == cart_id and added[0]["recommendation_id"] == "rec_1"
    assert added[0]["product_id"] == "prd_A" and added[0]["seller_id"] == "sel_1"
    assert h.uow.locks == [f"cart|{cart_id}"] * 2
    for envelope in h.uow.committed:
        REGISTRY.validate(envelope)
        assert envelope.region == "eu" and envelope.aggregate_id == cart_id


def test_add_item_reads_offers_and_stock_once_and_prices_its_answer_from_them() -> None:
    h = Harness(offer("A", EUR=1999), offer("B", EUR=500), A=10, B=4)
    cart_id = h.service.create(None)[0].cart_id
    h.service.add_item(cart_id, None, "A", 1)
    before = h.shelf.looks
    view = h.service.add_item(cart_id, None, "B", 2)
    assert h.shelf.looks == before + 1  # one read for the new SKU and the cart's lines
    assert [(line.sku, line.quantity, line.available) for line in view.lines] == [
        ("A", 1, 10),
        ("B", 2, 4),
    ]


def test_add_item_refusals_change_nothing() -> None:
    h = Harness(offer("A", EUR=100), offer("U", USD=100), A=1)
    cart_id = h.service.create(None)[0].cart_id
    with pytest.raises(UnknownSku):
        h.service.add_item(cart_id, None, "nope", 1)
    with pytest.raises(PriceUnavailable):
        h.service.add_item(cart_id, None, "U", 1)
    with pytest.raises(NotEnoughStock):
        h.service.add_item(cart_id, None, "A", 2)
    with pytest.raises(CartNotFound):
        h.service.add_item("crt_unknown", None, "A", 1)
    assert h.uow.committed == [] and h.service.view(cart_id, None).lines == []


def test_price_change_since_adding_is_flagged() -> None:
    h = Harness(offer("A", EUR=1000), A=5)
    cart_id = h.service.create(None)[0].cart_id
    h.service.add_item(cart_id, None, "A", 1)
    h.prices.offers_by_sku["A"] = offer("A", EUR=900)
    line = h.service.view(cart_id, None).lines[0]
    assert (line.unit_price_minor, line.added_unit_price_minor, line.price_changed) == (
        900,
        1000,
        True,
    )


def test_set_quantity_and_remove_emit_the_matching_events() -> None:
    h = Harness(offer("A"), A=10)
    cart_id = h.service.create(None)[0].cart_id
    h.service.add_item(cart_id, None, "A", 2)
    h.service.set_quantity(cart_id, None, "A", 5)
    h.service.set_quantity(cart_id, None, "A", 5)  # no change, no event
    h.service.set_quantity(cart_id, None, "A", 1)
    h.service.set_quantity(cart_id, None, "A", 0)
    assert h.service.view(cart_id, None).lines == []
    h.service.add_item(cart_id, None, "A", 4)
    h.service.remove_item(cart_id, None, "A")
    assert h.uow.event_types() == [
        "cart.item_added",
        "cart.item_added",
        "cart.item_removed",
        "cart.item_removed",
        "cart.item_added",
        "cart.item_removed",
    ]
    removed = payloads(h, "cart.item_removed")
    assert [(p["quantity"], p["quantity_in_cart"], p["reason"]) for p in removed] == [
        (4, 1, "user"),
        (1, 0, "user"),
        (4, 0, "user"),
    ]
    with pytest.raises(LineNotFound):
        h.service.remove_item(cart_id, None, "A")


def test_lowering_works_when_the_sku_left_the_catalog() -> None:
    h = Harness(offer("A"), A=10)
    cart_id = h.service.create(None)[0].cart_id
    h.service.add_item(cart_id, None, "A", 3)
    del h.prices.offers_by_sku["A"]
    view = h.service.set_quantity(cart_id, None, "A", 1)
    assert [(u.sku, u.quantity, u.reason) for u in view.unavailable] == [("A", 1, "unknown_sku")]


def test_customer_carts_answer_only_to_their_owner() -> None:
    h = Harness(offer("A"), A=10)
    cart_id = h.service.create(ADA)[0].cart_id
    h.service.add_item(cart_id, ADA, "A", 1)
    for stranger in (None, BOB):
        with pytest.raises(CartNotFound) as error:
            h.service.view(cart_id, stranger)
        assert error.value.code == "cart_not_found"
        with pytest.raises(CartNotFound):
            h.service.add_item(cart_id, stranger, "A", 1)
        with pytest.raises(CartNotFound):
            h.service.remove_item(cart_id, stranger, "A")
    guest_id = h.service.create(None)[0].cart_id
    assert h.service.view(guest_id, BOB).cart_id == guest_id  # a guest cart is a capability


def test_a_failed_commit_leaves_the_cart_as_it_was() -> None:
    h = Harness(offer("A"), A=10)
    cart_id = h.service.create(None)[0].cart_id
    h.service.add_item(cart_id, None, "A", 1)
    h.uow.fail_commit = True
    with pytest.raises(RuntimeError):
        h.service.add_item(cart_id, None, "A", 2)
    h.uow.fail_commit = False
    assert h.service.view(cart_id, None).lines[0].quantity == 1
    assert len(h.uow.committed) == 1


def test_merge_sums_into_the_customer_cart_drops_unpriced_and_closes_the_guest() -> None:
    h = Harness(offer("A"), offer("B"), offer("C", USD=5), currencies={"cus_ada": "EUR"}, A=50)
    h.stock.units.update(B=50, C=50)
    mine = h.service.create(ADA)[0].cart_id
    h.service.add_item(mine, ADA, "A", 2)
    guest = h.service.create(None, "EUR")[0].cart_id
    h.service.add_item(guest, None, "A", 3)
    h.service.add_item(guest, None, "B", 1)
    h.prices.offers_by_sku["C"] = offer("C", EUR=5)
    h.service.add_item(guest, None, "C", 1)
    h.prices.offers_by_sku["C"] = offer("C", USD=5)  # no EUR price any more
    before = len(h.uow.committed)

    assert h.service.merge("cus_ada", guest) == mine
    view = h.service.view(mine, ADA)
    assert [(line.sku, line.quantity) for line in view.lines] == [("A", 5), ("B", 1)]
    with pytest.raises(CartNotFound):
        h.service.view(guest, None)
    merged = h.uow.committed[before:]
    added = [e.payload for e in merged if e.event_type == "cart.item_added"]
    removed = [e.payload for e in merged if e.event_type == "cart.item_removed"]
    assert [(p["sku"], p["quantity"], p["quantity_in_cart"]) for p in added] == [
        ("A", 3, 5),
        ("B", 1, 1),
    ]
    assert {p["session_id"] for p in added} == {guest}
    assert [(p["cart_id"], p["sku"], p["reason"]) for p in removed] == [
        (guest, "A", "merged"),
        (guest, "B", "merged"),
        (guest, "C", "merged"),
    ]

    # A retried sign-in with the same guest cart changes nothing.
    assert h.service.merge("cus_ada", guest) == mine
    assert len(h.uow.committed) == before + len(merged)
    assert h.service.view(mine, ADA).lines[0].quantity == 5


def test_merge_creates_the_customer_cart_in_the_customer_currency() -> None:
    h = Harness(offer("A", EUR=100, USD=120), currencies={"cus_ada": "USD"}, A=5)
    guest = h.service.create(None)[0].cart_id
    h.service.add_item(guest, None, "A", 2)
    cart_id = h.service.merge("cus_ada", guest)
    assert cart_id is not None and cart_id != guest
    view = h.service.view(cart_id, ADA)
    assert view.currency == "USD" and view.customer_id == "cus_ada"
    assert [(line.sku, line.quantity, line.unit_price_minor) for line in view.lines] == [
        ("A", 2, 120)
    ]
    assert h.service.create(ADA)[0].cart_id == cart_id


def test_merge_without_a_guest_cart_returns_the_existing_cart_or_none() -> None:
    h = Harness(offer("A"), A=5)
    assert h.service.merge("cus_ada", None) is None
    assert h.service.merge("cus_ada", "crt_unknown") is None
    mine = h.service.create(ADA)[0].cart_id
    assert h.service.merge("cus_ada", None) == mine
    assert h.service.merge("cus_ada", mine) == mine  # its own cart: nothing to merge
    bobs = h.service.create(BOB)[0].cart_id
    h.service.add_item(bobs, BOB, "A", 1)
    assert h.service.merge("cus_ada", bobs) == mine  # never someone else's cart
    assert h.service.view(bobs, BOB).lines[0].quantity == 1
    assert h.service.view(mine, ADA).lines == []


def test_checked_out_keeps_what_was_added_while_the_checkout_ran() -> None:
    h = Harness(offer("A"), offer("B"), offer("C"), A=9, B=9, C=9)
    cart_id = h.service.create(ADA)[0].cart_id
    h.service.add_item(cart_id, ADA, "A", 2)
    h.service.add_item(cart_id, ADA, "B", 1)
    # The checkout bought A x2 and B x1; meanwhile the shopper added one A and some C.
    h.service.add_item(cart_id, ADA, "A", 1)
    h.service.add_item(cart_id, ADA, "C", 3)
    h.service.checked_out(cart_id, "ord_1", [("A", 2), ("B", 1)])
    view = h.service.view(cart_id, ADA)
    assert [(line.sku, line.quantity) for line in view.lines] == [("A", 1), ("C", 3)]
    removed = payloads(h, "cart.item_removed")
    assert [(p["sku"], p["quantity"], p["quantity_in_cart"]) for p in removed] == [
        ("A", 2, 1),
        ("B", 1, 0),
    ]
    h.service.checked_out(cart_id, "ord_1", [("A", 2), ("B", 1)])  # a retried saga step
    assert [(line.sku, line.quantity) for line in h.service.view(cart_id, ADA).lines] == [
        ("A", 1),
        ("C", 3),
    ]
    assert len(payloads(h, "cart.item_removed")) == 2


def test_checked_out_empties_once_per_order() -> None:
    h = Harness(offer("A"), offer("B"), A=5, B=5)
    cart_id = h.service.create(ADA)[0].cart_id
    h.service.add_item(cart_id, ADA, "A", 2)
    h.service.add_item(cart_id, ADA, "B", 1)
    h.service.checked_out(cart_id, "ord_1")
    removed = payloads(h, "cart.item_removed")
    assert [(p["sku"], p["quantity"], p["reason"]) for p in removed] == [
        ("A", 2, "checked_out"),
        ("B", 1, "checked_out"),
    ]
    h.service.add_item(cart_id, ADA, "A", 1)  # the shopper goes on shopping
    h.service.checked_out(cart_id, "ord_1")  # a retried saga step
    assert h.service.view(cart_id, ADA).lines[0].quantity == 1
    assert len(payloads(h, "cart.item_removed")) == 2
    h.service.checked_out("crt_gone", "ord_2")  # nothing to do, no error
