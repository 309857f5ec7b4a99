"""Inventory over HTTP on the real app: counting stock, reading it, warehouses, bad input."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from transactional.shared.auth import ADMIN, JwtTokens, Principal

pytestmark = pytest.mark.integration


@pytest.fixture
def admin(services: Services) -> dict[str, str]:
    return admin_headers(services.tokens)


@pytest.fixture
def listed(client: Any, admin: dict[str, str]) -> dict[str, Any]:
    """An approved seller with one freshly listed SKU."""
    seller = approved_seller(client, admin)
    sku = fresh_sku("INV")
    list_product(client, seller, skus_prices={sku: 1999})
    return {**seller, "sku": sku}


def put_stock(client: Any, sku: str, warehouse_id: str, body: Any, headers: Any) -> Any:
    return client.put(f"/v1/inventory/{sku}/warehouses/{warehouse_id}", json=body, headers=headers)


def test_seller_counts_stock_and_anyone_reads_it(
    client: Any, listed: dict[str, Any], admin: dict[str, str], services: Services
) -> None:
    sku = listed["sku"]
    empty = client.get(f"/v1/inventory/{sku}")
    assert empty.status_code == 200, empty.text
    assert empty.json() == {
        "sku": sku,
        "warehouses": [],
        "on_hand": 0,
        "reserved": 0,
        "available": 0,
    }

    counted = put_stock(client, sku, "wh_eu_1", {"on_hand": 8}, listed["headers"])
    assert counted.status_code == 200, counted.text
    restocked = put_stock(client, sku, "wh_us_1", {"on_hand": 5, "reason": "receipt"}, admin)
    assert restocked.status_code == 200, restocked.text

    services["inventory"].reserve(f"chk_{secrets.token_hex(6)}", [(sku, 3)], "eu")
    body = client.get(f"/v1/inventory/{sku}").json()
    assert body == {
        "sku": sku,
        "warehouses": [
            {
                "warehouse_id": "wh_eu_1",
                "region": "eu",
                "on_hand": 8,
                "reserved": 3,
                "available": 5,
            },
            {
                "warehouse_id": "wh_us_1",
                "region": "us",
                "on_hand": 5,
                "reserved": 0,
                "available": 5,
            },
        ],
        "on_hand": 13,
        "reserved": 3,
        "available": 10,
    }
    assert services["inventory"].availability([sku]) == {sku: 10}

    below = put_stock(client, sku, "wh_eu_1", {"on_hand": 2}, listed["headers"])
    problem = assert_problem(below, 409, "on_hand_below_reserved")
    assert problem["reserved"] == 3
    lowered = put_stock(client, sku, "wh_eu_1", {"on_hand": 3}, listed["headers"])
    assert lowered.status_code == 200 and lowered.json()["available"] == 5


def test_only_the_owning_seller_or_an_admin_may_count(
    client: Any, listed: dict[str, Any], admin: dict[str, str], services: Services
) -> None:
    sku = listed["sku"]
    shopper = register(client)
    other_seller = approved_seller(client, admin)
    for headers in (shopper["headers"], other_seller["headers"]):
        assert_problem(
            put_stock(client, sku, "wh_eu_1", {"on_hand": 1}, headers), 403, "not_sku_owner"
        )
    assert_problem(put_stock(client, sku, "wh_eu_1", {"on_hand": 1}, {}), 401, "missing_token")
    past = JwtTokens(
        services.settings.jwt_secret,
        ttl_s=60,
        clock=lambda: datetime.now(UTC) - timedelta(hours=2),
    )
    expired, _ = past.issue(Principal("admin", "eu", frozenset({ADMIN})))
    assert_problem(
        put_stock(client, sku, "wh_eu_1", {"on_hand": 1}, {"Authorization": f"Bearer {expired}"}),
        401,
        "token_expired",
    )
    assert client.get(f"/v1/inventory/{sku}").json()["warehouses"] == []


def test_bad_counts_are_problems_not_500(
    client: Any, listed: dict[str, Any], admin: dict[str, str]
) -> None:
    sku = listed["sku"]
    for body in (
        {"on_hand": -1},
        {},
        {"on_hand": "ten"},
        {"on_hand": 1.5},
        {"on_hand": 1, "extra": True},
        {"on_hand": 1, "reason": "stolen"},
        {"on_hand": 10**12},
    ):
        assert_problem(put_stock(client, sku, "wh_eu_1", body, admin), 400)
    assert_problem(
        put_stock(client, f"NOPE-{secrets.token_hex(4)}", "wh_eu_1", {"on_hand": 1}, admin),
        404,
        "sku_not_found",
    )
    assert_problem(
        put_stock(client, sku, "wh_nowhere", {"on_hand": 1}, admin), 404, "warehouse_not_found"
    )
    assert_problem(client.get(f"/v1/inventory/NOPE-{secrets.token_hex(4)}"), 404, "sku_not_found")


def test_admins_manage_warehouses(
    client: Any, admin: dict[str, str], listed: dict[str, Any]
) -> None:
    listed_ids = {w["warehouse_id"]: w for w in client.get("/v1/warehouses").json()}
    assert listed_ids["wh_eu_1"]["region"] == "eu" and listed_ids["wh_in_1"]["country"] == "IN"

    warehouse_id = f"wh_t_{secrets.token_hex(4)}"
    body = {"region": "eu", "country": "FR", "name": "Lyon"}
    created = client.put(f"/v1/admin/warehouses/{warehouse_id}", json=body, headers=admin)
    assert created.status_code == 200, created.text
    assert created.json() == {"warehouse_id": warehouse_id, **body}
    renamed = client.put(
        f"/v1/admin/warehouses/{warehouse_id}", json={**body, "name": "Lyon 2"}, headers=admin
    )
    assert renamed.json()["name"] == "Lyon 2"
    assert any(
        w == {"warehouse_id": warehouse_id, **body, "name": "Lyon 2"}
        for w in client.get("/v1/warehouses").json()
    )
    stocked = put_stock(client, listed["sku"], warehouse_id, {"on_hand": 4}, listed["headers"])
    assert stocked.json()["warehouses"] == [
        {"warehouse_id": warehouse_id, "region": "eu", "on_hand": 4, "reserved": 0, "available": 4}
    ]

    path = f"/v1/admin/warehouses/wh_t_{secrets.token_hex(4)}"
    assert_problem(client.put(path, json=body), 401, "missing_token")
    assert_problem(client.put(path, json=body, headers=listed["headers"]), 403)
    for bad, status, code in [
        ({**body, "region": "mars"}, 422, "unknown_region"),
        ({**body, "country": "US"}, 422, "country_not_in_region"),
        ({**body, "country": "fr"}, 400, None),
        ({"region": "eu", "country": "FR"}, 400, None),
        ({**body, "name": ""}, 400, None),
    ]:
        assert_problem(client.put(path, json=bad, headers=admin), status, code)
    assert_problem(
        client.put("/v1/admin/warehouses/Bad%20Id", json=body, headers=admin),
        422,
        "invalid_warehouse_id",
    )


def test_openapi_document_lists_the_inventory_paths(client: Any) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in [
        "/v1/inventory/{sku}",
        "/v1/inventory/{sku}/warehouses/{warehouse_id}",
        "/v1/warehouses",
        "/v1/admin/warehouses/{warehouse_id}",
    ]:
        assert path in paths, sorted(paths)
