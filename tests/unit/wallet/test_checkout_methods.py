"""The checkout request's wallet, split and EMI choices: validated, and fingerprinted apart."""

from __future__ import annotations

import pytest

from transactional.checkout.dto import CheckoutIn
from transactional.checkout.model import (
    Card,
    Checkout,
    CheckoutRequest,
    PaymentMethod,
    ShippingAddress,
    request_fingerprint,
)
from transactional.shared.errors import InvalidRequest

ADDRESS = ShippingAddress("Ada", "1 Main St", "Berlin", "10115", "DE")
CARD = Card("4242424242424242", 12, 2040, "123")


def fingerprint(method: PaymentMethod) -> str:
    request = CheckoutRequest(cart_id="crt_1", payment=method, address=ADDRESS)
    return request_fingerprint(request.canonical(b"k"))


def test_each_method_is_a_different_request_and_a_card_one_is_unchanged() -> None:
    card = fingerprint(PaymentMethod(card=CARD))
    assert card == fingerprint(PaymentMethod(card=CARD))
    others = {
        fingerprint(PaymentMethod(wallet=True)),
        fingerprint(PaymentMethod(card=CARD, wallet_minor=500)),
        fingerprint(PaymentMethod(card=CARD, wallet_minor=600)),
        fingerprint(PaymentMethod(card=CARD, emi=(6, "hdfc"))),
        fingerprint(PaymentMethod(card=CARD, emi=(12, "hdfc"))),
    }
    assert len(others) == 5 and card not in others
    plain = CheckoutRequest(cart_id="crt_1", payment=PaymentMethod(token="tok_1"), address=ADDRESS)
    assert plain.canonical(b"k")["payment_method"] == {"type": "card", "token": "tok_1"}


@pytest.mark.parametrize(
    "method",
    [
        {"wallet": True, "card": CARD},
        {"wallet": True, "token": "tok_1"},
        {"wallet": True, "wallet_minor": 100},
        {"wallet_minor": 100},
        {"emi": (6, "hdfc")},
        {"card": CARD, "token": "tok_1", "emi": (6, "hdfc")},
        {"card": CARD, "wallet_minor": 100, "emi": (6, "hdfc")},
        {"vpa": "ada@okbank", "wallet_minor": 100},
    ],
)
def test_contradictory_choices_are_refused(method: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest) as refused:
        PaymentMethod(**method)  # type: ignore[arg-type]
    assert refused.value.code == "invalid_payment_method"


def body(payment_method: dict[str, object]) -> CheckoutIn:
    import msgspec

    raw = {
        "cart_id": "crt_1",
        "shipping_address": {"address_id": "adr_1"},
        "payment_method": payment_method,
    }
    return msgspec.convert(raw, CheckoutIn)


def test_the_http_body_maps_to_the_domain_choice() -> None:
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}
    assert body({"type": "wallet"}).to_domain().payment.wallet
    split = body({"type": "card", "token": "tok_1", "wallet_amount_minor": 700}).to_domain()
    assert (split.payment.token, split.payment.wallet_minor) == ("tok_1", 700)
    emi = body({"type": "emi", "card": card, "emi": {"months": 3, "bank": "hdfc"}}).to_domain()
    assert emi.payment.emi == (3, "hdfc") and emi.payment.card is not None
    bad_bodies: list[dict[str, object]] = [
        {"type": "emi", "card": card},
        {"type": "card", "card": card, "emi": {"months": 3, "bank": "hdfc"}},
        {"type": "wallet", "wallet_amount_minor": 5},
    ]
    for bad in bad_bodies:
        with pytest.raises(InvalidRequest):
            body(bad).to_domain()


def test_the_saga_reads_its_method_from_the_instrument() -> None:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    saga = Checkout("chk_1", "cus_1", "crt_1", "k", "eu", now, now)
    for token, method in (
        ("tok_1", "card"),
        ("wallet:cus_1", "wallet"),
        ("split:500:tok_1", "wallet"),
        ("emi:6:hdfc:tok_1", "emi"),
    ):
        saga.instrument_token = token
        assert saga.payment_method == method
