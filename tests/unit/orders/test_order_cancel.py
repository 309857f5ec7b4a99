"""Cancels and returns on fakes: intent first, money before stock, no transaction held, retries."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.orders.fakes import (
    FakeInventory,
    FakeOrdersUnitOfWork,
    FakePayments,
    FakePaymentState,
)
from tests.unit.orders.test_order_service import World
from transactional.orders.model import CheckoutInProgress, IllegalTransition, PendingChange
from transactional.payments.model import PaymentNotFound
from transactional.shared.errors import Conflict, InvalidRequest, StoreUnavailable


class DepthUnitOfWork(FakeOrdersUnitOfWork):
    """Counts how many ``with`` blocks are open, like connections checked out of a pool."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0

    def __enter__(self) -> Any:
        self.depth += 1
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        super().__exit__(*exc)


class ProbedInventory(FakeInventory):
    """Notes how many order transactions are open at each call."""

    def __init__(self, uow: DepthUnitOfWork, log: list[str]) -> None:
        super().__init__(log)
        self.uow = uow
        self.depths: list[int] = []

    def release(self, checkout_id: str, reason: str) -> int:
        self.depths.append(self.uow.depth)
        return super().release(checkout_id, reason)

    def restock(self, order_id: str, reason: str) -> int:
        self.depths.append(self.uow.depth)
        return super().restock(order_id, reason)


class ProbedPayments(FakePayments):
    """Notes how many order transactions are open at each call."""

    def __init__(self, uow: DepthUnitOfWork, log: list[str]) -> None:
        super().__init__(log)
        self.uow = uow
        self.depths: list[int] = []

    def void(self, payment_id: str) -> FakePaymentState:
        self.depths.append(self.uow.depth)
        return super().void(payment_id)

    def refund(
        self, payment_id: str, amount_minor: int | None = None, *, reason: str = "cancellation"
    ) -> FakePaymentState:
        self.depths.append(self.uow.depth)
        return super().refund(payment_id, amount_minor, reason=reason)


class ProbedWorld(World):
    """The order service's world with probes on the transaction and both ports."""

    uow: DepthUnitOfWork
    inventory: ProbedInventory
    payments: ProbedPayments

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.uow = DepthUnitOfWork()
        self.inventory = ProbedInventory(self.uow, self.log)
        self.payments = ProbedPayments(self.uow, self.log)
        self.service = type(self.service)(
            lambda: self.uow,
            inventory=self.inventory,
            payments=self.payments,
            regions=["eu", "us", "in"],
            clock=self.clock,
        )


@pytest.fixture
def world() -> ProbedWorld:
    return ProbedWorld()


def test_money_goes_back_before_stock_and_no_transaction_is_held(world: ProbedWorld) -> None:
    paid = world.paid()
    world.service.cancel(paid.order_id, "customer:cus_1", "customer_request", "cus_1")
    placed = world.place(payment_id="pay_auth")
    world.service.cancel(placed.order_id, "admin:adm_1", "fraud_suspected")
    assert world.log == ["refund", "restock", "void", "release", "restock"]
    # The order's row is not locked (no connection held) while other services work.
    assert world.inventory.depths == [0, 0, 0] and world.payments.depths == [0, 0]
    assert world.uow.depth == 0


def test_a_failed_restock_after_the_refund_is_finished_by_a_retry(world: ProbedWorld) -> None:
    order = world.paid()
    world.inventory.fail = StoreUnavailable("redis is down")
    with pytest.raises(StoreUnavailable):
        world.service.cancel(order.order_id, "support:sup_1", "customer_request")
    pending = world.service.get(order.order_id)
    assert (pending.status, pending.pending and pending.pending.to) == ("paid", "cancelled")
    assert world.types() == ["order.placed", "order.paid"]
    world.inventory.fail = None
    done = world.service.cancel(order.order_id, "support:sup_1", "customer_request")
    assert (done.status, done.refunded_minor, done.pending) == ("cancelled", 3498, None)
    # The refund is asked again (idempotent at the payment service), the stock once more.
    assert world.log == ["refund", "restock", "refund", "restock"]
    assert world.types() == ["order.placed", "order.paid", "order.cancelled"]
    event = world.payloads("order.cancelled")[0]
    assert event["refund_amount"] == {"amount_minor": 3498, "currency": "EUR"}


def test_a_retry_finishes_the_first_intent_whoever_retries(world: ProbedWorld) -> None:
    order = world.paid()
    world.payments.fail = StoreUnavailable("gateway timeout")
    with pytest.raises(StoreUnavailable):
        world.service.cancel(order.order_id, "admin:adm_1", "fraud_suspected", note="card test")
    world.payments.fail = None
    world.service.cancel(order.order_id, "customer:cus_1", "customer_request", "cus_1")
    event = world.payloads("order.cancelled")[0]
    assert (event["reason"], event["cancelled_by"], event["note"]) == (
        "fraud_suspected",
        "support",
        "card test",
    )
    last = world.service.transitions(order.order_id)[-1]
    assert (last.cause, last.actor) == ("fraud_suspected: card test", "admin:adm_1")


def test_a_pending_cancel_blocks_packing_and_late_payment(world: ProbedWorld) -> None:
    paid = world.paid()
    placed = world.place()
    world.payments.fail = StoreUnavailable("gateway timeout")
    with pytest.raises(StoreUnavailable):
        world.service.cancel(paid.order_id, "admin", "fraud_suspected")
    world.inventory.fail = StoreUnavailable("redis is down")
    with pytest.raises(StoreUnavailable):
        world.service.cancel(placed.order_id, "system:checkout", "payment_failed")
    for to in ("packed", "shipped"):
        with pytest.raises(IllegalTransition) as blocked:
            world.service.transition(paid.order_id, to, "at the dock", "admin")
        assert blocked.value.extra["pending"] == "cancelled"
    with pytest.raises(IllegalTransition):
        world.service.mark_paid(placed.order_id, "pay_late", 3498, "card")
    assert world.service.get(paid.order_id).status == "paid"
    assert world.service.get(placed.order_id).status == "placed"
    assert "order.packed" not in world.types() and world.types().count("order.paid") == 1


def test_a_customer_cannot_cancel_an_order_its_checkout_still_owns(world: ProbedWorld) -> None:
    placed = world.place()
    with pytest.raises(CheckoutInProgress) as refused:
        world.service.cancel(placed.order_id, "customer:cus_1", "customer_request", "cus_1")
    assert refused.value.code == "checkout_in_progress"
    assert isinstance(refused.value, Conflict)  # 409
    assert world.log == [] and world.service.get(placed.order_id).pending is None
    # The saga's own compensation (system) and support may still cancel it.
    assert world.service.cancel(placed.order_id, "system", "payment_failed").status == "cancelled"
    other = world.place()
    moved = world.service.transition(other.order_id, "cancelled", "fraud_suspected", "admin:a")
    assert moved.status == "cancelled"


def test_finish_pending_cancellations_completes_old_intents(world: ProbedWorld) -> None:
    paid = world.paid()
    placed = world.place()
    world.inventory.fail = StoreUnavailable("redis is down")
    for order, actor in ((paid, "admin"), (placed, "system")):
        with pytest.raises(StoreUnavailable):
            world.service.cancel(order.order_id, actor, "fraud_suspected")
    world.inventory.fail = None
    world.clock.advance(seconds=30)
    assert world.service.finish_pending_cancellations(older_than_s=60) == 0  # live ones wait
    world.clock.advance(minutes=2)
    world.payments.fail = StoreUnavailable("gateway timeout")  # the paid one fails again
    assert world.service.finish_pending_cancellations(older_than_s=60) == 1
    assert world.service.get(placed.order_id).status == "cancelled"
    assert world.service.get(paid.order_id).status == "paid"
    world.payments.fail = None
    # The failed one backs off: not retried before its next try.
    assert world.service.finish_pending_cancellations(older_than_s=60) == 0
    world.clock.advance(minutes=1)
    assert world.service.finish_pending_cancellations(older_than_s=60) == 1
    assert world.service.get(paid.order_id).status == "cancelled"
    assert world.service.finish_pending_cancellations(older_than_s=0) == 0
    assert world.types().count("order.cancelled") == 2


def test_a_failed_return_refund_stays_pending_until_retried(world: ProbedWorld) -> None:
    order = world.paid()
    for to in ("packed", "shipped", "delivered"):
        world.service.transition(order.order_id, to, to, "admin")
    world.payments.fail = StoreUnavailable("gateway timeout")
    with pytest.raises(StoreUnavailable):
        world.service.transition(order.order_id, "returned", "parcel back", "admin", note="torn")
    pending = world.service.get(order.order_id)
    assert pending.status == "delivered" and pending.pending is not None
    assert "restock" not in world.log
    world.payments.fail = None
    done = world.service.transition(order.order_id, "returned", "parcel back", "admin")
    assert (done.status, done.refunded_minor) == ("returned", 3498)
    assert world.log[-2:] == ["refund", "restock"]
    assert world.payloads("order.returned")[0]["note"] == "torn"  # the first intent's note


def test_an_authorisation_captured_behind_the_orders_back_is_refunded(world: ProbedWorld) -> None:
    order = world.place(payment_id="pay_auth")
    world.payments.fail_void = Conflict("refund it instead", code="payment_not_voidable")
    world.payments.captured["pay_auth"] = 3498
    cancelled = world.service.cancel(order.order_id, "system", "payment_failed")
    assert (cancelled.status, cancelled.refunded_minor) == ("cancelled", 3498)
    assert world.log == ["void", "refund", "release", "restock"]
    # Any other refusal is not papered over.
    other = world.place(payment_id="pay_other")
    world.payments.fail_void = Conflict("no", code="something_else")
    with pytest.raises(Conflict):
        world.service.cancel(other.order_id, "system", "payment_failed")


def test_begin_and_settle_on_the_model(world: ProbedWorld) -> None:
    order = world.paid()
    at = world.clock()
    with pytest.raises(InvalidRequest):
        order.begin("packed", "x", "admin", None, at)
    with pytest.raises(IllegalTransition):
        order.settle(at)
    assert order.begin("cancelled", "fraud_suspected", "admin", "note", at)
    assert not order.begin("cancelled", "customer_request", "customer", None, at)
    assert order.pending == PendingChange("cancelled", "fraud_suspected", "admin", "note", at)
    settled = order.settle(at)
    assert settled.recorded_cause == "fraud_suspected: note"
    assert order.status == "cancelled" and order.pending is None
    assert PendingChange("returned", "parcel back", "admin", "torn", at).recorded_cause == (
        "parcel back"
    )


def test_an_authorisation_that_never_happened_does_not_block_the_cancel(
    world: ProbedWorld,
) -> None:
    # The checkout names its payment when placing the order; a crash before authorising
    # leaves no payment to void, and the cancel must still finish.
    placed = world.place(payment_id="pay_never_made")
    world.payments.fail_void = PaymentNotFound("no payment pay_never_made")
    done = world.service.cancel(placed.order_id, "system", "payment_failed")
    assert (done.status, done.pending) == ("cancelled", None)
    assert world.log == ["void", "release", "restock"]
