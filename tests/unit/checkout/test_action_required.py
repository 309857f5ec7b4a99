"""A checkout waiting on the payer (3-D Secure, UPI collect), pure: its stage, its recovery,
its deadline, its 202 response, and the UPI request."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from transactional.checkout.dto import CheckoutIn, PaymentMethodIn, ShippingAddressIn, render
from transactional.checkout.model import (
    Checkout,
    PaymentLookup,
    PaymentState,
    PlacedOrder,
    Recovery,
    Stage,
    Totals,
    recovery_after_lookup,
    recovery_for,
    upi_instrument,
)
from transactional.shared.errors import Conflict, InvalidRequest

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def ordered(token: str = "tok_1") -> Checkout:
    checkout = Checkout(
        checkout_id="chk_1",
        customer_id="cus_1",
        cart_id="crt_1",
        idempotency_key="k",
        region="eu",
        created_at=NOW,
        updated_at=NOW,
        stage=Stage.RESERVED,
        instrument_token=token,
    )
    totals = Totals("EUR", 1000, 0, 0, 0, 1000)
    checkout.ordered(PlacedOrder("ord_eu_1", totals), "pay_1", NOW)
    return checkout


def stage_of(checkout: Checkout) -> Stage:
    return checkout.stage


def test_a_saga_waits_on_the_payer_between_ordered_and_authorized() -> None:
    checkout = ordered()
    checkout.action_required(NOW)
    assert checkout.stage is Stage.ACTION_REQUIRED and checkout.status == "pending"
    assert checkout.next_step == "payment"
    assert checkout.action_deadline(timedelta(minutes=15)) == NOW + timedelta(minutes=15)
    with pytest.raises(Conflict):
        checkout.captured(NOW)  # nothing is held yet: nothing to capture
    checkout.action_completed(NOW + timedelta(minutes=1))
    assert stage_of(checkout) is Stage.AUTHORIZED and checkout.payment_status == "authorized"
    assert [r.step for r in checkout.history][-2:] == ["action_required", "authorize"]
    assert ordered().action_deadline(timedelta(minutes=15)) is None


def test_recovery_settles_a_waiting_saga_and_an_ask_it_finds_makes_it_wait() -> None:
    assert recovery_for(Stage.ACTION_REQUIRED) is Recovery.SETTLE_ACTION
    assert recovery_after_lookup(PaymentLookup(PaymentState.ACTION_REQUIRED)) is (
        Recovery.AWAIT_ACTION
    )
    assert recovery_after_lookup(PaymentLookup(PaymentState.PENDING)) is Recovery.COMPENSATE


def test_a_waiting_saga_renders_202_with_its_next_action() -> None:
    card = ordered()
    card.action_required(NOW)
    card.lease_until = NOW + timedelta(minutes=15)
    response = render(card, None)
    assert response.status == 202
    assert response.body["status"] == "requires_action"
    assert response.body["next_action"] == {
        "type": "three_d_secure",
        "expires_at": "2026-03-01T12:15:00Z",
        "url": "/v1/payments/pay_1/3ds/confirm",
        "method": "POST",
    }
    upi = ordered("upi:success@souk")
    upi.action_required(NOW)
    body = render(upi, None).body
    assert body["next_action"]["type"] == "upi_collect"
    assert body["next_action"]["vpa"] == "success@souk"
    assert "url" not in body["next_action"]
    upi.action_completed(NOW)
    upi.captured(NOW)
    upi.completed(NOW)
    done = render(upi, None)
    assert done.status == 201 and "next_action" not in done.body


def test_upi_needs_a_vpa_and_rupees() -> None:
    assert upi_instrument(" asha.rao@okbank ", "INR") == "upi:asha.rao@okbank"
    for vpa, currency, code in (
        ("asha", "INR", "invalid_vpa"),
        ("a@b@c", "INR", "invalid_vpa"),
        ("asha@okbank", "EUR", "upi_unavailable"),
    ):
        with pytest.raises(InvalidRequest) as refused:
            upi_instrument(vpa, currency)
        assert refused.value.code == code
    assert ordered("upi:x@y").payment_method == "upi"
    assert ordered().payment_method == "card"


def test_the_request_takes_a_vpa_only_for_upi() -> None:
    address = {
        "full_name": "A",
        "line1": "1",
        "city": "Pune",
        "postal_code": "411001",
        "country": "IN",
    }

    def request(method: Mapping[str, object]) -> CheckoutIn:
        return CheckoutIn(
            cart_id="crt_1",
            shipping_address=msgspec.convert(address, ShippingAddressIn),
            payment_method=msgspec.convert(method, PaymentMethodIn),
        )

    domain = request({"type": "upi", "vpa": "success@souk"}).to_domain()
    assert domain.payment.vpa == "success@souk"
    assert domain.canonical(b"k")["payment_method"] == {"type": "upi", "vpa": "success@souk"}
    for method in (
        {"type": "upi"},
        {"type": "card", "vpa": "success@souk"},
        {"type": "upi", "vpa": "success@souk", "token": "tok_1"},
    ):
        with pytest.raises(InvalidRequest):
            request(method).to_domain()
