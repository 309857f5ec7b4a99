"""Recovery on in-memory fakes: every state a crashed hot path can leave is completed (money
held) or compensated (no money held) once its lease runs out, the key gets the final answer,
and a cart left claimed by a finished checkout is freed."""

from __future__ import annotations

import pytest

from tests.unit.checkout.fakes import (
    DECLINED_CARD,
    KEY_TTL_S,
    LEASE_S,
    SHOPPER,
    WAREHOUSE,
    Crash,
    Harness,
    ready,
    request,
)
from transactional.checkout.model import (
    CartInCheckout,
    IdempotencyKeyInUse,
    PaymentLookup,
    PaymentState,
    Recovery,
    Stage,
    recovery_after_lookup,
    recovery_for,
)
from transactional.checkout.saga import MAX_RECOVERY_ATTEMPTS
from transactional.shared.errors import NotFound

A = ("sku_a", WAREHOUSE)
B = ("sku_b", WAREHOUSE)
COMPLETES = [
    "payments.lookup",
    "payments.authorize",
    "orders.is_payable",
    "stock.commit",
    "payments.capture",
    "orders.mark_paid",
    "carts.checked_out",
    "hot.sync",  # the cart is free again
]


@pytest.mark.parametrize(
    ("stage", "action"),
    [
        (Stage.STARTED, Recovery.COMPENSATE),
        (Stage.VALIDATED, Recovery.COMPENSATE),
        (Stage.RESERVED, Recovery.COMPENSATE),
        (Stage.ORDERED, Recovery.LOOKUP_PAYMENT),
        (Stage.AUTHORIZED, Recovery.CAPTURE),
        (Stage.CAPTURED, Recovery.FINISH),
    ],
)
def test_recovery_rolls_back_before_money_is_held_and_forward_after(
    stage: Stage, action: Recovery
) -> None:
    assert recovery_for(stage) is action


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (PaymentState.NONE, Recovery.COMPENSATE),
        (PaymentState.PENDING, Recovery.COMPENSATE),  # and its hold is voided
        (PaymentState.DECLINED, Recovery.COMPENSATE),
        (PaymentState.VOIDED, Recovery.COMPENSATE),
        (PaymentState.REFUNDED, Recovery.COMPENSATE),
        (PaymentState.AUTHORIZED, Recovery.CAPTURE),
        (PaymentState.CAPTURED, Recovery.FINISH),
    ],
)
def test_an_unknown_authorization_is_settled_by_what_the_processor_says(
    state: PaymentState, action: Recovery
) -> None:
    assert recovery_after_lookup(PaymentLookup(state)) is action


def test_finished_sagas_need_no_recovery() -> None:
    for stage in (Stage.COMPLETED, Stage.FAILED):
        with pytest.raises(ValueError):
            recovery_for(stage)


def crashed(h: Harness, call: str, *, after: bool, number: str | None = None) -> str:
    """Run a checkout whose process dies at ``call`` (before it, or right after it took
    effect); the id of its saga."""
    if after:
        h.world.fail_after(call, Crash(call))
    else:
        h.world.fail(call, Crash(call))
    with pytest.raises(Crash):
        h.checkout(request(number=number) if number else None)
    return h.world.only_saga().checkout_id


def final(h: Harness, checkout_id: str, number: str | None = None) -> tuple[int, str]:
    """The answer a retry with the key gets."""
    reply = h.checkout(request(number=number) if number else None)
    assert reply.replayed and reply.checkout_id == checkout_id
    return reply.response.status, reply.response.body.get("code", reply.response.body["status"])


def test_a_crash_before_t1_leaves_nothing_and_a_retry_runs_afresh() -> None:
    h = ready()
    h.world.fail("hot.commit", Crash("in T1"))
    with pytest.raises(Crash):
        h.checkout()
    assert h.world.sagas() == [] and h.world.orders() == [] and h.world.reservations() == []
    assert h.world.tables["keys"] == {} and h.world.tables["claims"] == {}
    h.clock.advance(LEASE_S + 1)
    assert h.recover() == 0
    reply = h.checkout()
    assert reply.response.status == 201 and not reply.replayed


def test_a_crash_after_t1_is_rolled_back_as_interrupted() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.hold", after=False)  # nothing at the processor
    assert h.world.saga(checkout_id).stage is Stage.ORDERED
    with pytest.raises(IdempotencyKeyInUse):  # a retry while it is unsettled
        h.checkout()
    assert h.recover_after_lease() == [
        "payments.lookup",
        "orders.is_payable",
        "payments.void",
        "orders.cancel",
        "stock.release",
    ]
    saga = h.world.saga(checkout_id)
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "voided")
    assert saga.failure is not None and saga.failure.step == "payment"
    assert final(h, checkout_id) == (409, "checkout_interrupted")
    (order,) = h.world.orders()
    assert order.status == "cancelled"
    assert h.world.available() == {A: (10, 10), B: (10, 10)}
    assert h.world.claim("crt_1") is None
    assert h.world.event_types()[-1] == "checkout.failed"


def test_a_crash_after_the_authorization_captures_and_finishes() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.hold", after=True)
    assert h.recover_after_lease() == COMPLETES
    assert final(h, checkout_id) == (201, "completed")
    payment = h.world.payment(h.world.saga(checkout_id).payment_id or "")
    assert (payment.status, payment.captured_minor) == ("captured", 2250)
    assert h.world.on_hand() == {A: 8, B: 9} and h.world.claim("crt_1") is None
    assert h.world.carts["crt_1"].lines == {}


def test_a_crash_after_the_capture_finishes_without_charging_twice() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.collect", after=True)
    assert h.recover_after_lease() == COMPLETES
    assert final(h, checkout_id) == (201, "completed")
    payment = h.world.payment(h.world.saga(checkout_id).payment_id or "")
    assert (payment.status, payment.captured_minor) == ("captured", 2250)
    (order,) = h.world.orders()
    assert (order.status, order.paid_minor) == ("paid", 2250)
    assert h.world.event_types()[-1] == "checkout.completed"


def test_a_crash_after_a_decline_not_yet_recorded_answers_402() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.hold", after=True, number=DECLINED_CARD)
    assert h.recover_after_lease() == ["payments.lookup", "orders.cancel", "stock.release"]
    status, code = final(h, checkout_id, number=DECLINED_CARD)
    assert (status, code) == (402, "card_declined")
    saga = h.world.saga(checkout_id)
    assert saga.payment_status == "declined"
    assert h.world.available() == {A: (10, 10), B: (10, 10)}


def test_a_crash_after_t2_leaves_the_cart_to_the_claim_sweep() -> None:
    h = ready()
    checkout_id = crashed(h, "carts.checked_out", after=False)
    # Completed and answered: the key replays 201 at once.
    assert final(h, checkout_id) == (201, "completed")
    # The cart still has its lines, so it stays claimed: no second purchase of them.
    assert h.world.claim("crt_1") == checkout_id
    with pytest.raises(CartInCheckout):
        h.checkout(key="key-2")
    mark = len(h.world.calls)
    assert h.recover() == 0
    assert h.world.claim("crt_1") == checkout_id  # claimed less than a lease ago
    h.clock.advance(LEASE_S + 1)
    assert h.recover() == 0  # no saga to finish, only the cart
    assert h.world.since(mark, hide=()) == ["carts.checked_out", "hot.sync"]
    assert h.world.calls[-1] == ("hot.sync", ("claims.release",))
    assert h.world.claim("crt_1") is None and h.world.carts["crt_1"].lines == {}
    again = h.checkout(key="key-2")
    assert (again.response.status, again.response.body["reason"]) == (422, "already_checked_out")


def test_an_unexpected_error_hands_the_saga_to_recovery_at_once() -> None:
    h = ready()
    h.world.fail("hot.commit", RuntimeError("database went away"), nth=2)  # T2
    with pytest.raises(RuntimeError):
        h.checkout()
    h.clock.advance(0.001)  # no lease wait: the failed driver gave it up
    mark = len(h.world.calls)
    assert h.recover() == 1
    # Captured already: recovery rolls forward (each step is idempotent).
    assert h.world.since(mark) == COMPLETES
    assert h.recover() == 0
    assert final(h, h.world.only_saga().checkout_id) == (201, "completed")


def test_a_settled_saga_is_not_recovered_twice() -> None:
    h = ready()
    crashed(h, "payments.collect", after=True)
    h.recover_after_lease()
    h.clock.advance(10 * LEASE_S)
    mark = len(h.world.calls)
    assert h.recover() == 0
    assert h.world.since(mark) == []


def test_an_order_cancel_under_way_before_recovery_finishes_it_is_refunded() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.collect", after=True)
    h.world.support_cancels(compensate=False)
    assert h.recover_after_lease() == [
        "payments.lookup",
        "payments.authorize",
        "orders.is_payable",
        "payments.lookup",
        "payments.refund",
        "orders.cancel",
        "stock.release",
        "stock.restock",
    ]
    assert final(h, checkout_id) == (409, "order_cancelled")
    saga = h.world.saga(checkout_id)
    assert saga.payment_status == "refunded"
    assert h.world.payment(saga.payment_id or "").status == "refunded"
    assert h.world.available() == {A: (10, 10), B: (10, 10)}


def test_a_saga_that_keeps_failing_is_given_up_compensated_and_answered() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.collect", after=True)
    h.world.broken["orders.mark_paid"] = RuntimeError("orders database down")
    for attempt in range(1, MAX_RECOVERY_ATTEMPTS + 1):
        h.clock.advance(LEASE_S + 1)
        assert h.recover() == 0, attempt
        assert h.world.saga(checkout_id).attempts == attempt
    del h.world.broken["orders.mark_paid"]
    mark = len(h.world.calls)
    h.clock.advance(LEASE_S + 1)
    assert h.recover() == 1
    # Given up: the money and the stock go back, whatever the failing step would do now.
    assert h.world.since(mark) == [
        "payments.lookup",
        "payments.refund",
        "orders.cancel",
        "stock.release",
        "stock.restock",
    ]
    saga = h.world.saga(checkout_id)
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "refunded")
    assert saga.failure is not None and saga.failure.extra == {"cause": "too_many_attempts"}
    assert final(h, checkout_id) == (409, "checkout_not_completed")
    assert h.world.available() == {A: (10, 10), B: (10, 10)}
    assert h.world.claim("crt_1") is None
    h.clock.advance(10 * LEASE_S)
    assert h.recover() == 0
    h.clock.advance(KEY_TTL_S)
    h.recover()
    assert h.world.tables["keys"] == {}  # answered, so purged once expired


def test_a_refusal_during_recovery_is_not_retried() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.hold", after=False)
    h.world.broken["orders.cancel"] = NotFound("no payment pay_x", code="payment_not_found")
    h.clock.advance(LEASE_S + 1)
    assert h.recover() == 1  # settled in this pass, not retried for ever
    saga = h.world.saga(checkout_id)
    assert saga.stage is Stage.FAILED and saga.failure is not None
    assert saga.failure.extra == {"cause": "payment_not_found", "uncompensated": ["order"]}
    assert h.world.available() == {A: (10, 10), B: (10, 10)}  # no money taken: units back
    assert final(h, checkout_id) == (409, "checkout_not_completed")
    h.clock.advance(10 * LEASE_S)
    assert h.recover() == 0


def test_given_up_with_the_money_still_out_the_stock_waits_for_it() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.collect", after=True)
    h.world.broken["orders.mark_paid"] = RuntimeError("orders database down")
    h.world.broken["orders.cancel"] = RuntimeError("orders database down")
    h.world.broken["payments.refund"] = RuntimeError("processor down")
    for _ in range(MAX_RECOVERY_ATTEMPTS + 1):
        h.clock.advance(LEASE_S + 1)
        h.recover()
    saga = h.world.saga(checkout_id)
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "captured")
    assert saga.failure is not None and saga.failure.extra == {
        "cause": "too_many_attempts",
        "uncompensated": ["payment", "order", "reserve"],
    }
    # The money is still out: no unit goes back on sale before it comes back.
    assert "stock.release" not in h.world.names() and "stock.restock" not in h.world.names()
    assert h.world.on_hand() == {A: 8, B: 9}
    reply = h.checkout()
    assert reply.replayed and reply.checkout_id == checkout_id
    assert (reply.response.status, reply.response.body["code"]) == (409, "checkout_not_completed")
    assert "will be given back" in reply.response.body["detail"]


def test_given_up_with_the_money_back_the_stock_goes_back_too() -> None:
    h = ready()
    checkout_id = crashed(h, "payments.collect", after=True)
    h.world.broken["orders.mark_paid"] = RuntimeError("orders database down")
    h.world.broken["orders.cancel"] = RuntimeError("orders database down")
    for _ in range(MAX_RECOVERY_ATTEMPTS + 1):
        h.clock.advance(LEASE_S + 1)
        h.recover()
    saga = h.world.saga(checkout_id)
    assert (saga.stage, saga.payment_status) == (Stage.FAILED, "refunded")
    assert saga.failure is not None and saga.failure.extra["uncompensated"] == ["order"]
    assert h.world.names(hide=("saga.commit",))[-3:] == [
        "orders.cancel",
        "stock.release",
        "stock.restock",
    ]
    assert h.world.on_hand() == {A: 10, B: 10}
    assert final(h, checkout_id) == (409, "checkout_not_completed")
    assert h.world.key(SHOPPER.customer_id, "key-1") is not None
