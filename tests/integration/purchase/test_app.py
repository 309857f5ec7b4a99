"""The composed app: every contract path in OpenAPI, one domain per process, problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient

from serving.app import DOMAIN_ROUTES, create_app
from souk.services import Services
from tests.integration.http import assert_problem

CONTRACT = {
    "/v1/customers": {"post"},
    "/v1/auth/token": {"post"},
    "/v1/customers/me": {"get"},
    "/v1/customers/me/addresses": {"get", "post"},
    "/v1/sellers": {"post"},
    "/v1/admin/sellers/{seller_id}/kyc": {"post"},
    "/v1/products": {"get", "post"},
    "/v1/products/{product_id}": {"get"},
    "/v1/categories": {"get"},
    "/v1/inventory/{sku}/warehouses/{warehouse_id}": {"put"},
    "/v1/inventory/{sku}": {"get"},
    "/v1/carts": {"post"},
    "/v1/carts/{cart_id}": {"get"},
    "/v1/carts/{cart_id}/items": {"post"},
    "/v1/carts/{cart_id}/items/{sku}": {"patch", "delete"},
    "/v1/checkout": {"post"},
    "/v1/orders": {"get"},
    "/v1/orders/{order_id}": {"get"},
    "/v1/orders/{order_id}/cancel": {"post"},
    "/v1/events": {"post"},
}


def test_openapi_lists_every_contract_path_and_method(client: Any) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    missing = {
        path: methods - set(paths.get(path, {}))
        for path, methods in CONTRACT.items()
        if methods - set(paths.get(path, {}))
    }
    assert missing == {}


def test_one_domain_per_process_serves_only_its_routes(services: Services) -> None:
    with TestClient(create_app(services, ["catalog"])) as catalog_only:
        assert catalog_only.get("/v1/categories").status_code == 200
        assert_problem(catalog_only.post("/v1/carts", json={}), 404)
        paths = catalog_only.get("/schema/openapi.json").json()["paths"]
        assert all(not path.startswith("/v1/carts") for path in paths)


def test_an_unknown_domain_is_refused_by_name(services: Services) -> None:
    with pytest.raises(ValueError, match="unknown domain 'warehouse'"):
        create_app(services, ["warehouse"])
    assert set(DOMAIN_ROUTES) >= {"customers", "catalog", "checkout", "orders", "tracking"}


def test_unknown_routes_and_methods_are_problems(client: Any) -> None:
    assert_problem(client.get("/v1/nowhere"), 404)
    assert_problem(client.delete("/v1/categories"), 405)


def test_values_postgres_refuses_are_400_not_500(client: Any) -> None:
    body = assert_problem(client.get("/v1/products/%00"), 400, "invalid_value")
    assert "NUL" in body["detail"] or "0x00" in body["detail"]
    assert_problem(client.get("/v1/products", params={"page": 2**62}), 400, "invalid_value")


def test_json_nested_too_deeply_is_400_not_500(client: Any) -> None:
    deep = '{"email": ' + "[" * 3000 + "]" * 3000 + "}"
    response = client.post(
        "/v1/customers", content=deep, headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)


def test_openapi_documents_problem_json_errors_and_required_headers(client: Any) -> None:
    document = client.get("/schema/openapi.json").json()
    assert document["components"]["schemas"]["Problem"]["required"] == [
        "type", "title", "status", "detail"
    ]  # fmt: skip
    checkout = document["paths"]["/v1/checkout"]["post"]
    for status in ("400", "4XX", "5XX"):
        content = checkout["responses"][status]["content"]
        assert content["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }
    [key] = [p for p in checkout["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["required"] is True
    # A real error matches what the document says.
    well_formed = {
        "cart_id": "crt_x",
        "shipping_address": {"address_id": "adr_x"},
        "payment_method": {"type": "card", "token": "tok_x"},
    }
    assert_problem(client.post("/v1/checkout", json=well_formed), 401, "missing_token")
