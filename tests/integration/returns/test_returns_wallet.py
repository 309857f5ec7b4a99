"""A wallet-paid order's return goes back to the wallet (the original method): the wallet
gateway's refund credits the balance, once, through the payment service."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine

from souk.services import Services
from tests.integration.http import admin_headers, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import ADDRESS, filled_cart, stock_sku
from tests.integration.returns.helpers import (
    events_of,
    line_of,
    payment_row,
    refunds_of,
)

APPROVED = "4242424242424242"


def balance(client: Any, shopper: dict[str, Any]) -> int:
    wallet = client.get("/v1/wallet?currency=EUR", headers=shopper["headers"])
    assert wallet.status_code == 200, wallet.text
    return int(wallet.json()["balance_minor"])


def test_a_wallet_paid_return_is_credited_back_to_the_wallet(
    client: Any, engine: Engine, services: Services
) -> None:
    admin = admin_headers(services.tokens)
    seller = approved_seller(client, admin)
    shopper = register(client)
    topped = client.post(
        "/v1/wallet/top-ups",
        json={
            "amount_minor": 10_000,
            "currency": "EUR",
            "card": {"number": APPROVED, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        },
        headers={**shopper["headers"], "Idempotency-Key": str(uuid.uuid4())},
    )
    assert topped.status_code == 201, topped.text
    sku = stock_sku(client, seller, 5, price_minor=1500)
    paid = client.post(
        "/v1/checkout",
        json={
            "cart_id": filled_cart(client, shopper, {sku: 2}),
            "shipping_address": ADDRESS,
            "payment_method": {"type": "wallet"},
        },
        headers={**shopper["headers"], "Idempotency-Key": str(uuid.uuid4())},
    )
    assert paid.status_code == 201, paid.text
    order_id = paid.json()["order_id"]
    for to in ("packed", "shipped", "delivered"):
        moved = client.post(
            f"/v1/admin/orders/{order_id}/transitions",
            json={"to": to, "cause": "test fulfilment"},
            headers=admin,
        )
        assert moved.status_code == 200, moved.text
    order = client.get(f"/v1/orders/{order_id}", headers=shopper["headers"]).json()
    before = balance(client, shopper)
    line_id = line_of(order, sku)["line_id"]
    asked = client.post(
        f"/v1/orders/{order_id}/returns",
        json={"lines": [{"line_id": line_id, "quantity": 1}]},
        headers=shopper["headers"],
    )
    assert asked.status_code == 201, asked.text
    return_id = asked.json()["return_id"]
    assert client.post(f"/v1/returns/{return_id}/approve", json={}, headers=admin).is_success
    done = client.post(
        f"/v1/returns/{return_id}/receive",
        json={"lines": [{"line_id": line_id, "resellable": 1}]},
        headers=admin,
    )
    assert done.status_code == 200, done.text
    refund = done.json()["refund"]
    amount = refund["amount"]["amount_minor"]
    assert refund["method"] == "wallet_credit" and amount > 0
    assert balance(client, shopper) == before + amount
    assert refunds_of(engine, order["payment_id"]) == [amount]
    assert payment_row(engine, order["payment_id"])["refunded_minor"] == amount
    issued = [e for e in events_of(engine, return_id) if e["type"] == "refund.issued"]
    assert issued[0]["payload"]["method"] == "wallet_credit"
