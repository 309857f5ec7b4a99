"""Vault tokens belong to a customer; a hold the gateway made after we gave up is released."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.payments.fakes import MemorySandboxLedger, card
from tests.unit.payments.test_payment_service import World
from transactional.payments.model import (
    GatewayAuthorization,
    GatewayTransaction,
    PaymentVoidedMeanwhile,
    UnknownInstrument,
)
from transactional.payments.sandbox import SandboxCardGateway
from transactional.shared.errors import Conflict, InvalidRequest, PaymentDeclined


@pytest.fixture
def world() -> World:
    return World()


# -- owners ----------------------------------------------------------------------------------


def test_a_token_is_owned_by_the_customer_it_was_made_for(world: World) -> None:
    token = world.service.tokenize(card(), "cus_1")
    assert world.service.token_owned_by(token, "cus_1")
    for other_token, customer in (
        (token, "cus_2"),
        ("tok_not_vaulted", "cus_1"),
        ("", "cus_1"),
        (token, " "),
        (world.service.tokenize(card()), "cus_1"),  # nobody's yet
    ):
        assert not world.service.token_owned_by(other_token, customer)
    with pytest.raises(InvalidRequest) as bad:
        world.service.tokenize(card(), " ")
    assert bad.value.code == "invalid_id"


def test_another_customers_token_is_declined_like_an_unknown_one(world: World) -> None:
    victims = world.service.tokenize(card(), "cus_victim")
    with pytest.raises(PaymentDeclined) as stolen:
        world.authorize(customer_id="cus_thief", instrument_token=victims)
    with pytest.raises(PaymentDeclined) as unknown:
        world.authorize(customer_id="cus_thief", instrument_token="tok_not_vaulted")
    assert stolen.value.code == unknown.value.code == "unknown_instrument"
    assert stolen.value.extra["decline_code"] == "unknown_instrument"
    assert world.ledger.charges == {}  # no hold on the victim's card
    assert world.types() == ["payment.failed", "payment.failed"]
    assert world.service.token_owned_by(victims, "cus_victim")
    assert world.authorize(customer_id="cus_victim", instrument_token=victims).status == (
        "authorized"
    )


def test_a_token_vaulted_without_an_owner_becomes_the_first_payers(world: World) -> None:
    token = world.service.tokenize(card())
    assert world.authorize(customer_id="cus_1", instrument_token=token).status == "authorized"
    assert world.service.token_owned_by(token, "cus_1")
    with pytest.raises(PaymentDeclined) as refused:
        world.authorize(customer_id="cus_2", instrument_token=token)
    assert refused.value.code == "unknown_instrument"


def test_the_sandbox_keeps_the_owner_and_refuses_others_before_any_replay() -> None:
    ledger = MemorySandboxLedger()
    gateway = SandboxCardGateway(ledger)
    token = gateway.tokenize(card(), "cus_1")
    assert gateway.owner_of(token) == "cus_1" and ledger.cards[token].owner == "cus_1"
    first = gateway.authorize(token, 100, "EUR", "k1", owner="cus_1")
    with pytest.raises(UnknownInstrument):
        gateway.authorize(token, 100, "EUR", "k1", owner="cus_2")  # not even the replay
    with pytest.raises(UnknownInstrument):
        gateway.authorize(token, 100, "EUR", "k2", owner="cus_2")
    assert gateway.authorize(token, 100, "EUR", "k1") == first  # no owner named: as before
    assert len(ledger.charges) == 1 and set(ledger.requests) == {"k1"}
    with pytest.raises(UnknownInstrument):
        gateway.owner_of("tok_nope")
    anonymous = gateway.tokenize(card())
    assert gateway.owner_of(anonymous) is None
    gateway.authorize(anonymous, 100, "EUR", "k3", owner="cus_2")
    assert gateway.owner_of(anonymous) == "cus_2"


def test_payment_authorized_does_not_publish_the_token(world: World) -> None:
    payment = world.authorize()
    (event,) = world.payloads("payment.authorized")
    assert event.get("instrument_token") is None
    assert payment.instrument_token not in str(event)


# -- late holds ------------------------------------------------------------------------------


def before_authorize(
    monkeypatch: pytest.MonkeyPatch, world: World, hook: Callable[[], Any]
) -> None:
    """Run ``hook`` while the live authorisation is on its way to the gateway."""
    real = world.gateway.authorize

    def racing(*args: Any, **kwargs: Any) -> GatewayAuthorization:
        hook()
        return real(*args, **kwargs)

    monkeypatch.setattr(world.gateway, "authorize", racing)


def test_a_late_authorisation_of_a_voided_payment_is_voided_at_the_gateway(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recovery gives up on the pending payment (the gateway knows nothing of it yet)...
    before_authorize(monkeypatch, world, lambda: world.service.void("pay_1"))
    # ...then the live call's authorisation lands: the caller is told the payment is gone.
    with pytest.raises(PaymentVoidedMeanwhile) as gone:
        world.authorize()
    assert gone.value.code == "payment_voided" and isinstance(gone.value, Conflict)
    payment = world.service.find("pay_1")
    assert payment is not None
    reference = payment.gateway_reference or ""
    assert payment.status == "voided" and reference.startswith("ch_")
    assert world.ledger.charges[reference].status == "voided"  # the hold is released
    # One payment.voided per payment: releasing the late hold announces nothing new.
    assert world.types() == ["payment.voided"]
    # Idempotent: repeats and resolves do nothing more; a repeated authorise refuses again.
    assert world.service.void("pay_1").status == "voided"
    assert world.service.resolve("pay_1") == world.service.find("pay_1")
    with pytest.raises(PaymentVoidedMeanwhile):
        world.service.authorize(
            "pay_1",
            payment.order_id,
            "cus_1",
            5000,
            "USD",
            payment.instrument_token,
            payment.idempotency_key,
        )
    assert world.types() == ["payment.voided"]


def test_a_late_hold_whose_void_failed_is_released_by_the_next_call(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_authorize(monkeypatch, world, lambda: world.service.void("pay_1"))
    real_void = world.gateway.void
    calls: list[str] = []

    def flaky_void(reference: str, idempotency_key: str) -> GatewayTransaction:
        calls.append(reference)
        if len(calls) == 1:
            raise RuntimeError("process died before voiding")
        return real_void(reference, idempotency_key)

    monkeypatch.setattr(world.gateway, "void", flaky_void)
    with pytest.raises(RuntimeError):
        world.authorize()
    stuck = world.service.find("pay_1")
    assert stuck is not None and stuck.status == "voided" and stuck.gateway_reference is None
    (held,) = world.ledger.charges.values()
    assert held.status == "authorized"
    # The saga's recovery (resolve) or any void finds and releases it.
    resolved = world.service.resolve("pay_1")
    assert resolved is not None and resolved.gateway_reference == held.reference
    assert world.ledger.charges[held.reference].status == "voided"
    assert world.types().count("payment.voided") == 1


def test_a_late_hold_after_a_recorded_failure_is_released(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def another_process_records_a_failure() -> None:
        stored = world.uow.payments.payments["pay_1"]
        stored.status, stored.decline_code = "declined", "gateway_error"

    before_authorize(monkeypatch, world, another_process_records_a_failure)
    with pytest.raises(PaymentDeclined) as declined:
        world.authorize()
    assert declined.value.code == "gateway_error"
    (held,) = world.ledger.charges.values()
    assert held.status == "voided"
    payment = world.service.find("pay_1")
    assert payment is not None and payment.status == "declined"
    assert payment.gateway_reference == held.reference
    assert world.types() == ["payment.voided"]
