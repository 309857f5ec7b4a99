"""The events a payment emits, built from the payment (pure; no I/O)."""

from __future__ import annotations

from schemas.common import Money
from schemas.envelope import Envelope
from schemas.payments import (
    PaymentActionRequired,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentFailed,
    PaymentVoided,
)
from schemas.registry import REGISTRY
from transactional.payments.model import Payment


def authorization_event(payment: Payment) -> Envelope:
    """payment.authorized, payment.failed for a declined authorisation, or
    payment.action_required while the gateway waits on the payer."""
    amount = _money(payment.amount_minor, payment.currency)
    if payment.awaiting_action:
        return REGISTRY.new_event(
            "payment.action_required",
            PaymentActionRequired(
                payment_id=payment.payment_id,
                order_id=payment.order_id,
                customer_id=payment.customer_id,
                amount=amount,
                method=payment.method,
                gateway=payment.gateway,
                action="upi_collect" if payment.method == "upi" else "three_d_secure",
                gateway_reference=payment.gateway_reference,
                expires_at=payment.authorization_expires_at,
            ),
            region=payment.region,
        )
    if payment.status == "authorized":
        return REGISTRY.new_event(
            "payment.authorized",
            PaymentAuthorized(
                payment_id=payment.payment_id,
                order_id=payment.order_id,
                customer_id=payment.customer_id,
                amount=amount,
                method=payment.method,
                gateway=payment.gateway,
                gateway_reference=payment.gateway_reference,
                # No instrument_token: a vault token is a payment credential, not news.
                expires_at=payment.authorization_expires_at,
            ),
            region=payment.region,
        )
    return REGISTRY.new_event(
        "payment.failed",
        PaymentFailed(
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            customer_id=payment.customer_id,
            amount=amount,
            method=payment.method,
            stage="authorization",
            error_code=payment.decline_code or "card_declined",
            error_message=f"declined: {payment.decline_code}",
            retryable=False,
        ),
        region=payment.region,
    )


def voided_event(payment: Payment) -> Envelope:
    """payment.voided: the hold was released."""
    return REGISTRY.new_event(
        "payment.voided",
        PaymentVoided(
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            customer_id=payment.customer_id,
            amount=_money(payment.amount_minor, payment.currency),
            method=payment.method,
            gateway_reference=payment.gateway_reference,
        ),
        region=payment.region,
    )


def captured_event(payment: Payment, amount_minor: int) -> Envelope:
    """payment.captured: the money was collected."""
    return REGISTRY.new_event(
        "payment.captured",
        PaymentCaptured(
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            customer_id=payment.customer_id,
            amount=_money(amount_minor, payment.currency),
            method=payment.method,
            gateway_reference=payment.gateway_reference,
        ),
        region=payment.region,
    )


def _money(amount_minor: int, currency: str) -> Money:
    return Money(amount_minor=amount_minor, currency=currency)
