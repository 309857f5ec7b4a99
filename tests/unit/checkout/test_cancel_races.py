"""An order cancelled (by support) while the saga pays for it is answered as cancelled."""

from __future__ import annotations

from tests.unit.checkout.fakes import SHOPPER, Harness
from tests.unit.checkout.test_saga import after, ready, request
from transactional.checkout.model import Stage
from transactional.shared.errors import Conflict


def support_cancels(h: Harness, *, payment: str) -> None:
    """Cancel the saga's order the way OrderService does: the payment goes with it."""
    (order,) = h.world.orders.values()
    order["status"] = "cancelled"
    h.world.payments[order["payment_id"]] = payment


def test_an_order_cancelled_while_authorizing_is_answered_as_cancelled() -> None:
    h = ready()
    h.world.hooks["authorize"] = lambda: support_cancels(h, payment="voided")
    # The payment slice refuses to report success on a payment voided meanwhile.
    h.world.fail["authorize"] = Conflict("voided meanwhile", code="payment_voided")
    reply = h.service.checkout(SHOPPER, request(), "k")
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    assert "nothing was charged" in body["detail"]
    assert "commit" not in h.world.names() and "capture" not in h.world.names()
    assert after(h, "authorize") == ["is_payable", "cancel", "release"]
    saga = h.saga(reply.checkout_id)
    assert saga.stage is Stage.FAILED and saga.payment_status == "voided"
    assert saga.failure is not None and saga.failure.code == "order_cancelled"


def test_an_order_cancelled_between_the_check_and_the_capture_is_answered_as_cancelled() -> None:
    h = ready()
    h.world.hooks["capture"] = lambda: support_cancels(h, payment="voided")
    h.world.fail["capture"] = Conflict("it is voided", code="payment_not_capturable")
    reply = h.service.checkout(SHOPPER, request(), "k")
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    assert after(h, "capture")[0] == "is_payable"
    assert "refund" not in h.world.names()


def test_a_capture_failure_of_a_payable_order_keeps_its_own_answer() -> None:
    h = ready()
    h.world.fail["capture"] = Conflict("no", code="payment_not_capturable")
    reply = h.service.checkout(SHOPPER, request(), "k")
    assert (reply.response.status, reply.response.body["code"]) == (409, "payment_not_capturable")
