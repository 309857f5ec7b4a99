"""Where a checkout comes from, over HTTP on the real stack: ``X-Device-Id``, the client's
address (``X-Forwarded-For`` believed from trusted proxies only), its region and the card's
stable id reach the ``checkout.started`` event in the outbox."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from serving.app import create_app
from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    filled_cart,
    post_checkout,
    stock_sku,
)
from transactional.checkout.dto import ClientNetworks

CONTEXT_FIELDS = ("device_id", "client_ip", "ip_region", "instrument_id")


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    """One approved seller for the module's products."""
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


def started_of(engine: Engine, checkout_id: str) -> dict[str, Any]:
    """The payload of the checkout's checkout.started event in the outbox."""
    with engine.connect() as connection:
        value = connection.execute(
            text(
                "SELECT value FROM outbox WHERE message_key = :key "
                "AND event_type = 'checkout.started'"
            ),
            {"key": checkout_id},
        ).scalar_one()
    payload: dict[str, Any] = json.loads(bytes(value))["payload"]
    return payload


def context_of(engine: Engine, checkout_id: str) -> dict[str, Any]:
    payload = started_of(engine, checkout_id)
    return {name: payload.get(name) for name in CONTEXT_FIELDS}


def ready_cart(client: Any, seller: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A new shopper with a cart holding one unit of a fresh SKU."""
    sku = stock_sku(client, seller, 5, price_minor=1500)
    shopper = register(client)
    return shopper, filled_cart(client, shopper, {sku: 1})


def post_from(
    app: Litestar,
    peer: str,
    shopper: Mapping[str, Any],
    body: Mapping[str, Any],
    headers: Mapping[str, str],
) -> httpx.Response:
    """POST /v1/checkout to ``app`` from a client whose socket address is ``peer``."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://souk.test") as http:
            return await http.post(
                "/v1/checkout",
                json=dict(body),
                headers={
                    **shopper["headers"],
                    "Idempotency-Key": str(uuid.uuid4()),
                    **headers,
                },
            )

    return asyncio.run(send())


def test_a_checkout_through_a_loopback_proxy_carries_device_address_region_and_card(
    live_url: str, client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    with httpx.Client(base_url=live_url, timeout=60) as http:  # a real socket on loopback
        shopper, cart_id = ready_cart(http, seller)
        response = http.post(
            "/v1/checkout",
            json=checkout_body(cart_id),
            headers={
                **shopper["headers"],
                "Idempotency-Key": str(uuid.uuid4()),
                "X-Device-Id": "dev-it.1:a_b",
                "X-Forwarded-For": "10.2.3.4",
            },
        )
        assert response.status_code == 201, response.text
        first = context_of(engine, response.json()["checkout_id"])
        assert first["device_id"] == "dev-it.1:a_b"
        assert first["client_ip"] == "10.2.3.4"
        assert first["ip_region"] == "us"
        assert first["instrument_id"] and first["instrument_id"].startswith("card_")
        assert "4242" not in first["instrument_id"]

        # Another customer paying with the same card: the same instrument id, though the
        # vault gives each customer a token of their own.
        other, other_cart = ready_cart(http, seller)
        again = http.post(
            "/v1/checkout",
            json=checkout_body(other_cart),
            headers={**other["headers"], "Idempotency-Key": str(uuid.uuid4())},
        )
        assert again.status_code == 201, again.text
        second = context_of(engine, again.json()["checkout_id"])
        assert second["instrument_id"] == first["instrument_id"]
        assert second["device_id"] is None and second["client_ip"] == "127.0.0.1"
        assert second["ip_region"] is None  # loopback is in no region's range


def test_the_app_believes_forwarded_for_from_a_trusted_peer_only(
    app: Litestar, client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    shopper, cart_id = ready_cart(client, seller)
    trusted = post_from(
        app,
        "127.0.0.1",
        shopper,
        checkout_body(cart_id),
        {"X-Device-Id": "dev-9", "X-Forwarded-For": "6.6.6.6, 10.1.0.9"},
    )
    assert trusted.status_code == 201, trusted.text
    seen = context_of(engine, trusted.json()["checkout_id"])
    # The nearest hop our proxy reported, not what the client wrote in front of it.
    assert (seen["device_id"], seen["client_ip"], seen["ip_region"]) == ("dev-9", "10.1.0.9", "eu")

    shopper, cart_id = ready_cart(client, seller)
    untrusted = post_from(
        app,
        "203.0.113.9",
        shopper,
        checkout_body(cart_id),
        {"X-Device-Id": "dev-9", "X-Forwarded-For": "10.1.0.9"},
    )
    assert untrusted.status_code == 201, untrusted.text
    seen = context_of(engine, untrusted.json()["checkout_id"])
    assert (seen["client_ip"], seen["ip_region"]) == ("203.0.113.9", None)


def test_an_app_can_be_given_its_own_networks(
    services: Services, client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    networks = ClientNetworks.of(["203.0.113.0/24"], {"in": ["198.51.100.0/24"]})
    # No lifespan is run on this app: closing it would close the shared services.
    own = create_app(replace(services, provided={**services.provided, "client_networks": networks}))
    shopper, cart_id = ready_cart(client, seller)
    proxied = post_from(
        own, "203.0.113.7", shopper, checkout_body(cart_id), {"X-Forwarded-For": "198.51.100.4"}
    )
    assert proxied.status_code == 201, proxied.text
    seen = context_of(engine, proxied.json()["checkout_id"])
    assert (seen["client_ip"], seen["ip_region"]) == ("198.51.100.4", "in")

    shopper, cart_id = ready_cart(client, seller)
    loopback = post_from(
        own, "127.0.0.1", shopper, checkout_body(cart_id), {"X-Forwarded-For": "198.51.100.4"}
    )
    assert loopback.status_code == 201, loopback.text
    seen = context_of(engine, loopback.json()["checkout_id"])
    assert (seen["client_ip"], seen["ip_region"]) == ("127.0.0.1", None)  # not trusted here


@pytest.mark.parametrize("device", ["", "has space", "x" * 129, "dev/1", "dév".encode()])
def test_a_malformed_device_id_is_a_400_and_uses_up_nothing(
    client: Any, engine: Engine, seller: dict[str, Any], device: str | bytes
) -> None:
    shopper, cart_id = ready_cart(client, seller)
    key = str(uuid.uuid4())
    headers = {**shopper["headers"], "Idempotency-Key": key, "X-Device-Id": device}
    response = client.post("/v1/checkout", json=checkout_body(cart_id), headers=headers)
    problem = assert_problem(response, 400, "device_id_invalid")
    assert "X-Device-Id" in problem["detail"]
    # Refused before anything ran: the same key then checks out.
    retried = post_checkout(client, shopper, checkout_body(cart_id), key=key)
    assert retried.status_code == 201, retried.text
    assert context_of(engine, retried.json()["checkout_id"])["device_id"] is None
