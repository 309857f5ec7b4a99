"""3-D Secure step-up through HTTP on the real stack: the checkout answers 202
``requires_action`` with the challenge's URL, and completes when the shopper confirms it,
fails when they fail it, or is voided and cancelled (stock back) when nobody answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine

from souk.services import Services
from tests.integration.http import admin_headers, register
from tests.integration.purchase.async_payment_helpers import THREE_DS, age_action, payment_row
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    filled_cart,
    order_of,
    outbox_types,
    reservations_of,
    saga_of,
    stock_of,
    stock_sku,
)

UNITS = 4


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    """One approved EU seller for the module's products."""
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


def start(client: Any, seller: dict[str, Any]) -> tuple[dict[str, Any], str, str, Any]:
    """A shopper whose checkout with the 3-D Secure card waits on the challenge."""
    sku = stock_sku(client, seller, UNITS)
    shopper = register(client)
    body = checkout_body(filled_cart(client, shopper, {sku: 1}), number=THREE_DS)
    key = str(uuid.uuid4())
    response = client.post(
        "/v1/checkout", json=body, headers={**shopper["headers"], "Idempotency-Key": key}
    )
    assert response.status_code == 202, response.text
    return shopper, sku, key, response


def replay(client: Any, shopper: dict[str, Any], key: str, cart_id: str) -> Any:
    body = checkout_body(cart_id, number=THREE_DS)
    return client.post(
        "/v1/checkout", json=body, headers={**shopper["headers"], "Idempotency-Key": key}
    )


def test_a_challenged_card_waits_202_then_confirming_it_pays_the_order(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    shopper, sku, key, response = start(client, seller)
    answer = response.json()
    checkout_id, payment_id = answer["checkout_id"], answer["payment"]["payment_id"]
    assert answer["status"] == "requires_action"
    action = answer["next_action"]
    assert action["type"] == "three_d_secure" and action["method"] == "POST"
    assert action["url"] == f"/v1/payments/{payment_id}/3ds/confirm"
    assert action["expires_at"]
    # Waiting: the order placed, the stock sold to it, nothing held or charged yet.
    assert saga_of(engine, checkout_id)["stage"] == "action_required"
    assert order_of(engine, checkout_id)["status"] == "placed"  # type: ignore[index]
    assert reservations_of(engine, checkout_id) == ["committed"]
    assert payment_row(engine, payment_id)["status"] == "pending"
    assert outbox_types(engine, payment_id) == ["payment.action_required"]
    cart_id = saga_of(engine, checkout_id)["cart_id"]
    # A retry while waiting gets the same 202.
    again = replay(client, shopper, key, cart_id)
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["next_action"] == action
    # Nobody else answers a shopper's challenge.
    other = register(client)
    assert client.post(action["url"], json={}, headers=other["headers"]).status_code == 404

    confirmed = client.post(action["url"], json={"outcome": "approve"}, headers=shopper["headers"])

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "captured"
    saga = saga_of(engine, checkout_id)
    assert (saga["status"], saga["stage"]) == ("completed", "completed")
    order = order_of(engine, checkout_id)
    assert order is not None and order["status"] == "paid"
    assert order["paid_minor"] == order["grand_total_minor"]
    assert stock_of(engine, sku) == (UNITS - 1, 0)
    assert outbox_types(engine, payment_id) == [
        "payment.action_required",
        "payment.authorized",
        "payment.captured",
    ]
    final = replay(client, shopper, key, cart_id)
    assert final.status_code == 201, final.text
    assert final.json()["status"] == "completed" and "next_action" not in final.json()
    cart = client.get(f"/v1/carts/{cart_id}", headers=shopper["headers"])
    assert cart.json()["lines"] == []
    # Answered: confirming again is a no-op, the challenge waits on nothing.
    twice = client.post(action["url"], json={}, headers=shopper["headers"])
    assert twice.status_code == 200 and twice.json()["status"] == "captured"
    assert outbox_types(engine, payment_id).count("payment.captured") == 1


def test_failing_the_challenge_is_402_cancels_the_order_and_gives_the_stock_back(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    shopper, sku, key, response = start(client, seller)
    checkout_id = response.json()["checkout_id"]
    url = response.json()["next_action"]["url"]

    failed = client.post(url, json={"outcome": "fail"}, headers=shopper["headers"])

    assert failed.status_code == 200, failed.text
    assert (failed.json()["status"], failed.json()["decline_code"]) == (
        "declined",
        "authentication_failed",
    )
    saga = saga_of(engine, checkout_id)
    assert saga["status"] == "failed"
    assert order_of(engine, checkout_id)["status"] == "cancelled"  # type: ignore[index]
    assert stock_of(engine, sku) == (UNITS, 0)
    final = replay(client, shopper, key, saga["cart_id"])
    assert final.status_code == 402
    assert final.headers["content-type"].startswith("application/problem+json")
    assert final.json()["decline_code"] == "authentication_failed"
    # The cart keeps its lines: it can be bought again.
    cart = client.get(f"/v1/carts/{saga['cart_id']}", headers=shopper["headers"])
    assert [line["sku"] for line in cart.json()["lines"]] == [sku]


def test_an_abandoned_challenge_expires_voided_with_the_stock_back_and_the_order_cancelled(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    shopper, sku, key, response = start(client, seller)
    checkout_id = response.json()["checkout_id"]
    payment_id = response.json()["payment"]["payment_id"]
    url = response.json()["next_action"]["url"]
    # Before the deadline recovery leaves it waiting.
    services["checkout"].recover()
    assert saga_of(engine, checkout_id)["stage"] == "action_required"

    age_action(engine, checkout_id)
    services["checkout"].recover()

    saga = saga_of(engine, checkout_id)
    assert (saga["status"], saga["payment_status"]) == ("failed", "voided")
    assert order_of(engine, checkout_id)["status"] == "cancelled"  # type: ignore[index]
    assert stock_of(engine, sku) == (UNITS, 0)
    assert payment_row(engine, payment_id)["status"] == "voided"
    assert "payment.captured" not in outbox_types(engine, payment_id)
    final = replay(client, shopper, key, saga["cart_id"])
    assert final.status_code == 409
    assert final.json()["code"] == "payment_action_expired"
    # Too late to confirm: the challenge was closed at the gateway.
    late = client.post(url, json={}, headers=shopper["headers"])
    assert late.status_code == 409
    assert late.json()["code"] == "no_action_pending"
    assert payment_row(engine, payment_id)["status"] == "voided"
