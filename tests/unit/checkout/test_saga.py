"""The checkout saga on in-memory fakes: happy path, each failing step compensates exactly the
steps before it, unknown payment outcomes, and Stripe-style idempotency keys."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from tests.unit.checkout.fakes import (
    ADDRESS,
    CARD,
    DECLINED_CARD,
    LEASE_S,
    SHIPPING_MINOR,
    SHOPPER,
    TIMEOUT_CARD,
    Harness,
    harness,
)
from transactional.checkout.model import (
    CheckoutRequest,
    IdempotencyKeyInUse,
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    IdempotencyKeyReused,
    PaymentMethod,
    PaymentOutcomeUnknown,
    Stage,
)
from transactional.inventory.model import InsufficientStock
from transactional.shared.auth import Principal
from transactional.shared.errors import Conflict, InvalidRequest, PaymentDeclined


def request(
    cart_id: str = "crt_1", number: str = CARD.number, **changes: object
) -> CheckoutRequest:
    card = replace(CARD, number=number)
    base = CheckoutRequest(cart_id=cart_id, payment=PaymentMethod(card=card), address=ADDRESS)
    return replace(base, **changes)  # type: ignore[arg-type]


def ready(h: Harness | None = None) -> Harness:
    h = h or harness()
    h.world.add_cart()
    return h


# The stock is sold (commit) before the money is taken, once the order is known to be payable.
SAGA_CALLS = [
    "snapshot",
    "tokenize",
    "reserve",
    "place",
    "authorize",
    "commit",
    "is_payable",
    "capture",
    "mark_paid",
    "checked_out",
]


def test_happy_path_reserves_orders_pays_and_finishes_in_order() -> None:
    h = ready()
    reply = h.service.checkout(SHOPPER, request(), "key-1")

    assert h.world.names() == SAGA_CALLS
    assert reply.response.status == 201 and not reply.replayed
    body = reply.response.body
    saga = h.saga(reply.checkout_id)
    assert body == {
        "checkout_id": reply.checkout_id,
        "order_id": saga.order_id,
        "status": "completed",
        "totals": {
            "currency": "EUR",
            "subtotal_minor": 2250,
            "discount_minor": 0,
            "shipping_minor": SHIPPING_MINOR,
            "tax_minor": 0,
            "grand_total_minor": 2250 + SHIPPING_MINOR,
        },
        "payment": {"payment_id": saga.payment_id, "status": "captured", "last4": "4242"},
    }
    assert saga.stage is Stage.COMPLETED and saga.status == "completed"
    assert saga.payment_id == "pay_" + reply.checkout_id.removeprefix("chk_")
    assert [r.step for r in saga.history] == [
        "validate",
        "reserve",
        "order",
        "authorize",
        "capture",
        "finish",
    ]
    assert h.uow.event_types() == ["checkout.started", "checkout.completed"]
    assert h.world.orders[body["order_id"]]["status"] == "paid"
    assert h.world.committed == {reply.checkout_id}
    # Only what was bought leaves the cart; the order knows its payment from the start.
    assert h.world.emptied == {"crt_1": [("sku_a", 2), ("sku_b", 1)]}
    assert h.world.orders[body["order_id"]]["payment_id"] == saga.payment_id
    # The payment keys derive from the checkout id; the holder defaults to the addressee.
    authorize = next(c for c in h.world.calls if c[0] == "authorize")
    assert authorize[2] == f"{reply.checkout_id}:authorize"
    assert ("tokenize", "Ada L") in h.world.calls
    # The stored response is what was returned.
    (record,) = h.uow.idempotency.rows.values()
    assert record.response == reply.response


def test_the_raw_card_is_never_stored_nor_put_in_an_event() -> None:
    h = ready()
    h.service.checkout(SHOPPER, request(), "key-1")
    stored = repr(h.uow.checkouts.rows) + repr(h.uow.idempotency.rows)
    stored += json.dumps([envelope.payload for envelope in h.uow.committed])
    assert CARD.number not in stored and CARD.cvc not in repr(h.uow.checkouts.rows)
    assert CARD.number not in repr(request())


def test_a_saved_address_is_looked_up_in_the_address_book() -> None:
    h = ready()
    h.world.addresses[(SHOPPER.customer_id, "adr_1")] = replace(ADDRESS, address_id="adr_1")
    reply = h.service.checkout(SHOPPER, request(address=None, address_id="adr_1"), "k")
    assert reply.response.status == 201
    assert h.saga(reply.checkout_id).plan.shipping.address_id == "adr_1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("setup", "status", "code", "reason"),
    [
        (lambda h: h.world.add_cart(lines=()), 422, "invalid_cart", "empty"),
        (
            lambda h: h.world.add_cart(customer_id="cus_other"),
            422,
            "invalid_cart",
            "cart_not_found",
        ),
        (lambda h: None, 422, "invalid_cart", "cart_not_found"),  # no such cart
        (
            lambda h: h.world.add_cart(lines=(("sku_a", 1, None),)),
            422,
            "invalid_cart",
            "price_missing",
        ),
        (
            lambda h: (h.world.stock.update(sku_a=1), h.world.add_cart()),
            409,
            "insufficient_stock",
            None,
        ),
    ],
    ids=["empty", "foreign", "unknown", "unpriced", "short"],
)
def test_an_invalid_cart_fails_at_validate_with_nothing_to_undo(
    setup: object, status: int, code: str, reason: str | None
) -> None:
    h = harness()
    setup(h)  # type: ignore[operator]
    reply = h.service.checkout(SHOPPER, request(), "k")
    body = reply.response.body
    assert reply.response.status == status and body["code"] == code, body
    assert body["step"] == "validate" and body.get("reason") == reason
    assert h.world.names() == ["snapshot"]
    assert h.uow.event_types() == ["checkout.failed"]


def test_unknown_address_and_unserved_country_are_422_at_validate() -> None:
    h = ready()
    unknown = h.service.checkout(SHOPPER, request(address=None, address_id="adr_x"), "k1")
    far = h.service.checkout(SHOPPER, request(address=replace(ADDRESS, country="JP")), "k2")
    assert (unknown.response.status, unknown.response.body["code"]) == (422, "unknown_address")
    assert (far.response.status, far.response.body["code"]) == (422, "unserved_country")
    assert "reserve" not in h.world.names()


def test_a_card_the_vault_refuses_fails_at_validate() -> None:
    h = ready()
    h.world.fail["tokenize"] = InvalidRequest("bad number", code="invalid_card")
    reply = h.service.checkout(SHOPPER, request(), "k")
    assert (reply.response.status, reply.response.body["code"]) == (422, "invalid_card")
    assert h.world.names() == ["snapshot", "tokenize"]


def after(h: Harness, call: str) -> list[str]:
    """The calls made after the first ``call``."""
    names = h.world.names()
    return names[names.index(call) + 1 :]


def test_insufficient_stock_at_reserve_is_409_with_the_skus_and_undoes_nothing() -> None:
    h = ready()
    h.world.fail["reserve"] = InsufficientStock(["sku_b"])
    reply = h.service.checkout(SHOPPER, request(), "k")
    body = reply.response.body
    assert reply.response.status == 409
    assert (body["code"], body["step"], body["skus"]) == (
        "insufficient_stock",
        "reserve",
        ["sku_b"],
    )
    assert after(h, "reserve") == []
    assert h.saga(reply.checkout_id).stage is Stage.FAILED


def test_a_refused_order_releases_the_reservation_only() -> None:
    h = ready()
    h.world.fail["place"] = InvalidRequest("no", code="order_refused")
    reply = h.service.checkout(SHOPPER, request(), "k")
    assert (reply.response.status, reply.response.body["step"]) == (422, "order")
    assert h.world.calls[-1] == ("release", reply.checkout_id, "checkout_abandoned")
    assert after(h, "place") == ["release"]
    assert h.world.stock == {"sku_a": 10, "sku_b": 10}


def test_a_declined_card_cancels_the_order_and_releases_stock_without_capture() -> None:
    h = ready()
    reply = h.service.checkout(SHOPPER, request(number=DECLINED_CARD), "k")
    body = reply.response.body
    assert reply.response.status == 402
    assert (body["step"], body["decline_code"]) == ("payment", "card_declined")
    # The order is checked first: a decline of a cancelled order is told as the cancel.
    assert after(h, "authorize") == ["is_payable", "cancel", "release"]
    saga = h.saga(reply.checkout_id)
    assert h.world.calls[-2] == ("cancel", saga.order_id, "payment_failed")
    assert h.world.calls[-1] == ("release", saga.checkout_id, "payment_failed")
    assert h.world.orders[saga.order_id or ""]["status"] == "cancelled"
    assert saga.payment_status == "declined"
    assert [r.outcome for r in saga.history][-3:] == ["failed", "compensated", "compensated"]
    assert h.uow.event_types() == ["checkout.started", "checkout.failed"]
    assert h.uow.committed[-1].payload["compensated"] == ["order", "reserve"]


def test_a_failed_capture_voids_cancels_and_puts_the_sold_stock_back() -> None:
    h = ready()
    h.world.fail["capture"] = PaymentDeclined("no", code="capture_refused")
    reply = h.service.checkout(SHOPPER, request(), "k")
    assert (reply.response.status, reply.response.body["step"]) == (402, "payment")
    saga = h.saga(reply.checkout_id)
    assert after(h, "capture") == ["is_payable", "void", "cancel", "release", "restock"]
    assert h.world.calls[-1] == ("restock", saga.order_id, "order_cancelled")
    assert saga.payment_status == "voided"
    assert h.world.stock == {"sku_a": 10, "sku_b": 10}


def test_stock_lost_before_capture_voids_instead_of_charging_and_refunding() -> None:
    h = ready()
    h.world.fail["commit"] = Conflict("released", code="reservation_released")
    reply = h.service.checkout(SHOPPER, request(), "k")
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "reservation_released",
        "reserve",
    )
    assert "capture" not in h.world.names() and "refund" not in h.world.names()
    assert after(h, "commit") == ["void", "cancel", "release", "restock"]
    saga = h.saga(reply.checkout_id)
    assert saga.payment_status == "voided"
    assert h.world.payments[saga.payment_id or ""] == "voided"


def test_a_lost_authorization_answer_is_looked_up_and_the_saga_continues() -> None:
    h = ready()
    reply = h.service.checkout(SHOPPER, request(number=TIMEOUT_CARD), "k")
    assert reply.response.status == 201
    assert after(h, "authorize") == [
        "lookup",
        "authorize",
        "commit",
        "is_payable",
        "capture",
        "mark_paid",
        "checked_out",
    ]


def test_an_authorization_the_processor_never_saw_rolls_back_as_interrupted() -> None:
    h = ready()
    h.world.fail["authorize"] = PaymentOutcomeUnknown("timeout")
    reply = h.service.checkout(SHOPPER, request(), "k")
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "checkout_interrupted",
        "payment",
    )
    assert after(h, "authorize") == ["lookup", "cancel", "release"]


def test_only_the_customers_own_vault_token_pays() -> None:
    h = ready()
    h.world.owners["tok_mine"] = SHOPPER.customer_id
    reply = h.service.checkout(SHOPPER, request(payment=PaymentMethod(token="tok_mine")), "k")
    assert reply.response.status == 201
    assert h.saga(reply.checkout_id).instrument_token == "tok_mine"


@pytest.mark.parametrize("token", ["tok_theirs", "tok_unknown"])
def test_another_customers_or_an_unknown_token_is_422_before_any_stock_is_held(
    token: str,
) -> None:
    h = ready()
    h.world.owners["tok_theirs"] = "cus_2"
    reply = h.service.checkout(SHOPPER, request(payment=PaymentMethod(token=token)), "k")
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        422,
        "unknown_instrument",
        "validate",
    )
    assert h.world.names() == ["snapshot", "owns"]
    assert h.uow.event_types() == ["checkout.failed"]


# -- other actors and lost leases ----------------------------------------------------------


def test_an_order_cancelled_before_the_capture_is_voided_and_never_charged() -> None:
    h = ready()

    def support_cancels() -> None:
        (order,) = h.world.orders.values()
        order["status"] = "cancelled"

    h.world.hooks["commit"] = support_cancels
    reply = h.service.checkout(SHOPPER, request(), "k")
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    assert "capture" not in h.world.names()
    assert after(h, "is_payable") == ["void", "cancel", "release", "restock"]
    saga = h.saga(reply.checkout_id)
    assert saga.stage is Stage.FAILED and saga.payment_status == "voided"
    assert h.world.payments[saga.payment_id or ""] == "voided"


def test_an_order_cancelled_before_mark_paid_is_refunded_and_the_key_gets_its_answer() -> None:
    h = ready()

    def customer_cancels() -> None:
        (order,) = h.world.orders.values()
        order["status"] = "cancelled"

    h.world.hooks["mark_paid"] = customer_cancels
    reply = h.service.checkout(SHOPPER, request(), "key-1")
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (409, "order_cancelled", "finish")
    assert body["cause"] == "illegal_transition"
    assert after(h, "mark_paid") == ["refund", "cancel", "release", "restock"]
    saga = h.saga(reply.checkout_id)
    assert saga.stage is Stage.FAILED and saga.payment_status == "refunded"
    assert h.world.payments[saga.payment_id or ""] == "refunded"
    assert h.world.emptied == {}  # nothing was bought: the cart stays
    again = h.service.checkout(SHOPPER, request(), "key-1")
    assert again.replayed and again.response == reply.response
    assert h.uow.event_types() == ["checkout.started", "checkout.failed"]


def test_a_driver_that_lost_its_lease_does_not_capture() -> None:
    h = ready()
    h.world.hooks["is_payable"] = lambda: h.steal_lease(h.only_saga().checkout_id)
    with pytest.raises(IdempotencyKeyInUse):
        h.service.checkout(SHOPPER, request(), "k")
    assert h.world.names()[-2:] == ["commit", "is_payable"]
    assert h.only_saga().stage is Stage.AUTHORIZED  # for its new driver to finish


def test_a_driver_that_lost_its_lease_does_not_compensate() -> None:
    h = ready()
    h.world.hooks["authorize"] = lambda: h.steal_lease(h.only_saga().checkout_id)
    with pytest.raises(IdempotencyKeyInUse):
        h.service.checkout(SHOPPER, request(number=DECLINED_CARD), "k")
    # No cancel, no release: not its saga now.
    assert h.world.names()[-2:] == ["authorize", "is_payable"]
    assert h.only_saga().stage is Stage.ORDERED


def test_an_authorization_made_after_recovery_rolled_back_is_voided_by_its_driver() -> None:
    h = ready()
    checkout_ids: list[str] = []

    def recovery_takes_over() -> None:
        # The authorize call outlives the lease; recovery rolls the saga back meanwhile.
        checkout_ids.append(h.only_saga().checkout_id)
        h.clock.advance(LEASE_S + 1)
        assert h.service.recover() == 1

    h.world.hooks["authorize"] = recovery_takes_over
    reply = h.service.checkout(SHOPPER, request(), "key-1")
    (checkout_id,) = checkout_ids
    saga = h.saga(checkout_id)
    assert saga.stage is Stage.FAILED
    assert h.world.payments[saga.payment_id or ""] == "voided"  # no hold left on the card
    assert h.world.names()[-1] == "void"
    # The live request answers with what recovery settled, not "still in progress".
    assert reply.checkout_id == checkout_id
    assert (reply.response.status, reply.response.body["code"]) == (409, "checkout_interrupted")
    assert h.world.orders[saga.order_id or ""]["status"] == "cancelled"
    assert h.world.stock == {"sku_a": 10, "sku_b": 10}


def test_an_authorization_still_pending_after_a_timeout_is_voided_not_left_open() -> None:
    h = ready()

    def payment_row_without_answer() -> None:
        h.world.payments[h.only_saga().payment_id or ""] = "pending"

    h.world.hooks["authorize"] = payment_row_without_answer
    h.world.fail["authorize"] = PaymentOutcomeUnknown("timeout")
    reply = h.service.checkout(SHOPPER, request(), "k")
    assert (reply.response.status, reply.response.body["code"]) == (409, "checkout_interrupted")
    assert after(h, "authorize") == ["lookup", "void", "cancel", "release"]
    saga = h.saga(reply.checkout_id)
    assert saga.payment_status == "voided"
    assert h.world.payments[saga.payment_id or ""] == "voided"


# -- idempotency ---------------------------------------------------------------------------


def test_a_retry_replays_the_first_response_without_running_again() -> None:
    h = ready()
    first = h.service.checkout(SHOPPER, request(), "key-1")
    calls = len(h.world.calls)
    again = h.service.checkout(SHOPPER, request(), "  key-1  ")
    assert again.replayed and again.response == first.response
    assert again.checkout_id == first.checkout_id
    assert len(h.world.calls) == calls


def test_failures_are_replayed_too_even_once_the_cause_is_gone() -> None:
    h = ready()
    h.world.fail["reserve"] = InsufficientStock(["sku_a"])
    first = h.service.checkout(SHOPPER, request(), "key-1")
    again = h.service.checkout(SHOPPER, request(), "key-1")
    assert first.response.status == 409 and again.response == first.response and again.replayed


def test_the_same_key_with_another_body_is_refused() -> None:
    h = ready()
    h.world.add_cart("crt_2")
    h.service.checkout(SHOPPER, request(), "key-1")
    for other in [
        request(cart_id="crt_2"),
        request(number="4000056655665556"),
        request(address=replace(ADDRESS, line1="2 Main St")),
        request(payment=PaymentMethod(card=replace(CARD, cvc="999"))),
    ]:
        with pytest.raises(IdempotencyKeyReused):
            h.service.checkout(SHOPPER, other, "key-1")


def test_a_key_in_flight_is_409_until_its_saga_ends() -> None:
    h = ready()
    h.world.fail["place"] = RuntimeError("database went away")
    with pytest.raises(RuntimeError):
        h.service.checkout(SHOPPER, request(), "key-1")
    with pytest.raises(IdempotencyKeyInUse):
        h.service.checkout(SHOPPER, request(), "key-1")


def test_keys_are_scoped_per_customer() -> None:
    h = ready()
    h.world.add_cart("crt_2", customer_id="cus_2")
    mine = h.service.checkout(SHOPPER, request(), "shared")
    theirs = h.service.checkout(Principal("cus_2", "eu"), request(cart_id="crt_2"), "shared")
    assert not theirs.replayed and theirs.checkout_id != mine.checkout_id
    assert theirs.response.status == 201


def test_an_expired_key_can_be_used_anew_and_is_purged() -> None:
    h = ready()
    first = h.service.checkout(SHOPPER, request(), "key-1")
    h.clock.advance(24 * 3600 + 1)
    assert h.service.recover() == 0
    assert h.uow.idempotency.rows == {}
    h.world.add_cart()
    again = h.service.checkout(SHOPPER, request(), "key-1")
    assert not again.replayed and again.checkout_id != first.checkout_id


def test_the_key_header_is_required_and_bounded() -> None:
    h = ready()
    for missing in (None, "", "   "):
        with pytest.raises(IdempotencyKeyMissing):
            h.service.checkout(SHOPPER, request(), missing)
    for bad in ("x" * 256, "clé", "a\tb"):
        with pytest.raises(IdempotencyKeyInvalid):
            h.service.checkout(SHOPPER, request(), bad)
    assert h.world.calls == []
