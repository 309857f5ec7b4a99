"""A capture the gateway made whose answer was lost is recorded, never voided over or dropped."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.payments.test_payment_service import World
from transactional.payments.model import GatewayTransaction, IllegalPaymentTransition


@pytest.fixture
def world() -> World:
    return World()


def captured_behind_our_back(world: World) -> str:
    """Authorise pay_1, then capture it at the gateway only (our row stays authorized)."""
    payment = world.authorize()
    world.gateway.capture(payment.gateway_reference, 5000, "pay_1:capture")
    stored = world.service.find("pay_1")
    assert stored is not None and stored.status == "authorized"
    return str(payment.gateway_reference)


def test_void_of_a_payment_captured_at_the_gateway_records_the_capture_and_refuses(
    world: World,
) -> None:
    captured_behind_our_back(world)
    with pytest.raises(IllegalPaymentTransition) as refused:
        world.service.void("pay_1")
    assert refused.value.code == "payment_not_voidable"
    payment = world.service.find("pay_1")
    assert payment is not None and payment.status == "captured"
    assert payment.captured_minor == 5000
    # So the caller can give the money back.
    refunded = world.service.refund("pay_1")
    assert refunded.status == "refunded" and refunded.refunded_minor == 5000
    with pytest.raises(IllegalPaymentTransition):
        world.service.void("pay_1")
    assert world.types().count("payment.captured") == 1
    assert "payment.voided" not in world.types()


def test_resolve_records_a_lost_capture_once(world: World) -> None:
    captured_behind_our_back(world)
    first = world.service.resolve("pay_1")
    second = world.service.resolve("pay_1")
    assert first is not None and first.status == "captured"
    assert second is not None and second.status == "captured"
    assert world.types() == ["payment.authorized", "payment.captured"]
    # A capture call afterwards is a no-op, not a second capture.
    assert world.service.capture("pay_1").captured_minor == 5000
    assert world.types().count("payment.captured") == 1


def test_a_capture_racing_the_void_is_recorded_when_the_gateway_refuses_the_void(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    payment = world.authorize()
    real_void = world.gateway.void

    def capture_lands_first(reference: str, idempotency_key: str) -> GatewayTransaction:
        world.gateway.capture(reference, 5000, "pay_1:capture")
        return real_void(reference, idempotency_key)

    monkeypatch.setattr(world.gateway, "void", capture_lands_first)
    with pytest.raises(IllegalPaymentTransition) as refused:
        world.service.void("pay_1")
    assert refused.value.code == "payment_not_voidable"
    stored = world.service.find("pay_1")
    assert stored is not None and stored.status == "captured"
    assert world.ledger.charges[str(payment.gateway_reference)].status == "captured"
    assert world.types().count("payment.captured") == 1


def test_an_authorized_payment_without_a_capture_is_still_voided(world: World) -> None:
    payment: Any = world.authorize()
    assert world.service.void("pay_1").status == "voided"
    assert world.ledger.charges[payment.gateway_reference].status == "voided"
    assert world.types() == ["payment.authorized", "payment.voided"]
