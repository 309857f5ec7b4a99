"""Recovery on in-memory fakes: a saga cut short at each durable stage is completed (money held)
or compensated (no money held), once its lease runs out, and the key gets the final answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.checkout.fakes import (
    CARD,
    DECLINED_CARD,
    LEASE_S,
    SHOPPER,
    Crash,
    Harness,
    harness,
)
from tests.unit.checkout.test_saga import request
from transactional.checkout import service as service_module
from transactional.checkout.model import (
    IdempotencyKeyInUse,
    PaymentLookup,
    PaymentState,
    Recovery,
    Stage,
    recovery_after_lookup,
    recovery_for,
)
from transactional.checkout.service import MAX_RECOVERY_ATTEMPTS
from transactional.shared.errors import NotFound


@pytest.fixture
def crash_at(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Failpoints to die at (as ``SOUK_FAILPOINTS`` does in a real process)."""
    armed: set[str] = set()

    def failpoint(name: str) -> None:
        if name in armed:
            armed.discard(name)
            raise Crash(name)

    monkeypatch.setattr(service_module, "failpoint", failpoint)
    yield armed


def crashed(h: Harness, number: str = CARD.number) -> str:
    """Run a checkout that dies; the id of its saga."""
    h.world.add_cart()
    with pytest.raises(Crash):
        h.service.checkout(SHOPPER, request(number=number), "key-1")
    return h.only_saga().checkout_id


def recover_after_lease(h: Harness) -> list[str]:
    """Recover once the lease ran out; the calls recovery made."""
    before = len(h.world.calls)
    assert h.service.recover() == 0, "recovered while the lease was still held"
    h.clock.advance(LEASE_S + 1)
    assert h.service.recover() == 1
    return h.world.names()[before:]


def final(h: Harness, checkout_id: str) -> tuple[int, str]:
    reply = h.service.checkout(SHOPPER, request(), "key-1")
    assert reply.replayed and reply.checkout_id == checkout_id
    return reply.response.status, reply.response.body.get("code", reply.response.body["status"])


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


def test_crash_after_reserve_releases_the_stock(crash_at: set[str]) -> None:
    h = harness()
    crash_at.add("checkout.after_reserve")
    checkout_id = crashed(h)
    assert h.saga(checkout_id).stage is Stage.RESERVED
    with pytest.raises(IdempotencyKeyInUse):  # a retry while it is unsettled
        h.service.checkout(SHOPPER, request(), "key-1")
    assert recover_after_lease(h) == ["order_of_checkout", "release"]
    assert h.world.stock == {"sku_a": 10, "sku_b": 10}
    saga = h.saga(checkout_id)
    assert (saga.stage, saga.failure and saga.failure.step) == (Stage.FAILED, "order")
    assert final(h, checkout_id) == (409, "checkout_interrupted")
    assert h.uow.event_types() == ["checkout.started", "checkout.failed"]


def test_crash_after_order_looks_up_the_payment_then_cancels_and_releases(
    crash_at: set[str],
) -> None:
    h = harness()
    crash_at.add("checkout.after_order")
    checkout_id = crashed(h)
    assert recover_after_lease(h) == ["lookup", "cancel", "release"]
    saga = h.saga(checkout_id)
    assert h.world.orders[saga.order_id or ""]["status"] == "cancelled"
    assert final(h, checkout_id) == (409, "checkout_interrupted")


def test_crash_after_authorize_captures_and_finishes(crash_at: set[str]) -> None:
    h = harness()
    crash_at.add("checkout.after_authorize")
    checkout_id = crashed(h)
    assert recover_after_lease(h) == [
        "commit",
        "is_payable",
        "capture",
        "mark_paid",
        "checked_out",
    ]
    assert final(h, checkout_id) == (201, "completed")
    assert h.world.payments[h.saga(checkout_id).payment_id or ""] == "captured"


def test_crash_after_capture_finishes(crash_at: set[str]) -> None:
    h = harness()
    crash_at.add("checkout.after_capture")
    checkout_id = crashed(h)
    assert recover_after_lease(h) == ["mark_paid", "checked_out"]  # sold before the capture
    assert final(h, checkout_id) == (201, "completed")
    assert h.uow.event_types() == ["checkout.started", "checkout.completed"]


def test_crash_inside_reserve_releases_what_may_be_held() -> None:
    h = harness()
    h.world.crash_after.add("reserve")
    checkout_id = crashed(h)
    assert h.saga(checkout_id).stage is Stage.VALIDATED
    assert h.world.stock["sku_a"] == 8
    assert recover_after_lease(h) == ["release"]
    assert h.world.stock == {"sku_a": 10, "sku_b": 10}
    assert h.saga(checkout_id).failure.step == "reserve"  # type: ignore[union-attr]


def test_crash_inside_place_finds_and_cancels_the_order() -> None:
    h = harness()
    h.world.crash_after.add("place")
    checkout_id = crashed(h)
    assert h.saga(checkout_id).stage is Stage.RESERVED
    assert recover_after_lease(h) == ["order_of_checkout", "cancel", "release"]
    assert h.world.orders[f"ord_{checkout_id}"]["status"] == "cancelled"


def test_crash_inside_authorize_after_the_hold_completes_the_checkout() -> None:
    h = harness()
    h.world.crash_after.add("authorize")
    checkout_id = crashed(h)
    assert h.saga(checkout_id).stage is Stage.ORDERED
    assert recover_after_lease(h) == [
        "lookup",
        "authorize",
        "commit",
        "is_payable",
        "capture",
        "mark_paid",
        "checked_out",
    ]
    assert final(h, checkout_id) == (201, "completed")


def test_crash_inside_a_declined_authorize_answers_402() -> None:
    h = harness()
    h.world.crash_after.add("authorize")
    checkout_id = crashed(h, number=DECLINED_CARD)
    assert recover_after_lease(h) == ["lookup", "cancel", "release"]
    reply = h.service.checkout(SHOPPER, request(number=DECLINED_CARD), "key-1")
    assert reply.replayed and reply.response.status == 402
    assert reply.response.body["decline_code"] == "card_declined"
    assert h.saga(checkout_id).payment_status == "declined"


def test_an_unexpected_error_hands_the_saga_to_recovery_at_once() -> None:
    h = harness()
    h.world.add_cart()
    h.world.fail["mark_paid"] = RuntimeError("orders database down")
    with pytest.raises(RuntimeError):
        h.service.checkout(SHOPPER, request(), "key-1")
    h.clock.advance(0.001)  # no lease wait: the failed driver gave it up
    before = len(h.world.calls)
    assert h.service.recover() == 1
    # Captured already: recovery rolls forward (each step is idempotent).
    assert h.world.names()[before:] == ["mark_paid", "checked_out"]
    assert h.service.recover() == 0


def test_a_settled_saga_is_not_recovered_twice(crash_at: set[str]) -> None:
    h = harness()
    crash_at.add("checkout.after_capture")
    crashed(h)
    recover_after_lease(h)
    h.clock.advance(10 * LEASE_S)
    assert h.service.recover() == 0


def test_a_pending_payment_is_voided_not_taken_for_none(crash_at: set[str]) -> None:
    h = harness()
    crash_at.add("checkout.after_order")
    checkout_id = crashed(h)
    payment_id = h.saga(checkout_id).payment_id or ""
    h.world.payments[payment_id] = "pending"  # asked, but the processor has no answer yet
    assert recover_after_lease(h) == ["lookup", "void", "cancel", "release"]
    assert h.world.payments[payment_id] == "voided"
    assert h.saga(checkout_id).payment_status == "voided"
    assert final(h, checkout_id) == (409, "checkout_interrupted")


def test_an_order_cancelled_before_recovery_marks_it_paid_is_refunded(
    crash_at: set[str],
) -> None:
    h = harness()
    crash_at.add("checkout.after_capture")
    checkout_id = crashed(h)
    h.world.orders[h.saga(checkout_id).order_id or ""]["status"] = "cancelled"
    assert recover_after_lease(h) == ["mark_paid", "refund", "cancel", "release", "restock"]
    assert final(h, checkout_id) == (409, "order_cancelled")
    assert h.world.payments[h.saga(checkout_id).payment_id or ""] == "refunded"


def test_a_saga_that_keeps_failing_is_given_up_compensated_and_answered() -> None:
    h = harness()
    h.world.add_cart()
    h.world.broken["mark_paid"] = RuntimeError("orders database down")
    with pytest.raises(RuntimeError):
        h.service.checkout(SHOPPER, request(), "key-1")
    checkout_id = h.only_saga().checkout_id
    for attempt in range(1, MAX_RECOVERY_ATTEMPTS + 1):
        h.clock.advance(LEASE_S + 1)
        assert h.service.recover() == 0, attempt
        assert h.saga(checkout_id).attempts == attempt
    del h.world.broken["mark_paid"]
    before = len(h.world.calls)
    h.clock.advance(LEASE_S + 1)
    assert h.service.recover() == 1
    # Given up: the money and the stock go back, whatever the failing step would do now.
    assert h.world.names()[before:] == ["lookup", "refund", "cancel", "release", "restock"]
    saga = h.saga(checkout_id)
    assert saga.stage is Stage.FAILED and saga.payment_status == "refunded"
    assert saga.failure is not None and saga.failure.extra == {"cause": "too_many_attempts"}
    assert final(h, checkout_id) == (409, "checkout_not_completed")
    h.clock.advance(10 * LEASE_S)
    assert h.service.recover() == 0
    h.clock.advance(24 * 3600)
    h.service.recover()
    assert h.uow.idempotency.rows == {}  # answered, so purged once expired


def test_a_refusal_during_recovery_is_not_retried(crash_at: set[str]) -> None:
    h = harness()
    crash_at.add("checkout.after_order")
    checkout_id = crashed(h)
    h.world.broken["cancel"] = NotFound("no payment pay_x", code="payment_not_found")
    h.clock.advance(LEASE_S + 1)
    assert h.service.recover() == 1  # settled in this pass, not retried for ever
    saga = h.saga(checkout_id)
    assert saga.stage is Stage.FAILED
    assert saga.failure is not None
    assert saga.failure.extra == {"cause": "payment_not_found", "uncompensated": ["order"]}
    assert h.world.stock == {"sku_a": 10, "sku_b": 10}  # nothing sold, no money: units back
    status, code = final(h, checkout_id)
    assert (status, code) == (409, "checkout_not_completed")
    h.clock.advance(10 * LEASE_S)
    assert h.service.recover() == 0


def test_given_up_with_the_money_still_out_the_stock_waits_for_it(
    crash_at: set[str],
) -> None:
    h = harness()
    crash_at.add("checkout.after_capture")
    checkout_id = crashed(h)
    h.world.broken["mark_paid"] = RuntimeError("orders database down")
    h.world.broken["cancel"] = RuntimeError("orders database down")
    h.world.broken["refund"] = RuntimeError("gateway down")
    for _ in range(MAX_RECOVERY_ATTEMPTS + 1):
        h.clock.advance(LEASE_S + 1)
        h.service.recover()
    saga = h.saga(checkout_id)
    assert saga.stage is Stage.FAILED and saga.payment_status == "captured"
    assert saga.failure is not None
    assert saga.failure.extra == {
        "cause": "too_many_attempts",
        "uncompensated": ["payment", "order", "reserve"],
    }
    # The money is still out: no unit goes back on sale before it comes back.
    assert "release" not in h.world.names() and "restock" not in h.world.names()
    reply = h.service.checkout(SHOPPER, request(), "key-1")
    assert reply.response.status == 409
    assert "will be given back" in reply.response.body["detail"]


def test_given_up_with_the_money_back_the_stock_goes_back_too(crash_at: set[str]) -> None:
    h = harness()
    crash_at.add("checkout.after_capture")
    checkout_id = crashed(h)
    h.world.broken["mark_paid"] = RuntimeError("orders database down")
    h.world.broken["cancel"] = RuntimeError("orders database down")
    for _ in range(MAX_RECOVERY_ATTEMPTS + 1):
        h.clock.advance(LEASE_S + 1)
        h.service.recover()
    saga = h.saga(checkout_id)
    assert saga.stage is Stage.FAILED and saga.payment_status == "refunded"
    assert saga.failure is not None and saga.failure.extra["uncompensated"] == ["order"]
    assert h.world.names()[-3:] == ["cancel", "release", "restock"]
    assert final(h, checkout_id) == (409, "checkout_not_completed")
