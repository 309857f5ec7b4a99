"""The events a checkout emits, built from its saved state (no street-level address)."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.checkout import CheckoutCompleted, CheckoutFailed, CheckoutStarted
from schemas.common import Address, LineItem, Money
from schemas.envelope import Envelope
from schemas.fraud import FraudAlertRaised
from schemas.ids import new_id
from schemas.registry import REGISTRY
from transactional.checkout.model import Checkout, FraudVerdict, ShippingAddress, Step


def coarse_address(address: ShippingAddress) -> Address:
    """The routing part of an address: events never carry the street (GDPR)."""
    return Address(
        country=address.country,
        subdivision=address.subdivision,
        city=address.city,
        postal_code=address.postal_code,
        address_id=address.address_id,
    )


def started_event(checkout: Checkout) -> Envelope:
    """checkout.started: the cart validated and priced; the saga begins. Says where the
    checkout comes from (device, client IP and its region) and which card pays (its stable
    id), for fraud scoring."""
    plan, context = checkout.plan, checkout.context
    assert plan is not None
    return REGISTRY.new_event(
        "checkout.started",
        CheckoutStarted(
            checkout_id=checkout.checkout_id,
            cart_id=checkout.cart_id,
            customer_id=checkout.customer_id,
            lines=[
                LineItem(
                    line_id=f"{checkout.checkout_id}-{index}",
                    sku=line.sku,
                    product_id=line.product_id,
                    seller_id=line.seller_id,
                    quantity=line.quantity,
                    unit_price=Money(amount_minor=line.unit_price_minor, currency=plan.currency),
                )
                for index, line in enumerate(plan.lines, start=1)
            ],
            subtotal=Money(amount_minor=plan.subtotal_minor, currency=plan.currency),
            shipping_address=coarse_address(plan.shipping),
            device_id=context.device_id,
            client_ip=context.client_ip,
            ip_region=context.ip_region,
            instrument_id=checkout.instrument_id,
        ),
        region=checkout.region,
    )


def completed_event(checkout: Checkout) -> Envelope:
    """checkout.completed: paid and stock sold; the fulfilment trigger."""
    plan, totals = checkout.plan, checkout.totals
    assert plan is not None and totals is not None and checkout.order_id is not None
    return REGISTRY.new_event(
        "checkout.completed",
        CheckoutCompleted(
            checkout_id=checkout.checkout_id,
            customer_id=checkout.customer_id,
            order_id=checkout.order_id,
            cart_id=checkout.cart_id,
            payment_id=checkout.payment_id,
            amount=Money(amount_minor=totals.grand_total_minor, currency=totals.currency),
            ship_region=plan.ship_region,
            shipping_address=coarse_address(plan.shipping),
            warehouse_ids=sorted({a.warehouse_id for a in checkout.allocations}),
        ),
        region=checkout.region,
    )


def failed_event(checkout: Checkout, compensated: Sequence[Step]) -> Envelope:
    """checkout.failed: the step that failed and the steps undone."""
    failure = checkout.failure
    assert failure is not None
    return REGISTRY.new_event(
        "checkout.failed",
        CheckoutFailed(
            checkout_id=checkout.checkout_id,
            customer_id=checkout.customer_id,
            step=failure.step,
            code=failure.code,
            cart_id=checkout.cart_id,
            order_id=checkout.order_id,
            payment_id=checkout.payment_id,
            compensated=list(compensated),
        ),
        region=checkout.region,
    )


def fraud_alert_event(checkout: Checkout, verdict: FraudVerdict) -> Envelope:
    """fraud.alert_raised for a checkout the screen declined (action ``block``) or sent to
    review (``hold``: the order waits on hold); subject the checkout, with its order and
    payment once they exist."""
    block = verdict.decision == "decline"
    return REGISTRY.new_event(
        "fraud.alert_raised",
        FraudAlertRaised(
            alert_id=new_id("frd"),
            subject_type="order",
            subject_id=checkout.checkout_id,
            order_id=checkout.order_id,
            payment_id=checkout.payment_id,
            customer_id=checkout.customer_id,
            score=min(max(verdict.score, 0.0), 1.0),
            severity="critical" if block else "high",
            rules=list(verdict.rules),
            model_version=verdict.model_version,
            action="block" if block else "hold",
        ),
        region=checkout.region,
    )
