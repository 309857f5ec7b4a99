"""Request fingerprints, the HTTP request body's mapping to the domain, and stored responses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import msgspec
import pytest

from tests.unit.checkout.fakes import ADDRESS, CARD
from transactional.checkout.dto import CheckoutIn, render
from transactional.checkout.model import (
    Checkout,
    CheckoutRequest,
    Failure,
    PaymentMethod,
    card_fingerprint,
    request_fingerprint,
)
from transactional.inventory.model import InsufficientStock
from transactional.shared.errors import InvalidRequest

KEY = b"card-key"


def fingerprint(req: CheckoutRequest, key: bytes = KEY) -> str:
    return request_fingerprint(req.canonical(key))


def base() -> CheckoutRequest:
    return CheckoutRequest(cart_id="crt_1", payment=PaymentMethod(card=CARD), address=ADDRESS)


def test_the_fingerprint_covers_every_field_and_never_the_raw_card() -> None:
    req = base()
    canonical = req.canonical(KEY)
    assert CARD.number not in repr(canonical) and CARD.cvc not in repr(canonical)
    assert fingerprint(req) == fingerprint(base())
    variants = [
        replace(req, cart_id="crt_2"),
        replace(req, address=replace(ADDRESS, line2="Flat 3")),
        replace(req, address=replace(ADDRESS, phone="+49 1")),
        replace(req, payment=PaymentMethod(card=replace(CARD, exp_year=2041))),
        replace(req, payment=PaymentMethod(card=replace(CARD, cvc="124"))),
        replace(req, payment=PaymentMethod(card=replace(CARD, holder="A L"))),
        replace(req, payment=PaymentMethod(token="tok_1")),
        CheckoutRequest(cart_id="crt_1", payment=PaymentMethod(card=CARD), address_id="adr_1"),
    ]
    prints = {fingerprint(v) for v in variants} | {fingerprint(req)}
    assert len(prints) == len(variants) + 1
    # Keyed: without the server's key the card part cannot be brute-forced offline.
    assert card_fingerprint(CARD, KEY) != card_fingerprint(CARD, b"other")
    assert card_fingerprint(replace(CARD, number="4242 4242 4242 4242"), KEY) == card_fingerprint(
        CARD, KEY
    )


def test_the_fingerprint_does_not_depend_on_key_order() -> None:
    assert request_fingerprint({"a": 1, "b": [1, {"c": 2, "d": 3}]}) == request_fingerprint(
        {"b": [1, {"d": 3, "c": 2}], "a": 1}
    )


def body(**changes: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "cart_id": "crt_1",
        "shipping_address": {
            "full_name": "Ada L",
            "line1": "1 Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
        "payment_method": {
            "type": "card",
            "card": {"number": CARD.number, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        },
    }
    payload.update(changes)
    return payload


def decode(payload: dict[str, object]) -> CheckoutRequest:
    return msgspec.convert(payload, CheckoutIn).to_domain()


def test_the_request_body_maps_to_the_domain() -> None:
    req = decode(body())
    assert req.address == ADDRESS and req.payment.card == replace(CARD, holder=None)
    saved = decode(body(shipping_address={"address_id": "adr_1"}))
    assert (saved.address_id, saved.address) == ("adr_1", None)
    token = decode(body(payment_method={"type": "card", "token": "tok_1"}))
    assert token.payment == PaymentMethod(token="tok_1")
    assert CARD.number not in repr(msgspec.convert(body(), CheckoutIn))


@pytest.mark.parametrize(
    "payload",
    [
        body(shipping_address={"address_id": "adr_1", "city": "Paris"}),
        body(shipping_address={"full_name": "A", "city": "Paris"}),
        body(shipping_address={}),
        body(payment_method={"type": "card"}),
        body(
            payment_method={
                "type": "card",
                "token": "tok",
                "card": {"number": CARD.number, "exp_month": 1, "exp_year": 2040, "cvc": "123"},
            }
        ),
    ],
    ids=["both-addresses", "half-address", "no-address", "no-card", "card-and-token"],
)
def test_contradictory_or_incomplete_choices_are_422(payload: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        decode(payload)


@pytest.mark.parametrize(
    "payload",
    [
        body(cart_id=""),
        body(extra=1),
        body(payment_method={"type": "paypal", "token": "x"}),
        body(
            payment_method={
                "type": "card",
                "card": {"number": "42", "exp_month": 13, "exp_year": 2040, "cvc": "1"},
            }
        ),
        {k: v for k, v in body().items() if k != "payment_method"},
    ],
)
def test_malformed_bodies_fail_validation(payload: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(payload, CheckoutIn)


def test_a_failure_renders_as_the_problem_the_api_returns() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    checkout = Checkout("chk_1", "cus_1", "crt_1", "k", "eu", now, now)
    error = InsufficientStock(["sku_b", "sku_a"])
    checkout.failed(Failure("reserve", error.code, error.detail, dict(error.extra)), (), now)
    stored = render(checkout, error)
    assert stored.status == 409
    assert stored.body == {
        "type": "https://souk.dev/problems/insufficient_stock",
        "title": "Conflict",
        "status": 409,
        "detail": error.detail,
        "instance": "/v1/checkout",
        "code": "insufficient_stock",
        "checkout_id": "chk_1",
        "step": "reserve",
        "skus": ["sku_a", "sku_b"],
    }
