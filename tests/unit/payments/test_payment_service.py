"""PaymentService on fakes: authorise/capture/void/refund, their events, idempotency, crashes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.payments.fakes import (
    FakeClock,
    FakePaymentsUnitOfWork,
    MemorySandboxLedger,
    card,
)
from transactional.payments.model import (
    GatewayAuthorization,
    GatewayTimeout,
    GatewayTransaction,
    IllegalPaymentTransition,
    PaymentNotFound,
)
from transactional.payments.sandbox import SandboxCardGateway
from transactional.payments.service import PaymentService
from transactional.shared.errors import Conflict, InvalidRequest, PaymentDeclined


class CrashingGateway(SandboxCardGateway):
    """The sandbox, but the next call named in ``crash_after`` acts and then 'crashes'."""

    crash_after: set[str]

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        result = super().capture(reference, amount_minor, idempotency_key)
        self._maybe_crash("capture")
        return result

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        result = super().refund(reference, amount_minor, idempotency_key)
        self._maybe_crash("refund")
        return result

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        result = super().authorize(token, amount_minor, currency, idempotency_key, owner=owner)
        self._maybe_crash("authorize")
        return result

    def _maybe_crash(self, name: str) -> None:
        if name in self.crash_after:
            self.crash_after.discard(name)
            raise RuntimeError(f"process died after {name}")


class World:
    """A PaymentService over the in-memory sandbox and repository."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.ledger = MemorySandboxLedger()
        self.gateway = CrashingGateway(self.ledger, clock=self.clock)
        self.gateway.crash_after = set()
        self.uow = FakePaymentsUnitOfWork()
        self.service = PaymentService(
            lambda: self.uow,
            self.gateway,
            regions=["eu", "us", "in"],
            default_region="eu",
            clock=self.clock,
        )
        self.count = 0

    def authorize(self, number: str = "4242424242424242", **changes: Any) -> Any:
        self.count += 1
        args: dict[str, Any] = {
            "payment_id": f"pay_{self.count}",
            "order_id": f"ord_us_{self.count:032x}",
            "customer_id": "cus_1",
            "amount_minor": 5000,
            "currency": "USD",
            "instrument_token": self.service.tokenize(
                card(number), changes.get("customer_id", "cus_1")
            ),
            "idempotency_key": f"chk_{self.count}:authorize",
        }
        args.update(changes)
        return self.service.authorize(**args)

    def types(self) -> list[str]:
        return self.uow.event_types()

    def payloads(self, event_type: str) -> list[dict[str, Any]]:
        return [e.payload for e in self.uow.committed if e.event_type == event_type]


@pytest.fixture
def world() -> World:
    return World()


def test_authorize_records_the_payment_and_emits_payment_authorized(world: World) -> None:
    payment = world.authorize()
    assert payment.status == "authorized"
    assert (payment.card_brand, payment.last4, payment.region) == ("visa", "4242", "us")
    assert world.types() == ["payment.authorized"]
    event = world.uow.committed[0]
    assert event.region == "us" and event.aggregate_id == payment.payment_id
    body = event.payload
    assert body["amount"] == {"amount_minor": 5000, "currency": "USD"}
    assert body["gateway"] == "sandbox" and body["gateway_reference"] == payment.gateway_reference
    assert body.get("instrument_token") is None  # a payment credential stays out of events
    assert world.service.find(payment.payment_id) == payment


def test_authorize_is_idempotent_per_payment(world: World) -> None:
    first = world.authorize()
    again = world.service.authorize(
        first.payment_id,
        first.order_id,
        first.customer_id,
        first.amount_minor,
        first.currency,
        first.instrument_token,
        first.idempotency_key,
    )
    assert again == first
    assert world.types() == ["payment.authorized"] and len(world.ledger.charges) == 1


@pytest.mark.parametrize(
    ("number", "code"),
    [
        ("4000000000000002", "card_declined"),
        ("4000000000009995", "insufficient_funds"),
        ("4000000000000069", "expired_card"),
    ],
)
def test_a_decline_is_recorded_then_raised_and_replayed(
    world: World, number: str, code: str
) -> None:
    with pytest.raises(PaymentDeclined) as declined:
        world.authorize(number)
    assert declined.value.code == code and declined.value.extra["decline_code"] == code
    payment = world.service.find("pay_1")
    assert payment is not None and payment.status == "declined"
    assert world.types() == ["payment.failed"]
    failed = world.payloads("payment.failed")[0]
    assert (failed["stage"], failed["error_code"], failed["retryable"]) == (
        "authorization",
        code,
        False,
    )
    with pytest.raises(PaymentDeclined) as replay:
        world.service.authorize(
            "pay_1",
            payment.order_id,
            "cus_1",
            5000,
            "USD",
            payment.instrument_token,
            payment.idempotency_key,
        )
    assert replay.value.code == code
    assert world.types() == ["payment.failed"]


def test_a_timeout_leaves_the_payment_pending_and_a_retry_learns_the_outcome(
    world: World,
) -> None:
    with pytest.raises(GatewayTimeout):
        world.authorize("4000000000000259")
    pending = world.service.find("pay_1")
    assert pending is not None and pending.status == "pending"
    assert world.types() == []
    retried = world.service.authorize(
        "pay_1",
        pending.order_id,
        "cus_1",
        5000,
        "USD",
        pending.instrument_token,
        pending.idempotency_key,
    )
    assert retried.status == "authorized"
    assert world.types() == ["payment.authorized"] and len(world.ledger.charges) == 1


def test_resolve_settles_a_pending_payment_from_the_gateway(world: World) -> None:
    with pytest.raises(GatewayTimeout):
        world.authorize("4000000000000259")
    resolved = world.service.resolve("pay_1")
    assert resolved is not None and resolved.status == "authorized"
    assert world.service.resolve("pay_1") == resolved
    assert world.types() == ["payment.authorized"]
    assert world.service.resolve("pay_unknown") is None


def test_a_crash_after_the_gateway_authorised_is_recovered_without_a_second_hold(
    world: World,
) -> None:
    world.gateway.crash_after.add("authorize")
    with pytest.raises(RuntimeError):
        world.authorize()
    pending = world.service.find("pay_1")
    assert pending is not None and pending.status == "pending"
    resolved = world.service.resolve("pay_1")
    assert resolved is not None and resolved.status == "authorized"
    assert len(world.ledger.charges) == 1


def test_capture_once_then_no_op(world: World) -> None:
    payment = world.authorize()
    captured = world.service.capture(payment.payment_id)
    assert (captured.status, captured.captured_minor) == ("captured", 5000)
    assert world.service.capture(payment.payment_id) == captured
    assert world.types() == ["payment.authorized", "payment.captured"]
    assert world.payloads("payment.captured")[0]["amount"]["amount_minor"] == 5000


def test_capture_never_exceeds_the_authorisation(world: World) -> None:
    payment = world.authorize()
    for amount in (5001, 0, -1):
        with pytest.raises(InvalidRequest) as raised:
            world.service.capture(payment.payment_id, amount)
        assert raised.value.code == "amount_exceeds_authorized"
    assert world.service.capture(payment.payment_id, 3000).captured_minor == 3000


def test_a_crash_after_capture_is_replayed_not_captured_twice(world: World) -> None:
    payment = world.authorize()
    world.gateway.crash_after.add("capture")
    with pytest.raises(RuntimeError):
        world.service.capture(payment.payment_id)
    assert world.service.capture(payment.payment_id).status == "captured"
    assert world.types().count("payment.captured") == 1


def test_void_releases_the_hold_once_and_refuses_captured_money(world: World) -> None:
    payment = world.authorize()
    voided = world.service.void(payment.payment_id)
    assert voided.status == "voided"
    assert world.service.void(payment.payment_id).status == "voided"
    assert world.types() == ["payment.authorized", "payment.voided"]
    assert world.ledger.charges[voided.gateway_reference or ""].status == "voided"
    with pytest.raises(IllegalPaymentTransition) as not_capturable:
        world.service.capture(payment.payment_id)
    assert not_capturable.value.code == "payment_not_capturable"
    captured = world.authorize()
    world.service.capture(captured.payment_id)
    with pytest.raises(IllegalPaymentTransition) as not_voidable:
        world.service.void(captured.payment_id)
    assert not_voidable.value.code == "payment_not_voidable"


def test_void_of_a_declined_payment_is_a_no_op(world: World) -> None:
    with pytest.raises(PaymentDeclined):
        world.authorize("4000000000000002")
    assert world.service.void("pay_1").status == "declined"
    assert world.types() == ["payment.failed"]


def test_void_of_a_payment_the_gateway_never_saw_closes_it(world: World) -> None:
    payment = world.authorize()
    # As if the process died after saving the pending row, before calling the gateway.
    stuck = world.uow.payments.payments[payment.payment_id]
    stuck.status = "pending"
    stuck.idempotency_key = "lost-before-the-gateway"
    assert world.service.void(payment.payment_id).status == "voided"


def test_refund_everything_is_idempotent(world: World) -> None:
    payment = world.authorize()
    world.service.capture(payment.payment_id)
    refunded = world.service.refund(payment.payment_id)
    assert (refunded.status, refunded.refunded_minor) == ("refunded", 5000)
    assert world.service.refund(payment.payment_id) == refunded
    assert world.types() == ["payment.authorized", "payment.captured", "payment.refunded"]
    event = world.payloads("payment.refunded")[0]
    assert event["reason"] == "cancellation" and event["amount"]["amount_minor"] == 5000


def test_partial_refunds_add_up_to_the_capture_and_no_more(world: World) -> None:
    payment = world.authorize()
    world.service.capture(payment.payment_id, 4000)
    part = world.service.refund(payment.payment_id, 1500, reason="goodwill")
    assert (part.status, part.refunded_minor) == ("partially_refunded", 1500)
    with pytest.raises(InvalidRequest) as too_much:
        world.service.refund(payment.payment_id, 2501)
    assert too_much.value.code == "refund_exceeds_captured"
    rest = world.service.refund(payment.payment_id)
    assert (rest.status, rest.refunded_minor) == ("refunded", 4000)
    assert [p["amount"]["amount_minor"] for p in world.payloads("payment.refunded")] == [
        1500,
        2500,
    ]


def test_a_crash_after_the_gateway_refunded_does_not_refund_twice(world: World) -> None:
    payment = world.authorize()
    world.service.capture(payment.payment_id)
    world.gateway.crash_after.add("refund")
    with pytest.raises(RuntimeError):
        world.service.refund(payment.payment_id)
    assert world.service.refund(payment.payment_id).refunded_minor == 5000
    charge = world.ledger.charges[payment.gateway_reference or ""]
    assert charge.refunded_minor == 5000
    assert world.types().count("payment.refunded") == 1


def test_refund_needs_captured_money(world: World) -> None:
    payment = world.authorize()
    with pytest.raises(IllegalPaymentTransition) as raised:
        world.service.refund(payment.payment_id)
    assert raised.value.code == "payment_not_refundable"


def test_unknown_payments_are_not_found(world: World) -> None:
    for call in (world.service.capture, world.service.void, world.service.refund):
        with pytest.raises(PaymentNotFound):
            call("pay_missing")
    assert world.service.find("pay_missing") is None


def test_reusing_a_payment_id_or_idempotency_key_for_something_else_conflicts(
    world: World,
) -> None:
    first = world.authorize()
    with pytest.raises(Conflict) as other_amount:
        world.service.authorize(
            first.payment_id,
            first.order_id,
            "cus_1",
            9999,
            "USD",
            first.instrument_token,
            first.idempotency_key,
        )
    assert other_amount.value.code == "payment_id_reused"
    with pytest.raises(Conflict) as other_payment:
        world.authorize(idempotency_key=first.idempotency_key)
    assert other_payment.value.code == "idempotency_key_reused"


def test_an_unknown_instrument_is_a_recorded_decline(world: World) -> None:
    with pytest.raises(PaymentDeclined) as raised:
        world.authorize(instrument_token="tok_not_vaulted")
    assert raised.value.code == "unknown_instrument"
    assert world.types() == ["payment.failed"]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"amount_minor": 0}, "invalid_amount"),
        ({"amount_minor": -100}, "invalid_amount"),
        ({"currency": "XYZ"}, "unsupported_currency"),
        ({"payment_id": ""}, "invalid_id"),
        ({"idempotency_key": " "}, "invalid_id"),
        ({"method": "barter"}, "invalid_method"),
        ({"region": "mars"}, "unknown_region"),
    ],
)
def test_bad_input_is_refused_before_the_gateway(
    world: World, changes: dict[str, Any], code: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        world.authorize(**changes)
    assert raised.value.code == code
    assert world.ledger.charges == {} and world.types() == []


def test_region_comes_from_the_order_id_or_defaults(world: World) -> None:
    assert world.authorize(order_id="ord_in_abc").region == "in"
    assert world.authorize(order_id="order-42").region == "eu"
    assert world.authorize(order_id="ord_in_abc", region="us").region == "us"
