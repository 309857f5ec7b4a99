"""The payment part of the hot path and every way it leaves for the slow path: a decline in
one commit, lost processor answers, the pre-capture check (a cancel, a swept reservation, a
lost lease), a refused or lost capture, and a T2 that cannot commit."""

from __future__ import annotations

import pytest

from tests.unit.checkout.fakes import (
    DECLINED_CARD,
    LEASE_S,
    SHOPPER,
    TIMEOUT_CARD,
    WAREHOUSE,
    Harness,
    ready,
    request,
)
from transactional.checkout.model import IdempotencyKeyInUse, PaymentOutcomeUnknown, Stage
from transactional.payments.model import GatewayRefused
from transactional.shared.errors import Conflict, PaymentDeclined

A = ("sku_a", WAREHOUSE)
B = ("sku_b", WAREHOUSE)
T1_EVENTS = ("checkout.started", "stock.reserved", "stock.reserved", "order.placed")


def _payment_id(h: Harness) -> str:
    return h.world.only_saga().payment_id or ""


def _nothing_charged_all_back(h: Harness, payment_status: str = "voided") -> None:
    """The order cancelled, the payment given back at the processor, every unit back on sale
    (PostgreSQL and Redis), the cart free."""
    (order,) = h.world.orders()
    payment = h.world.payment(_payment_id(h))
    assert order.status == "cancelled" and order.pending is None
    assert payment.status == payment_status and payment.captured_minor in (0, 2250)
    assert h.world.processor[payment.idempotency_key].status in ("declined", "voided", "refunded")
    assert h.world.available() == {A: (10, 10), B: (10, 10)}
    assert h.world.on_hand() == {A: 10, B: 10}
    assert h.world.claim("crt_1") is None


# -- a decline -------------------------------------------------------------------------------------


def test_a_decline_is_answered_402_in_one_commit_and_gives_everything_back() -> None:
    h = ready()
    reply = h.checkout(request(number=DECLINED_CARD))
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"], body["decline_code"]) == (
        402,
        "card_declined",
        "payment",
        "card_declined",
    )
    assert h.world.commits() == [
        ("hot.commit", T1_EVENTS),
        (
            "hot.commit",
            (
                "payment.failed",
                "stock.released",
                "stock.released",
                "order.cancelled",
                "checkout.failed",
            ),
        ),
    ]
    assert h.world.after_first("payments.hold") == ["hot.sync", "hot.commit", "redis.give_back"]
    saga = h.world.only_saga()
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "declined")
    assert [(r.step, r.outcome) for r in saga.history][-3:] == [
        ("payment", "failed"),
        ("order", "compensated"),
        ("reserve", "compensated"),
    ]
    assert h.world.events("checkout.failed")[0]["compensated"] == ["order", "reserve"]
    assert h.world.events("order.cancelled")[0]["reason"] == "payment_failed"
    assert {e["reason"] for e in h.world.events("stock.released")} == {"payment_failed"}
    payment = h.world.payment(saga.payment_id or "")
    assert (payment.status, payment.decline_code, payment.captured_minor) == (
        "declined",
        "card_declined",
        0,
    )
    record = h.world.key(SHOPPER.customer_id, "key-1")
    assert record is not None and record.response == reply.response
    assert "payments.collect" not in h.world.names()
    _nothing_charged_all_back(h, payment_status="declined")


def test_a_driver_that_lost_its_lease_does_not_compensate_a_decline() -> None:
    h = ready()
    h.world.on_call("payments.hold", lambda: h.steal_lease(h.world.only_saga().checkout_id))
    with pytest.raises(IdempotencyKeyInUse):
        h.checkout(request(number=DECLINED_CARD))
    # The decline commit rolled back; nothing cancelled or released: not its saga now.
    assert h.world.after_first("payments.hold") == ["hot.sync", "hot.rollback"]
    saga = h.world.only_saga()
    assert (saga.stage, saga.status) == (Stage.ORDERED, "pending")
    (order,) = h.world.orders()
    assert order.status == "placed" and h.world.payment(saga.payment_id or "").status == "pending"


def test_a_decline_racing_a_cancel_is_compensated_once_and_nothing_is_charged() -> None:
    h = ready()
    h.world.on_call("payments.hold", h.world.support_cancels)
    reply = h.checkout(request(number=DECLINED_CARD))
    # Cancelled while authorizing: the answer says so (as when the card is good).
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    assert "nothing was charged" in body["detail"]
    # The decline commit found the order moved: rolled back, compensated step by step.
    assert h.world.after_first("payments.hold") == [
        "hot.sync",
        "hot.rollback",
        "payments.lookup",
        "orders.cancel",
        "stock.release",
    ]
    saga = h.world.only_saga()
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "declined")
    assert h.world.events("checkout.failed")[0]["compensated"] == ["order", "reserve"]
    _nothing_charged_all_back(h)


# -- lost authorization answers --------------------------------------------------------------------


def test_a_lost_authorization_answer_is_looked_up_and_the_slow_path_completes() -> None:
    h = ready()
    reply = h.checkout(request(number=TIMEOUT_CARD))
    assert reply.response.status == 201 and reply.response.body["status"] == "completed"
    assert h.world.after_first("payments.hold") == [
        "payments.lookup",
        "payments.authorize",
        "orders.is_payable",
        "stock.commit",
        "payments.capture",
        "orders.mark_paid",
        "carts.checked_out",
        "hot.sync",  # the cart is free again
    ]
    saga = h.world.only_saga()
    assert (saga.stage, saga.payment_status) == (Stage.COMPLETED, "captured")
    payment = h.world.payment(saga.payment_id or "")
    assert (payment.status, payment.captured_minor) == ("captured", 2250)
    (order,) = h.world.orders()
    assert (order.status, order.paid_minor) == ("paid", 2250)
    assert h.world.on_hand() == {A: 8, B: 9} and h.world.claim("crt_1") is None
    record = h.world.key(SHOPPER.customer_id, "key-1")
    assert record is not None and record.response == reply.response


def test_an_authorization_the_processor_never_saw_rolls_back_as_interrupted() -> None:
    h = ready()
    h.world.fail("payments.hold", PaymentOutcomeUnknown("timeout"))
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "checkout_interrupted",
        "payment",
    )
    # Still pending at the processor's end: voided first, so a late hold is released.
    assert h.world.after_first("payments.hold") == [
        "payments.lookup",
        "orders.is_payable",  # a cancel would be told as such
        "payments.void",
        "orders.cancel",
        "stock.release",
    ]
    saga = h.world.only_saga()
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "voided")
    assert h.world.payment(saga.payment_id or "").status == "voided"
    (order,) = h.world.orders()
    assert order.status == "cancelled"
    assert h.world.available() == {A: (10, 10), B: (10, 10)}
    assert h.world.claim("crt_1") is None


# -- the pre-capture check -------------------------------------------------------------------------


def test_an_order_cancelled_while_authorizing_is_voided_and_answered_as_cancelled() -> None:
    h = ready()
    h.world.on_call("payments.hold", h.world.support_cancels)
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    assert "nothing was charged" in body["detail"]
    assert "payments.collect" not in h.world.names() and "payments.capture" not in h.world.names()
    assert h.world.after_first("payments.hold") == [
        "hot.sync",  # the pre-capture read: not payable
        "orders.is_payable",
        "payments.void",
        "orders.cancel",
        "stock.release",
        "stock.restock",
    ]
    saga = h.world.only_saga()
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "voided")
    assert saga.failure is not None and saga.failure.code == "order_cancelled"
    _nothing_charged_all_back(h)


def test_a_reservation_swept_while_authorizing_is_voided_not_charged() -> None:
    h = ready()
    h.world.on_call("payments.hold", lambda: h.world.sweep(h.world.only_saga().checkout_id))
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "reservation_released",
        "reserve",
    )
    assert "payments.collect" not in h.world.names() and "payments.refund" not in h.world.names()
    assert h.world.after_first("payments.hold") == [
        "hot.sync",
        "orders.is_payable",
        "stock.commit",
        "payments.void",
        "orders.cancel",
        "stock.release",
        "stock.restock",
    ]
    assert h.world.only_saga().payment_status == "voided"
    _nothing_charged_all_back(h)


def test_a_hold_made_after_recovery_rolled_back_is_released_and_its_answer_given() -> None:
    h = ready()

    def recovery_takes_over() -> None:  # the authorize call outlives the lease
        h.clock.advance(LEASE_S + 1)
        assert h.recover() == 1

    h.world.on_call("payments.hold", recovery_takes_over)
    reply = h.checkout()
    # The live request answers with what recovery settled, not "still in progress".
    saga = h.world.only_saga()
    assert reply.checkout_id == saga.checkout_id and not reply.replayed
    assert (reply.response.status, reply.response.body["code"]) == (409, "checkout_interrupted")
    assert h.world.after_first("payments.hold")[-2:] == ["hot.sync", "payments.void"]
    assert "payments.collect" not in h.world.names()
    # No hold left on the card: the one made after the rollback was released too.
    payment = h.world.payment(saga.payment_id or "")
    assert payment.status == "voided" and payment.gateway_reference is not None
    assert h.world.processor[payment.idempotency_key].status == "voided"
    _nothing_charged_all_back(h)


def test_a_driver_that_lost_its_lease_releases_its_hold_and_does_not_capture() -> None:
    h = ready()
    h.world.on_call("payments.hold", lambda: h.steal_lease(h.world.only_saga().checkout_id))
    with pytest.raises(IdempotencyKeyInUse):
        h.checkout()
    assert h.world.after_first("payments.hold") == ["hot.sync", "payments.void"]
    assert "payments.collect" not in h.world.names()
    saga = h.world.only_saga()
    assert (saga.stage, saga.status) == (Stage.ORDERED, "pending")  # for its new driver
    payment = h.world.payment(saga.payment_id or "")
    assert payment.status == "voided"
    assert h.world.processor[payment.idempotency_key].status == "voided"
    # The new driver finds the hold given back and rolls the checkout back.
    h.clock.advance(LEASE_S + 1)
    assert h.recover() == 1
    assert h.world.saga(saga.checkout_id).failure is not None
    _nothing_charged_all_back(h)


def test_a_slow_authorization_with_the_lease_still_ours_is_captured_not_voided() -> None:
    """Nobody took the saga over: its lease is ours, only shorter than the capture margin.
    The hot path should keep (renew) it and capture, as the step-by-step saga renewed its
    lease after the authorization, rather than void a good hold and fail the checkout."""
    h = ready()
    h.world.on_call("payments.hold", lambda: h.clock.advance(LEASE_S - 10))
    reply = h.checkout()
    assert reply.response.status == 201
    payment = h.world.payment(_payment_id(h))
    assert (payment.status, payment.captured_minor) == ("captured", 2250)


# -- the capture -----------------------------------------------------------------------------------


@pytest.mark.parametrize("taken", [True, False], ids=["captured-answer-lost", "never-reached"])
def test_a_capture_whose_answer_was_lost_is_handed_to_recovery_which_finishes(
    taken: bool,
) -> None:
    h = ready()
    if taken:
        h.world.fail_after("payments.collect", PaymentOutcomeUnknown("timeout"))
    else:
        h.world.fail("payments.collect", PaymentOutcomeUnknown("timeout"))
    with pytest.raises(IdempotencyKeyInUse):
        h.checkout()
    saga = h.world.only_saga()
    assert (saga.stage, saga.status) == (Stage.ORDERED, "pending")
    h.clock.advance(0.001)  # handed over: no lease to wait for
    mark = len(h.world.calls)
    assert h.recover() == 1
    assert h.world.since(mark) == [
        "payments.lookup",
        "payments.authorize",
        "orders.is_payable",
        "stock.commit",
        "payments.capture",  # idempotent: a capture that happened is not made twice
        "orders.mark_paid",
        "carts.checked_out",
        "hot.sync",  # the cart is free again
    ]
    payment = h.world.payment(saga.payment_id or "")
    assert (payment.status, payment.captured_minor) == ("captured", 2250)
    again = h.checkout()
    assert again.replayed and again.response.status == 201
    assert h.world.on_hand() == {A: 8, B: 9}


def test_a_refused_capture_is_retried_by_the_slow_path() -> None:
    h = ready()
    h.world.fail("payments.collect", GatewayRefused("try again", code="gateway_refused"))
    reply = h.checkout()
    assert reply.response.status == 201
    assert h.world.after_first("payments.collect") == [
        "orders.is_payable",
        "stock.commit",
        "payments.capture",
        "orders.mark_paid",
        "carts.checked_out",
        "hot.sync",  # the cart is free again
    ]
    assert h.world.payment(_payment_id(h)).status == "captured"


def test_a_capture_refused_for_good_voids_cancels_and_puts_the_sold_stock_back() -> None:
    h = ready()
    refused = PaymentDeclined("no", code="capture_refused")
    h.world.broken["payments.collect"] = refused
    h.world.broken["payments.capture"] = refused
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        402,
        "capture_refused",
        "payment",
    )
    assert h.world.after_first("payments.capture") == [
        "orders.is_payable",
        "payments.void",
        "orders.cancel",
        "stock.release",
        "stock.restock",
    ]
    assert h.world.only_saga().payment_status == "voided"
    _nothing_charged_all_back(h)


def test_an_order_cancelled_between_the_check_and_the_capture_is_answered_as_cancelled() -> None:
    h = ready()
    h.world.on_call("payments.collect", h.world.support_cancels)  # the cancel voids the hold
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    assert "nothing was charged" in body["detail"]
    assert h.world.after_first("payments.collect")[0] == "orders.is_payable"
    assert "payments.refund" not in h.world.names()
    _nothing_charged_all_back(h)


def test_a_capture_failure_of_a_payable_order_keeps_its_own_answer() -> None:
    h = ready()
    refused = Conflict("no", code="payment_not_capturable")
    h.world.broken["payments.collect"] = refused
    h.world.broken["payments.capture"] = refused
    reply = h.checkout()
    assert (reply.response.status, reply.response.body["code"]) == (409, "payment_not_capturable")
    _nothing_charged_all_back(h)


# -- T2 --------------------------------------------------------------------------------------------


def test_t2_finding_a_cancel_under_way_refunds_and_answers_order_cancelled() -> None:
    h = ready()
    h.world.on_done("payments.collect", lambda: h.world.support_cancels(compensate=False))
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    assert "any payment taken was given back" in body["detail"]
    assert h.world.after_first("payments.collect") == [
        "hot.sync",
        "hot.rollback",  # T2 never committed
        "orders.is_payable",
        "payments.lookup",
        "payments.refund",
        "orders.cancel",
        "stock.release",
        "stock.restock",
    ]
    assert [c[1] for c in h.world.commits() if c[0] == "hot.commit"] == [T1_EVENTS]
    saga = h.world.only_saga()
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "refunded")
    payment = h.world.payment(saga.payment_id or "")
    assert (payment.status, payment.refunded_minor) == ("refunded", 2250)
    _nothing_charged_all_back(h, payment_status="refunded")


def test_t2_finding_the_order_cancelled_answers_order_cancelled_with_the_money_back() -> None:
    h = ready()
    h.world.on_done("payments.collect", h.world.support_cancels)  # the cancel refunds
    reply = h.checkout()
    assert (reply.response.status, reply.response.body["code"]) == (409, "order_cancelled")
    assert "payments.refund" not in h.world.after_first("payments.collect")
    assert h.world.only_saga().payment_status == "refunded"
    _nothing_charged_all_back(h, payment_status="refunded")


def test_t2_finding_the_reservation_swept_refunds_and_answers_reservation_released() -> None:
    h = ready()
    h.world.on_done("payments.collect", lambda: h.world.sweep(h.world.only_saga().checkout_id))
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "reservation_released",
        "reserve",
    )
    assert "payments.refund" in h.world.after_first("payments.collect")
    _nothing_charged_all_back(h, payment_status="refunded")


def test_t2_finding_the_payment_recorded_meanwhile_completes_step_by_step() -> None:
    h = ready()
    # The payment slice records what the processor did (a lookup) before T2 writes it.
    h.world.on_done("payments.collect", lambda: h.world.resolve_payment(_payment_id(h)))
    reply = h.checkout()
    assert reply.response.status == 201
    assert h.world.after_first("payments.collect") == [
        "hot.sync",
        "hot.rollback",
        "orders.is_payable",
        "stock.commit",
        "payments.capture",
        "orders.mark_paid",
        "carts.checked_out",
        "hot.sync",  # the cart is free again
    ]
    assert h.world.only_saga().stage is Stage.COMPLETED
    assert h.world.on_hand() == {A: 8, B: 9} and h.world.claim("crt_1") is None


def test_t2_after_recovery_took_over_and_finished_gives_recoverys_answer() -> None:
    h = ready()

    def recovery_takes_over() -> None:  # the capture's answer outlives the lease
        h.clock.advance(LEASE_S + 1)
        assert h.recover() == 1

    h.world.on_done("payments.collect", recovery_takes_over)
    reply = h.checkout()
    assert reply.response.status == 201 and not reply.replayed
    assert h.world.after_first("payments.collect")[-2:] == ["hot.sync", "hot.rollback"]
    # Sold and paid once, by recovery.
    assert [c[1] for c in h.world.commits() if c[0] == "hot.commit"] == [T1_EVENTS]
    assert h.world.on_hand() == {A: 8, B: 9}
    assert h.world.payment(_payment_id(h)).captured_minor == 2250


def test_t2_with_the_lease_lost_is_handed_to_recovery() -> None:
    h = ready()
    h.world.on_done("payments.collect", lambda: h.steal_lease(h.world.only_saga().checkout_id))
    with pytest.raises(IdempotencyKeyInUse):
        h.checkout()
    assert h.world.after_first("payments.collect") == ["hot.sync", "hot.rollback"]
    assert h.world.only_saga().stage is Stage.ORDERED
    h.clock.advance(LEASE_S + 1)
    assert h.recover() == 1
    again = h.checkout()
    assert again.replayed and again.response.status == 201
    assert h.world.payment(_payment_id(h)).captured_minor == 2250
