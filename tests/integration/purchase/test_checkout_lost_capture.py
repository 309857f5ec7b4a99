"""Captures whose answer was lost, and cancels racing the payment, on the real stack: the money
taken always comes back, the order is settled, and the stored answer says what happened."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import register
from tests.integration.purchase.test_checkout_api import (
    checkout_ids_of,
    filled_cart,
    order_of,
    outbox_types,
    saga_of,
    stock_of,
    stock_sku,
)
from tests.integration.purchase.test_checkout_races import (
    LEASE_S,
    payment_of,
    run,
    saga,
    seller,
    stored,
)
from transactional.checkout.adapters import PaymentsAdapter
from transactional.checkout.model import IdempotencyKeyInUse, PaymentOutcomeUnknown
from transactional.payments.model import GatewayAuthorization, Payment
from transactional.payments.repository import SqlPaymentsUnitOfWork
from transactional.payments.service import PaymentService

__all__ = ["seller"]  # the module-scoped fixture, shared with the races module


def lost_capture(engine: Engine, services: Services) -> PaymentsAdapter:
    """Payments whose capture reaches the gateway but whose answer never comes back."""
    gateway = services["payments"]._gateway

    class LostAnswer(PaymentsAdapter):
        def collect(self, payment: Payment) -> int:
            assert payment.gateway_reference is not None
            gateway.capture(
                payment.gateway_reference, payment.amount_minor, f"{payment.payment_id}:capture"
            )
            raise PaymentOutcomeUnknown("timeout")

    return LostAnswer(services["payments"])


def assert_given_back(engine: Engine, checkout_id: str, sku: str) -> dict[str, Any]:
    """All money taken is back, the order cancelled (nothing pending), the stock on sale."""
    checkout = saga_of(engine, checkout_id)
    payment = payment_of(engine, checkout["payment_id"])
    assert payment["status"] == payment["held"] == "refunded"
    assert payment["captured_minor"] == payment["refunded_minor"] > 0
    order = order_of(engine, checkout_id)
    assert order is not None and order["status"] == "cancelled"
    with engine.connect() as connection:
        pending = connection.execute(
            text("SELECT pending_status FROM orders WHERE order_id = :o"),
            {"o": order["order_id"]},
        ).scalar()
    assert pending is None
    assert stock_of(engine, sku) == (5, 0)
    events = Counter(outbox_types(engine, checkout["payment_id"]))
    assert events == {"payment.authorized": 1, "payment.captured": 1, "payment.refunded": 1}
    return checkout


def test_a_lost_capture_then_a_support_cancel_is_refunded(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 1})
    key = str(uuid.uuid4())
    with pytest.raises(IdempotencyKeyInUse):
        run(saga(services, payments=lost_capture(engine, services)), shopper, cart_id, key)
    (checkout_id,) = checkout_ids_of(engine, shopper["customer_id"])
    order = order_of(engine, checkout_id)
    assert order is not None
    # Support cancels: the void finds the capture at the gateway, so the cancel refunds it.
    cancelled = services["orders"].cancel(order["order_id"], "admin:support", "fraud_suspected")
    assert cancelled.status == "cancelled" and cancelled.refunded_minor > 0
    assert saga(services, skew_s=LEASE_S + 1).recover() == 1
    assert_given_back(engine, checkout_id, sku)
    status, body = stored(engine, shopper["customer_id"], key)
    assert (status, body["code"], body["step"]) == (409, "order_cancelled", "payment")
    assert "given back" in body["detail"]


def test_a_lost_capture_given_up_after_an_outage_is_refunded(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 1})
    key = str(uuid.uuid4())
    with pytest.raises(IdempotencyKeyInUse):
        run(saga(services, payments=lost_capture(engine, services)), shopper, cart_id, key)
    (checkout_id,) = checkout_ids_of(engine, shopper["customer_id"])

    class Down(PaymentsAdapter):
        def capture(self, payment_id: str) -> None:
            raise PaymentOutcomeUnknown("gateway down")

    down = Down(services["payments"])
    # The capture cannot be retried while the gateway is down...
    saga(services, payments=down, skew_s=LEASE_S + 1, max_recovery_attempts=1).recover()
    assert saga_of(engine, checkout_id)["status"] == "pending"
    # ...so recovery gives up: it finds the capture first, and refunds instead of voiding.
    saga(services, skew_s=2 * (LEASE_S + 1), max_recovery_attempts=1).recover()
    checkout = assert_given_back(engine, checkout_id, sku)
    assert (checkout["status"], checkout["payment_status"]) == ("failed", "refunded")
    status, body = stored(engine, shopper["customer_id"], key)
    assert (status, body["code"]) == (409, "checkout_not_completed")
    assert services["orders"].finish_pending_cancellations(older_than_s=0) == 0


def test_a_cancel_while_the_authorization_is_in_flight_is_answered_as_cancelled(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 1})
    real = services["payments"]._gateway

    class SlowGateway:
        """The gateway, with support cancelling the order while it authorizes."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def authorize(self, *args: Any, **kwargs: Any) -> GatewayAuthorization:
            (checkout_id,) = checkout_ids_of(engine, shopper["customer_id"])
            order = order_of(engine, checkout_id)
            assert order is not None
            services["orders"].cancel(order["order_id"], "admin:support", "fraud_suspected")
            return real.authorize(*args, **kwargs)  # type: ignore[no-any-return]

    payments = PaymentService(
        lambda: SqlPaymentsUnitOfWork(services.engine, services.outbox),
        SlowGateway(),  # type: ignore[arg-type]
        regions=services.settings.regions,
        default_region="eu",
    )
    key = str(uuid.uuid4())
    reply = run(saga(services, payments=PaymentsAdapter(payments)), shopper, cart_id, key)
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    checkout = saga_of(engine, reply.checkout_id)
    assert checkout["payment_status"] == "voided"
    payment = payment_of(engine, checkout["payment_id"])
    assert (payment["status"], payment["captured_minor"], payment["held"]) == (
        "voided",
        0,
        "voided",
    )
    assert Counter(outbox_types(engine, checkout["payment_id"])) == {"payment.voided": 1}
    assert stock_of(engine, sku) == (5, 0)


def test_a_cancel_just_before_the_capture_is_answered_as_cancelled(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 1})

    class SupportCancels(PaymentsAdapter):
        def collect(self, payment: Payment) -> int:
            services["orders"].cancel(payment.order_id, "admin:support", "fraud_suspected")
            return super().collect(payment)

    reply = run(
        saga(services, payments=SupportCancels(services["payments"])),
        shopper,
        cart_id,
        str(uuid.uuid4()),
    )
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        409,
        "order_cancelled",
        "payment",
    )
    assert "nothing was charged" in body["detail"]
    payment = payment_of(engine, saga_of(engine, reply.checkout_id)["payment_id"])
    assert (payment["status"], payment["captured_minor"]) == ("voided", 0)
    assert stock_of(engine, sku) == (5, 0)
