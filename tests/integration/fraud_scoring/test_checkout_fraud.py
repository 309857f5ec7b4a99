"""The fraud screen inside the checkout saga, over HTTP, with signals in the real Feast
online store: a decline charges nothing, a review holds the order for an admin who approves
(captured, paid) or rejects (voided, cancelled), and every alert goes through the outbox."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from serving.fraud.demo import demo_lines
from souk.services import Services
from souk.simulation.report import FraudLabel
from souk.simulation.runner import luhn_number
from souk.stack.endpoints import Endpoints
from tests.integration.fraud_scoring.signals import push, seeded_store, shared_row
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    ADDRESS,
    filled_cart,
    order_of,
    outbox_types,
    saga_of,
    stock_of,
    stock_sku,
)
from transactional.checkout.model import Card, instrument_id_of


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


@pytest.fixture(scope="module")
def store(services: Services, endpoints: Endpoints) -> Any:
    return seeded_store(services, endpoints.redis_url)


class Suspect:
    """A shopper paying with a card of its own (no other test's card) from its own device."""

    def __init__(self, client: Any, services: Services) -> None:
        self.shopper = register(client)
        self.device = f"dev-fraud-{secrets.token_hex(6)}"
        self.number = luhn_number(f"fraud-test/{uuid.uuid4()}")
        key = hashlib.sha256(
            b"souk-checkout-card:" + services.settings.jwt_secret.encode()
        ).digest()  # as souk.services keys the checkout's card ids
        self.instrument = instrument_id_of(Card(self.number, 12, 2041, "123"), key)

    def checkout(self, client: Any, cart_id: str) -> Any:
        body = {
            "cart_id": cart_id,
            "shipping_address": dict(ADDRESS),
            "payment_method": {
                "type": "card",
                "card": {"number": self.number, "exp_month": 12, "exp_year": 2041, "cvc": "123"},
            },
        }
        headers = {
            **self.shopper["headers"],
            "Idempotency-Key": str(uuid.uuid4()),
            "X-Device-Id": self.device,
        }
        return client.post("/v1/checkout", json=body, headers=headers)


def alerts_of(engine: Engine, checkout_id: str) -> list[dict[str, Any]]:
    """fraud.alert_raised payloads in the outbox whose subject is the checkout."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT value FROM outbox WHERE event_type = 'fraud.alert_raised' "
                "AND position(CAST(:id AS bytea) IN value) > 0 ORDER BY id"
            ),
            {"id": checkout_id},
        ).scalars()
        payloads = [json.loads(bytes(raw))["payload"] for raw in rows]
    return [p for p in payloads if p.get("subject_id") == checkout_id]


def gateway_calls(engine: Engine, token: str) -> list[tuple[str, int]]:
    """(status, captured) of every charge the sandbox processor holds for a vault token."""
    with engine.connect() as connection:
        return [
            (str(row.status), int(row.captured_minor or 0))
            for row in connection.execute(
                text(
                    "SELECT status, captured_minor FROM sandbox_gateway_charges "
                    "WHERE token = :token"
                ),
                {"token": token},
            )
        ]


def test_a_checkout_declined_for_fraud_is_402_and_charges_nothing(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], store: Any
) -> None:
    suspect = Suspect(client, services)
    # The card is on three accounts today and the device tried four cards: 0.91 ≥ 0.9.
    push(
        store,
        "instrument_fraud_signals",
        shared_row("instrument_id", suspect.instrument, distinct_customers_24h=3),
    )
    push(
        store,
        "device_fraud_signals",
        shared_row("device_id", suspect.device, distinct_instruments_24h=4),
    )
    sku = stock_sku(client, seller, 5)
    cart_id = filled_cart(client, suspect.shopper, {sku: 2})

    response = suspect.checkout(client, cart_id)

    problem = assert_problem(response, 402, "fraud_suspected")
    assert problem["decline_code"] == "fraud_suspected" and problem["step"] == "payment"
    assert "rules" not in problem and "score" not in problem  # nothing to learn from
    checkout_id = problem["checkout_id"]
    saga = saga_of(engine, checkout_id)
    assert (saga["status"], saga["payment_id"], saga["order_id"]) == ("failed", None, None)
    assert saga["fraud"]["decision"] == "decline"
    assert set(saga["fraud"]["rules"]) == {"instrument_many_customers", "device_many_instruments"}
    assert order_of(engine, checkout_id) is None  # no order, no payment, no hold
    assert gateway_calls(engine, saga["instrument_token"]) == []  # the processor saw nothing
    assert stock_of(engine, sku) == (5, 0)
    cart = client.get(f"/v1/carts/{cart_id}", headers=suspect.shopper["headers"]).json()
    assert [line["quantity"] for line in cart["lines"]] == [2]  # the cart keeps its lines
    assert outbox_types(engine, checkout_id) == ["checkout.started", "checkout.failed"]
    (alert,) = alerts_of(engine, checkout_id)
    assert (alert["action"], alert["severity"], alert["customer_id"]) == (
        "block",
        "critical",
        suspect.shopper["customer_id"],
    )
    assert alert["score"] >= services.settings.fraud_decline_threshold

    replay = suspect.checkout(client, cart_id)  # a new key: screened again
    assert_problem(replay, 402, "fraud_suspected")
    assert stock_of(engine, sku) == (5, 0)


def _held(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], store: Any
) -> tuple[Suspect, str, str, dict[str, Any]]:
    """A checkout sent to review (four cards on its device: 0.7), answered 201 on_hold."""
    suspect = Suspect(client, services)
    push(
        store,
        "device_fraud_signals",
        shared_row("device_id", suspect.device, distinct_instruments_24h=4),
    )
    sku = stock_sku(client, seller, 5, price_minor=2500)
    cart_id = filled_cart(client, suspect.shopper, {sku: 2})
    response = suspect.checkout(client, cart_id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "on_hold"
    checkout_id = body["checkout_id"]
    saga = saga_of(engine, checkout_id)
    assert (saga["status"], saga["stage"], saga["payment_status"]) == (
        "pending",
        "held",
        "authorized",
    )
    order = order_of(engine, checkout_id)
    assert order is not None and order["status"] == "on_hold" and order["paid_minor"] is None
    assert gateway_calls(engine, saga["instrument_token"]) == [("authorized", 0)]
    assert stock_of(engine, sku) == (3, 0)  # sold to the held order: no reservation to expire
    (alert,) = alerts_of(engine, checkout_id)
    assert (alert["action"], alert["order_id"], alert["rules"]) == (
        "hold",
        order["order_id"],
        ["device_many_instruments"],
    )
    shown = client.get(f"/v1/orders/{order['order_id']}", headers=suspect.shopper["headers"])
    assert shown.json()["status"] == "on_hold"
    cancel = client.post(
        f"/v1/orders/{order['order_id']}/cancel",
        json={"reason": "changed my mind"},
        headers=suspect.shopper["headers"],
    )
    assert_problem(cancel, 409, "checkout_in_progress")  # under review: the reviewer decides
    return suspect, sku, checkout_id, order


def test_review_holds_the_order_and_an_admin_approval_captures_it(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], store: Any
) -> None:
    suspect, sku, checkout_id, order = _held(client, engine, services, seller, store)
    review = f"/v1/admin/orders/{order['order_id']}/review"

    forbidden = client.post(
        review, json={"decision": "approve"}, headers=suspect.shopper["headers"]
    )
    assert_problem(forbidden, 403)
    approved = client.post(
        review, json={"decision": "approve"}, headers=admin_headers(services.tokens)
    )

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "paid"
    saga = saga_of(engine, checkout_id)
    assert (saga["status"], saga["payment_status"]) == ("completed", "captured")
    assert gateway_calls(engine, saga["instrument_token"]) == [("captured", 5000)]
    assert stock_of(engine, sku) == (3, 0)
    assert "checkout.completed" in outbox_types(engine, checkout_id)
    again = client.post(review, json={"decision": "reject"}, headers=admin_headers(services.tokens))
    assert_problem(again, 409, "order_not_on_hold")


def test_review_rejected_by_an_admin_voids_the_hold_and_cancels_the_order(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], store: Any
) -> None:
    suspect, sku, checkout_id, order = _held(client, engine, services, seller, store)

    rejected = client.post(
        f"/v1/admin/orders/{order['order_id']}/review",
        json={"decision": "reject", "note": "card reported stolen"},
        headers=admin_headers(services.tokens),
    )

    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "cancelled"
    saga = saga_of(engine, checkout_id)
    assert (saga["status"], saga["failure"]["code"]) == ("failed", "fraud_suspected")
    assert gateway_calls(engine, saga["instrument_token"]) == [("voided", 0)]
    assert stock_of(engine, sku) == (5, 0)  # back on sale
    assert "order.cancelled" in outbox_types(engine, order["order_id"])
    replayed = client.get(f"/v1/checkout/{checkout_id}", headers=suspect.shopper["headers"])
    assert replayed.json()["failure"]["code"] == "fraud_suspected"


def test_post_fraud_score_answers_with_reasons_and_refuses_bad_input(
    client: Any, services: Services, store: Any
) -> None:
    device = f"dev-fraud-{secrets.token_hex(6)}"
    push(store, "device_fraud_signals", shared_row("device_id", device, distinct_instruments_24h=5))
    admin = admin_headers(services.tokens)
    body = {
        "customer_id": f"cus-{secrets.token_hex(4)}",
        "amount_minor": 4200,
        "currency": "EUR",
        "items": [{"sku": "sku-1", "quantity": 1, "unit_price_minor": 4200}],
        "device_id": device,
        "client_ip": "10.3.0.9",
        "shipping_country": "DE",
        "account_region": "eu",
        "account_created_at": "2025-01-01T00:00:00Z",
    }

    scored = client.post("/v1/fraud/score", json=body, headers=admin)

    assert scored.status_code == 200, scored.text
    answer = scored.json()
    assert answer["decision"] == "review"
    assert answer["reasons"]["rules"] == ["ip_region_mismatch", "device_many_instruments"]
    assert answer["features"]["device_instruments_24h"] == 5
    assert answer["model_version"] is None and 0 <= answer["score"] <= 1
    assert_problem(
        client.post("/v1/fraud/score", json=body, headers=register(client)["headers"]), 403
    )
    assert_problem(client.post("/v1/fraud/score", json=body), 401)
    assert_problem(
        client.post("/v1/fraud/score", json={**body, "amount_minor": -1}, headers=admin), 400
    )
    assert_problem(
        client.post("/v1/fraud/score", json={**body, "client_ip": "nope"}, headers=admin),
        422,
        "invalid_client_ip",
    )
    assert_problem(
        client.post("/v1/fraud/score", json={**body, "shipping_country": "ZZ"}, headers=admin),
        422,
        "invalid_shipping_country",
    )
    schema = client.get("/schema/openapi.json").json()
    operation = schema["paths"]["/v1/fraud/score"]["post"]
    assert operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert schema["components"]["schemas"]["ScoreIn"]["examples"]


def test_an_unreviewed_hold_expires_through_recovery_voided_and_cancelled(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], store: Any
) -> None:
    _suspect, sku, checkout_id, _order = _held(client, engine, services, seller, store)
    with engine.begin() as connection:  # the review deadline passed
        connection.execute(
            text(
                "UPDATE checkouts SET lease_until = now() - interval '1 second' "
                "WHERE checkout_id = :id"
            ),
            {"id": checkout_id},
        )

    services["checkout"].recover()

    saga = saga_of(engine, checkout_id)
    assert (saga["status"], saga["failure"]["code"]) == ("failed", "fraud_review_expired")
    assert order_of(engine, checkout_id)["status"] == "cancelled"  # type: ignore[index]
    assert gateway_calls(engine, saga["instrument_token"]) == [("voided", 0)]
    assert stock_of(engine, sku) == (5, 0)


def test_the_demo_lines_count_the_screens_decisions_against_labels(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any], store: Any
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    suspect = Suspect(client, services)
    push(
        store,
        "instrument_fraud_signals",
        shared_row("instrument_id", suspect.instrument, distinct_customers_24h=4),
    )
    push(
        store,
        "device_fraud_signals",
        shared_row("device_id", suspect.device, distinct_instruments_24h=4),
    )
    sku = stock_sku(client, seller, 5)
    assert (
        suspect.checkout(client, filled_cart(client, suspect.shopper, {sku: 1})).status_code == 402
    )
    honest = Suspect(client, services)  # a clean card and device
    assert honest.checkout(client, filled_cart(client, honest.shopper, {sku: 1})).status_code == 201

    lines = demo_lines(
        engine, [FraudLabel(0, suspect.shopper["customer_id"], ("shared_card",))], since
    )

    assert "caught 1 of 1 labelled, missed 0" in lines[3]
    assert "  shared_card: caught 1 of 1" in lines
