"""The HTTP edge keeps its contract: 400 not 500 for bad bytes, a `code` on every problem,
bodies decoded as strictly as the OpenAPI document says, one answer to a foreign currency."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.routes import HTTPRoute
from litestar.testing import TestClient, create_test_client

from serving.problems import EXCEPTION_HANDLERS
from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product

WAREHOUSE = "wh_eu_1"
PROBLEMS = "https://souk.dev/problems/"


def body_routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path with sample path parameters) of every handler that decodes a JSON body."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"x_\1", route.path)
        for handler in route.route_handlers:
            if handler.parsed_data_field is None:
                continue
            found.extend((method, path) for method in sorted(handler.http_methods))
    return sorted(found)


def assert_coded(response: Any, status: int, code: str) -> dict[str, Any]:
    """A problem with this status whose `code` and `type` name the same stable reason."""
    body = assert_problem(response, status, code)
    assert body["type"] == PROBLEMS + code, body
    return body


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    """An approved EU seller shared by this module's tests."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield approved_seller(client, admin_headers(services.tokens))


def stocked_sku(client: Any, seller: Mapping[str, Any], units: int = 20) -> str:
    """A fresh SKU priced in EUR and USD with ``units`` on hand."""
    sku = fresh_sku("HTTP")
    list_product(client, seller, skus_prices={sku: {"EUR": 1000, "USD": 1100}})
    stocked = client.put(
        f"/v1/inventory/{sku}/warehouses/{WAREHOUSE}",
        json={"on_hand": units},
        headers=seller["headers"],
    )
    assert stocked.status_code == 200, stocked.text
    return sku


# -- 1. invalid UTF-8 inside a JSON string ---------------------------------------------------


def test_invalid_utf8_in_a_json_string_is_400_on_every_body_route(
    client: Any, app: Litestar, services: Services
) -> None:
    routes = body_routes(app)
    # The app's handlers and the OpenAPI document agree on which operations take a body.
    document = client.get("/schema/openapi.json").json()["paths"]
    documented = sorted(
        (method.upper(), re.sub(r"\{(\w+)\}", r"x_\1", path))
        for path, item in document.items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "requestBody" in operation
    )
    assert routes == documented
    assert {("POST", "/v1/customers"), ("POST", "/v1/carts"), ("POST", "/v1/checkout")} <= set(
        routes
    )
    assert len(routes) >= 15

    shopper = register(client)["headers"]
    admin = admin_headers(services.tokens)
    for method, path in routes:
        headers = {
            "content-type": "application/json",
            **(admin if path.startswith("/v1/admin/") else shopper),
        }
        # The raw byte 0xff inside a JSON string: in a value, in a key (which every body
        # type decodes, known field or not), and bare (no JSON at all).
        for content in (b'{"currency":"\xff"}', b'{"\xff":"x"}', b"\xff"):
            response = client.request(method, path, content=content, headers=headers)
            body = assert_coded(response, 400, "validation_failed")
            assert body["instance"] == path, body
        key = client.request(method, path, content=b'{"\xff":"x"}', headers=headers)
        assert "UTF-8" in key.json()["detail"], (method, path, key.text)


# -- 2. framework errors carry a stable code ---------------------------------------------------


def test_unknown_route_is_route_not_found(client: Any) -> None:
    body = assert_coded(client.get("/v1/nowhere"), 404, "route_not_found")
    assert body["instance"] == "/v1/nowhere"


def test_wrong_method_is_method_not_allowed_with_allow_header(client: Any) -> None:
    response = client.delete("/v1/categories")
    assert_coded(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


def test_oversized_body_is_payload_too_large(client: Any, app: Litestar) -> None:
    [handler] = [
        handler
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path == "/v1/events"
        for handler in route.route_handlers
        if "POST" in handler.http_methods
    ]
    limit = handler.resolve_request_max_body_size()
    assert limit is not None and limit > 0
    response = client.post(
        "/v1/events",
        content=b'{"events": [' + b" " * limit + b"]}",
        headers={"content-type": "application/json"},
    )
    assert_coded(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (HTTPException(status_code=415), "unsupported_media_type"),
        (NotAuthorizedException(), "unauthorized"),
        (HTTPException(status_code=418), "im_a_teapot"),
        (HTTPException(status_code=409, detail="busy"), "conflict"),
        (HTTPException(status_code=500), "internal_error"),
    ],
)
def test_any_other_framework_error_gets_a_code_from_its_status(
    error: HTTPException, code: str
) -> None:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise error

    with create_test_client([boom], exception_handlers=EXCEPTION_HANDLERS) as plain:
        assert_coded(plain.get("/boom"), error.status_code, code)


# -- 3. strict numbers in bodies -----------------------------------------------------------------


def test_body_integers_are_strict_but_query_integers_still_convert(
    client: Any, seller: dict[str, Any]
) -> None:
    sku = stocked_sku(client, seller)
    created = client.post("/v1/carts")
    assert created.status_code == 201, created.text
    cart_id = created.json()["cart_id"]
    items = f"/v1/carts/{cart_id}/items"
    for quantity in ("1", 1.0, True):
        body = assert_coded(
            client.post(items, json={"sku": sku, "quantity": quantity}), 400, "validation_failed"
        )
        assert [error["key"] for error in body["errors"]] == ["quantity"], body
        assert "quantity" in body["detail"], body
        line = client.patch(f"{items}/{sku}", json={"quantity": quantity})
        assert_coded(line, 400, "validation_failed")
    added = client.post(items, json={"sku": sku, "quantity": 1})
    assert added.status_code == 200, added.text
    assert [(line["sku"], line["quantity"]) for line in added.json()["lines"]] == [(sku, 1)]
    patched = client.patch(f"{items}/{sku}", json={"quantity": 2})
    assert patched.status_code == 200 and patched.json()["item_count"] == 2, patched.text
    # Nested structs are strict too (the card's expiry month of a checkout).
    shopper = register(client)
    nested = client.post(
        "/v1/checkout",
        json={
            "cart_id": cart_id,
            "shipping_address": {"address_id": "adr_x"},
            "payment_method": {
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": "12",
                    "exp_year": 2030,
                    "cvc": "123",
                },
            },
        },
        headers={**shopper["headers"], "Idempotency-Key": "strict-1"},
    )
    body = assert_coded(nested, 400, "validation_failed")
    assert "payment_method.card.exp_month" in body["detail"], body

    # Path and query parameters are strings on the wire: they still convert.
    query = {"seller": seller["seller_id"], "page": "2", "page_size": "1"}
    page = client.get("/v1/products", params=query)
    assert page.status_code == 200, page.text
    assert page.json()["page"] == 2 and page.json()["page_size"] == 1
    assert_coded(client.get("/v1/products", params={"page": "two"}), 400, "validation_failed")


# -- 4. one answer to a currency, guest or signed in ------------------------------------------


def test_cart_currency_is_answered_alike_for_guests_and_customers(client: Any) -> None:
    guest = client.post("/v1/carts", json={"currency": "ZZZ"})
    assert_coded(guest, 422, "unsupported_currency")

    ada = register(client, currency="EUR")
    first = client.post("/v1/carts", headers=ada["headers"])
    assert first.status_code == 201, first.text
    cart_id = first.json()["cart_id"]
    assert first.json()["currency"] == "EUR"

    signed_in = client.post("/v1/carts", json={"currency": "ZZZ"}, headers=ada["headers"])
    assert_coded(signed_in, 422, "unsupported_currency")
    assert signed_in.json()["currency"] == guest.json()["currency"] == "ZZZ"

    other = client.post("/v1/carts", json={"currency": "USD"}, headers=ada["headers"])
    body = assert_coded(other, 409, "cart_currency_mismatch")
    assert (body["cart_id"], body["currency"], body["requested_currency"]) == (
        cart_id,
        "EUR",
        "USD",
    )
    assert cart_id in body["detail"] and "EUR" in body["detail"]

    for payload in ({"currency": "EUR"}, {}, None):
        again = client.post("/v1/carts", json=payload, headers=ada["headers"])
        assert again.status_code == 200, again.text
        assert (again.json()["cart_id"], again.json()["currency"]) == (cart_id, "EUR")

    # Without an active cart, a customer may open one in any supported currency.
    bob = register(client, currency="EUR")
    usd = client.post("/v1/carts", json={"currency": "USD"}, headers=bob["headers"])
    assert usd.status_code == 201 and usd.json()["currency"] == "USD", usd.text
