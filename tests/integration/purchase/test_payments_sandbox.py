"""The sandbox gateway and PaymentService on the real PostgreSQL: durable, idempotent, no PAN."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, text

from souk.services import Services
from souk.settings import Settings
from souk.vault_wiring import build_card_vault
from transactional.payments.model import (
    Card,
    GatewayAuthorization,
    GatewayTimeout,
    PaymentVoidedMeanwhile,
)
from transactional.payments.repository import SqlPaymentsUnitOfWork
from transactional.payments.sandbox import SandboxCardGateway
from transactional.payments.sandbox_ledger import SqlSandboxLedger
from transactional.payments.service import PaymentService
from transactional.payments.vault.cards import CardVault
from transactional.shared.errors import PaymentDeclined

APPROVED = "4242424242424242"


def card(number: str = APPROVED) -> Card:
    return Card(number=number, exp_month=12, exp_year=2035, cvc="123", holder="Ada Lovelace")


def fresh(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def outbox_types(engine: Engine, key: str) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT event_type FROM outbox WHERE message_key = :key ORDER BY id"),
                {"key": key},
            ).scalars()
        )


@pytest.fixture(scope="module")
def cards(souk_settings: Settings, engine: Engine) -> CardVault:
    """The card vault as `souk serve` builds it (its key file under the test home)."""
    return build_card_vault(souk_settings, engine)


def authorize(payments: PaymentService, number: str = APPROVED, **changes: Any) -> Any:
    customer_id = changes.get("customer_id") or fresh("cus")
    fields: dict[str, Any] = {
        "payment_id": fresh("pay"),
        "order_id": f"ord_eu_{secrets.token_hex(16)}",
        "customer_id": customer_id,
        "amount_minor": 2599,
        "currency": "EUR",
        "instrument_token": payments.tokenize(card(number), customer_id),
        "idempotency_key": fresh("key"),
    }
    fields.update(changes)
    return payments.authorize(**fields)


def test_a_timed_out_authorisation_survives_our_process(engine: Engine, cards: CardVault) -> None:
    gateway = SandboxCardGateway(SqlSandboxLedger(engine, cards))
    token = gateway.tokenize(card("4000000000000259"))
    key = fresh("key")
    with pytest.raises(GatewayTimeout):
        gateway.authorize(token, 1200, "EUR", key)
    # A new process (new gateway object, same database) can learn what happened.
    restarted = SandboxCardGateway(SqlSandboxLedger(engine, cards))
    found = restarted.lookup(key)
    assert isinstance(found, GatewayAuthorization) and found.status == "authorized"
    assert restarted.authorize(token, 1200, "EUR", key) == found
    with engine.connect() as connection:
        charges = connection.execute(
            text("SELECT count(*) FROM sandbox_gateway_charges WHERE token = :token"),
            {"token": token},
        ).scalar_one()
    assert charges == 1


def test_concurrent_calls_with_one_key_hold_once(engine: Engine, cards: CardVault) -> None:
    gateway = SandboxCardGateway(SqlSandboxLedger(engine, cards))
    token = gateway.tokenize(card())
    key = fresh("key")
    results: list[GatewayAuthorization] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            results.append(gateway.authorize(token, 500, "EUR", key))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len({r.reference for r in results}) == 1 and len(results) == 6
    with engine.connect() as connection:
        charges = connection.execute(
            text("SELECT count(*) FROM sandbox_gateway_charges WHERE token = :token"),
            {"token": token},
        ).scalar_one()
    assert charges == 1


def test_payment_lifecycle_is_stored_with_its_events(services: Services, engine: Engine) -> None:
    payments: PaymentService = services.provided["payments"]
    payment = authorize(payments)
    payments.capture(payment.payment_id)
    payments.capture(payment.payment_id)  # a no-op
    payments.refund(payment.payment_id, 599, reason="goodwill")
    refunded = payments.refund(payment.payment_id)
    assert (refunded.status, refunded.captured_minor, refunded.refunded_minor) == (
        "refunded",
        2599,
        2599,
    )
    assert payments.find(payment.payment_id) == refunded
    assert outbox_types(engine, payment.payment_id) == [
        "payment.authorized",
        "payment.captured",
        "payment.refunded",
        "payment.refunded",
    ]
    with engine.connect() as connection:
        refunds = connection.execute(
            text(
                "SELECT amount_minor, reason FROM payment_refunds WHERE payment_id = :id "
                "ORDER BY created_at, amount_minor"
            ),
            {"id": payment.payment_id},
        ).all()
        charge = connection.execute(
            text(
                "SELECT status, captured_minor, refunded_minor FROM sandbox_gateway_charges "
                "WHERE reference = :ref"
            ),
            {"ref": payment.gateway_reference},
        ).one()
    assert sorted(tuple(r) for r in refunds) == [(599, "goodwill"), (2000, "cancellation")]
    assert tuple(charge) == ("refunded", 2599, 2599)


def test_a_decline_is_committed_before_it_is_raised(services: Services, engine: Engine) -> None:
    payments: PaymentService = services.provided["payments"]
    payment_id = fresh("pay")
    with pytest.raises(PaymentDeclined) as declined:
        authorize(payments, "4000000000009995", payment_id=payment_id)
    assert declined.value.code == "insufficient_funds"
    stored = payments.find(payment_id)
    assert stored is not None and stored.status == "declined"
    assert outbox_types(engine, payment_id) == ["payment.failed"]


def test_void_is_stored_and_emitted(services: Services, engine: Engine) -> None:
    payments: PaymentService = services.provided["payments"]
    payment = authorize(payments)
    assert payments.void(payment.payment_id).status == "voided"
    assert payments.void(payment.payment_id).status == "voided"
    assert outbox_types(engine, payment.payment_id) == ["payment.authorized", "payment.voided"]


def test_no_full_card_number_outside_the_sandbox_vault(services: Services, engine: Engine) -> None:
    payments: PaymentService = services.provided["payments"]
    number = "5555555555554444"
    payment = authorize(payments, number)
    payments.capture(payment.payment_id)
    with engine.connect() as connection:
        payment_row = connection.execute(
            text("SELECT row_to_json(p)::text FROM payments p WHERE payment_id = :id"),
            {"id": payment.payment_id},
        ).scalar_one()
        events = connection.execute(
            text("SELECT convert_from(value, 'UTF8') FROM outbox WHERE message_key = :id"),
            {"id": payment.payment_id},
        ).scalars()
        vault = connection.execute(
            text(
                "SELECT row_to_json(v)::text, last4, brand FROM sandbox_gateway_vault v "
                "WHERE token = :token"
            ),
            {"token": payment.instrument_token},
        ).one()
    assert number not in payment_row and '"last4":"4444"' in payment_row
    assert all(number not in event for event in events)
    # The vault itself keeps the number only sealed (transactional.payments.vault).
    assert number not in vault[0] and tuple(vault[1:]) == ("4444", "mastercard")


def test_a_token_pays_only_for_its_customer(services: Services, engine: Engine) -> None:
    payments: PaymentService = services.provided["payments"]
    victim, thief = fresh("cus"), fresh("cus")
    token = payments.tokenize(card(), victim)
    assert payments.token_owned_by(token, victim)
    assert not payments.token_owned_by(token, thief)
    assert not payments.token_owned_by("tok_not_vaulted", victim)
    payment_id = fresh("pay")
    with pytest.raises(PaymentDeclined) as refused:
        authorize(payments, customer_id=thief, instrument_token=token, payment_id=payment_id)
    assert refused.value.code == "unknown_instrument"
    with engine.connect() as connection:
        owner = connection.execute(
            text("SELECT owner FROM sandbox_gateway_vault WHERE token = :token"),
            {"token": token},
        ).scalar_one()
        charges = connection.execute(
            text("SELECT count(*) FROM sandbox_gateway_charges WHERE token = :token"),
            {"token": token},
        ).scalar_one()
    assert (owner, charges) == (victim, 0)
    assert outbox_types(engine, payment_id) == ["payment.failed"]
    assert authorize(payments, customer_id=victim, instrument_token=token).status == "authorized"


def test_concurrent_first_payers_of_an_unowned_token_cannot_share_it(services: Services) -> None:
    payments: PaymentService = services.provided["payments"]
    token = payments.tokenize(card())  # a caller that did not say whose card it is
    customers = [fresh("cus") for _ in range(4)]
    outcomes: dict[str, str] = {}
    barrier = threading.Barrier(len(customers))

    def pay(customer_id: str) -> None:
        barrier.wait()
        try:
            payment = authorize(payments, customer_id=customer_id, instrument_token=token)
            outcomes[customer_id] = payment.status
        except PaymentDeclined as declined:
            outcomes[customer_id] = declined.code

    threads = [threading.Thread(target=pay, args=(c,)) for c in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()) == ["authorized"] + ["unknown_instrument"] * 3
    (winner,) = [c for c, outcome in outcomes.items() if outcome == "authorized"]
    assert [c for c in customers if payments.token_owned_by(token, c)] == [winner]


def test_payment_events_never_carry_the_vault_token(services: Services, engine: Engine) -> None:
    payments: PaymentService = services.provided["payments"]
    payment = authorize(payments)
    payments.capture(payment.payment_id)
    with engine.connect() as connection:
        events = list(
            connection.execute(
                text("SELECT convert_from(value, 'UTF8') FROM outbox WHERE message_key = :id"),
                {"id": payment.payment_id},
            ).scalars()
        )
    assert len(events) == 2 and all(payment.instrument_token not in event for event in events)


def test_a_late_authorisation_after_a_void_is_released_at_the_gateway(
    services: Services, engine: Engine
) -> None:
    payment_id = fresh("pay")

    class RecoveryGivesUpFirst(SandboxCardGateway):
        """The saga's recovery voids the pending payment while the live call is in flight."""

        def authorize(self, *args: Any, **kwargs: Any) -> GatewayAuthorization:
            assert service.void(payment_id).status == "voided"
            return super().authorize(*args, **kwargs)

    service = PaymentService(
        lambda: SqlPaymentsUnitOfWork(services.engine, services.outbox),
        RecoveryGivesUpFirst(
            SqlSandboxLedger(services.engine, build_card_vault(services.settings, services.engine))
        ),
        regions=services.settings.regions,
        default_region=services.settings.region,
    )
    # The caller is told the payment is gone, not handed a voided payment as a success.
    with pytest.raises(PaymentVoidedMeanwhile):
        authorize(service, payment_id=payment_id)
    payment = service.find(payment_id)
    assert payment is not None
    assert payment.status == "voided" and payment.gateway_reference is not None
    with engine.connect() as connection:
        charge = connection.execute(
            text("SELECT status FROM sandbox_gateway_charges WHERE reference = :ref"),
            {"ref": payment.gateway_reference},
        ).scalar_one()
    assert charge == "voided"  # no hold left on the shopper's card
    # One payment.voided per payment: releasing the late hold announces nothing new.
    assert outbox_types(engine, payment_id) == ["payment.voided"]
    assert service.resolve(payment_id) == service.find(payment_id)
    assert outbox_types(engine, payment_id) == ["payment.voided"]
