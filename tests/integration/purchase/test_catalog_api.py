"""The catalog over HTTP on the real stack: list, read, browse, reprice, taxonomy, bad input."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from schemas.catalog import ProductCreated, ProductPriceChanged, ProductUpdated
from schemas.registry import REGISTRY
from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from transactional.catalog.model import shard_of
from transactional.shared.auth import JwtTokens, Principal

SEEDED_ROOTS = (
    "cat_electronics",
    "cat_fashion",
    "cat_home_kitchen",
    "cat_books",
    "cat_sports",
    "cat_beauty",
    "cat_grocery",
    "cat_toys",
)


def _events(engine: Engine, key: str) -> list[Any]:
    with engine.connect() as connection:
        values = connection.execute(
            text("SELECT value FROM outbox WHERE message_key = :key ORDER BY id"), {"key": key}
        ).scalars()
        return [REGISTRY.decode(bytes(value)) for value in values]


def test_list_read_and_browse_with_filters_and_pages(
    client: Any, services: Services, engine: Engine
) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))
    black, white = fresh_sku("PHONE"), fresh_sku("PHONE")
    phone = list_product(
        client,
        seller,
        skus_prices={black: {"USD": 52900, "EUR": 49900}, white: {"EUR": 49900, "USD": 52900}},
        title="Pocket Phone 6",
        brand="Pocket",
        description="A phone for pockets.",
        attributes={"storage": "128 GB"},
        images=["https://cdn.example.com/pp6.jpg"],
    )
    laptop = list_product(
        client,
        seller,
        skus_prices={fresh_sku(): 99900},
        title="Laptop",
        category_id="cat_electronics_laptops",
    )
    novel = list_product(
        client,
        seller,
        skus_prices={fresh_sku(): 1599},
        title="Novel",
        category_id="cat_books_fiction",
    )

    product_id = phone["product_id"]
    assert re.fullmatch(r"prd_[0-9a-f]{2}_[0-9a-f]{32}", product_id)
    assert phone["shard"] == shard_of(product_id) < services.settings.catalog_shards
    assert phone["seller_id"] == seller["seller_id"] and phone["currency"] == "EUR"
    assert [v["sku"] for v in phone["variants"]] == [black, white]
    assert phone["variants"][0]["prices"] == {"USD": 52900, "EUR": 49900}

    read = client.get(f"/v1/products/{product_id}")  # public: no token
    assert read.status_code == 200
    assert read.json() == phone

    with engine.connect() as connection:
        shard = connection.execute(
            text("SELECT shard FROM products WHERE product_id = :id"), {"id": product_id}
        ).scalar_one()
    assert shard == phone["shard"]

    def browse(**params: Any) -> dict[str, Any]:
        response = client.get("/v1/products", params={"seller": seller["seller_id"], **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    everything = browse()
    assert [p["product_id"] for p in everything["items"]] == [
        novel["product_id"],
        laptop["product_id"],
        product_id,
    ]
    assert (everything["total"], everything["page"], everything["pages"]) == (3, 1, 1)
    first = browse(page=1, page_size=2)
    second = browse(page=2, page_size=2)
    assert (len(first["items"]), first["has_next"], first["pages"]) == (2, True, 2)
    assert [p["product_id"] for p in second["items"]] == [product_id]
    assert (second["total"], second["has_next"]) == (3, False)
    assert browse(page=5)["items"] == []
    electronics = browse(category="cat_electronics")  # includes Phones and Laptops
    assert {p["product_id"] for p in electronics["items"]} == {product_id, laptop["product_id"]}
    phones = browse(category="cat_electronics_phones")
    assert [p["product_id"] for p in phones["items"]] == [product_id]
    assert browse(category="cat_books")["total"] == 1
    assert browse(category="cat_toys")["total"] == 0
    public = client.get("/v1/products", params={"category": "cat_books_fiction", "page_size": 100})
    assert public.status_code == 200 and public.json()["total"] >= 1

    created = [e for e in _events(engine, product_id) if e.event_type == "product.created"]
    assert len(created) == 1 and created[0].region == "eu"
    payload = REGISTRY.payload_as(created[0], ProductCreated)
    assert payload.category_path == ["Electronics", "Phones"]
    assert (payload.price.amount_minor, payload.price.currency) == (49900, "EUR")
    assert [v.sku for v in payload.variants] == [black, white]
    assert payload.seller_id == seller["seller_id"] and payload.brand == "Pocket"
    for other in (laptop, novel):
        assert [e.event_type for e in _events(engine, other["product_id"])] == ["product.created"]


def test_offers_is_the_python_api_of_carts_and_checkout(client: Any, services: Services) -> None:
    seller = approved_seller(client, admin_headers(services.tokens), region="us")
    sku_a, sku_b = fresh_sku(), fresh_sku()
    product = list_product(client, seller, skus_prices={sku_a: 1999, sku_b: {"USD": 2999}})
    offers = services["catalog"].offers([sku_a, sku_b, fresh_sku("GHOST")])
    assert set(offers) == {sku_a, sku_b}
    offer = offers[sku_a]
    assert (offer.product_id, offer.seller_id, offer.title, offer.status) == (
        product["product_id"],
        seller["seller_id"],
        "Test product",
        "active",
    )
    assert offer.prices == {"USD": 1999} and offers[sku_b].prices == {"USD": 2999}
    assert services["catalog"].offers([]) == {}
    assert (
        services["sellers"].approved_seller_of(seller["customer_id"]).seller_id
        == (seller["seller_id"])
    )
    assert services["sellers"].approved_seller_of(register(client)["customer_id"]) is None


def test_only_approved_sellers_list_products(client: Any, services: Services) -> None:
    body = {
        "title": "Phone",
        "category_id": "cat_electronics_phones",
        "variants": [{"sku": fresh_sku(), "prices": {"EUR": 100}}],
    }
    shopper = register(client)
    assert_problem(
        client.post("/v1/products", json=body, headers=shopper["headers"]), 403, "not_a_seller"
    )
    assert_problem(client.post("/v1/products", json=body), 401, "missing_token")
    expired, _ = JwtTokens(
        services.settings.jwt_secret,
        ttl_s=60,
        clock=lambda: datetime.now(UTC) - timedelta(hours=2),
    ).issue(Principal(shopper["customer_id"], "eu"))
    assert_problem(
        client.post("/v1/products", json=body, headers={"Authorization": f"Bearer {expired}"}),
        401,
        "token_expired",
    )


def test_duplicate_skus_are_409(client: Any, services: Services, engine: Engine) -> None:
    admin = admin_headers(services.tokens)
    first, second = approved_seller(client, admin), approved_seller(client, admin)
    sku = fresh_sku()
    list_product(client, first, skus_prices={sku: 1000})
    fresh = fresh_sku()
    clash = client.post(
        "/v1/products",
        json={
            "title": "Copycat",
            "category_id": "cat_books",
            "variants": [
                {"sku": fresh, "prices": {"EUR": 1}},
                {"sku": sku, "prices": {"EUR": 1}},
            ],
        },
        headers=second["headers"],
    )
    assert assert_problem(clash, 409, "duplicate_sku")["skus"] == [sku]
    twice = client.post(
        "/v1/products",
        json={
            "title": "Twins",
            "category_id": "cat_books",
            "variants": [
                {"sku": fresh, "prices": {"EUR": 1}},
                {"sku": fresh, "prices": {"EUR": 2}},
            ],
        },
        headers=second["headers"],
    )
    assert_problem(twice, 409, "duplicate_sku")
    # The refused listing left nothing behind: its other SKU is still free.
    assert services["catalog"].offers([fresh]) == {}
    listed = client.get("/v1/products", params={"seller": second["seller_id"]}).json()
    assert listed["total"] == 0


def test_bad_products_are_problems_not_500(client: Any, services: Services) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))

    def variant(**overrides: Any) -> dict[str, Any]:
        return {"sku": fresh_sku(), "prices": {"EUR": 1999}, **overrides}

    base = {"title": "Thing", "category_id": "cat_home_kitchen_cookware", "variants": [variant()]}
    for body, status, code in [
        ({k: v for k, v in base.items() if k != "title"}, 400, None),
        ({k: v for k, v in base.items() if k != "variants"}, 400, None),
        ({**base, "variants": []}, 400, None),
        ({**base, "extra": True}, 400, None),
        ({**base, "variants": [variant(prices={"EUR": 19.99})]}, 400, None),
        ({**base, "variants": [variant(prices={"EUR": "19.99"})]}, 400, None),
        ({**base, "variants": [variant(prices={})]}, 400, None),
        ({**base, "variants": [variant(prices={"EUR": -1})]}, 422, "invalid_price"),
        ({**base, "variants": [variant(prices={"EUR": 0})]}, 422, "invalid_price"),
        ({**base, "variants": [variant(prices={"XYZ": 100})]}, 422, "unsupported_currency"),
        ({**base, "variants": [variant(prices={"eur": 100})]}, 422, "unsupported_currency"),
        ({**base, "variants": [variant(sku="has space")]}, 422, "invalid_sku"),
        (
            {**base, "variants": [variant(), variant(prices={"USD": 100})]},
            422,
            "inconsistent_currencies",
        ),
        ({**base, "category_id": "cat_nope"}, 422, "unknown_category"),
        ({**base, "title": "   "}, 422, "invalid_title"),
        ({**base, "images": ["ftp://example.com/x.png"]}, 422, "invalid_image_url"),
        ({**base, "attributes": {"": "x"}}, 422, "invalid_attributes"),
    ]:
        assert_problem(
            client.post("/v1/products", json=body, headers=seller["headers"]), status, code
        )
    assert client.get("/v1/products", params={"seller": seller["seller_id"]}).json()["total"] == 0

    assert_problem(client.get(f"/v1/products/prd_00_{'0' * 32}"), 404, "product_not_found")
    assert_problem(client.get("/v1/products/garbage"), 404, "product_not_found")
    assert_problem(client.get("/v1/products", params={"page": 0}), 400)
    assert_problem(client.get("/v1/products", params={"page_size": 0}), 400)
    assert_problem(client.get("/v1/products", params={"page_size": 101}), 400)
    assert_problem(client.get("/v1/products", params={"page": "x"}), 400)
    assert_problem(
        client.get("/v1/products", params={"category": "cat_nope"}), 422, "unknown_category"
    )


def test_owner_reprices_and_renames_with_events(
    client: Any, services: Services, engine: Engine
) -> None:
    admin = admin_headers(services.tokens)
    seller, rival = approved_seller(client, admin), approved_seller(client, admin)
    sku = fresh_sku()
    product = list_product(client, seller, skus_prices={sku: {"EUR": 2000, "GBP": 1800}})
    url = f"/v1/products/{product['product_id']}"

    patched = client.patch(
        url,
        json={"title": "Better name", "prices": {sku: {"EUR": 1500}}},
        headers=seller["headers"],
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["title"], body["version"]) == ("Better name", 2)
    assert body["variants"][0]["prices"] == {"EUR": 1500, "GBP": 1800}
    assert services["catalog"].offers([sku])[sku].prices == {"EUR": 1500, "GBP": 1800}

    events = _events(engine, product["product_id"])
    assert [e.event_type for e in events] == [
        "product.created",
        "product.updated",
        "product.price_changed",
    ]
    updated = REGISTRY.payload_as(events[1], ProductUpdated)
    assert updated.changed_fields == ["title", "variants"] and updated.product_version == 2
    changed = REGISTRY.payload_as(events[2], ProductPriceChanged)
    assert (changed.old_price.amount_minor, changed.new_price.amount_minor) == (2000, 1500)

    assert_problem(
        client.patch(url, json={"title": "Mine"}, headers=rival["headers"]),
        403,
        "not_product_owner",
    )
    assert_problem(client.patch(url, json={"title": "Anon"}), 401, "missing_token")
    for bad, status in [
        ({"prices": {sku: {"EUR": -5}}}, 422),
        ({"prices": {sku: {"USD": 100}}}, 422),
        ({"prices": {"NOT-MINE": {"EUR": 100}}}, 422),
        ({"title": ""}, 422),
        ({"colour": "red"}, 400),
    ]:
        assert_problem(client.patch(url, json=bad, headers=seller["headers"]), status)
    assert_problem(
        client.patch(
            f"/v1/products/prd_00_{'0' * 32}", json={"title": "x"}, headers=seller["headers"]
        ),
        404,
        "product_not_found",
    )
    assert client.get(url).json()["version"] == 2
    assert len(_events(engine, product["product_id"])) == 3


def test_category_tree_and_admin_extension(client: Any, services: Services) -> None:
    admin = admin_headers(services.tokens)
    tree = client.get("/v1/categories")
    assert tree.status_code == 200
    roots = {node["category_id"]: node for node in tree.json()}
    assert set(SEEDED_ROOTS) <= set(roots)
    assert roots["cat_home_kitchen"]["name"] == "Home & Kitchen"
    assert roots["cat_home_kitchen"]["slug"] == "home-kitchen"
    for root_id in SEEDED_ROOTS:
        children = roots[root_id]["children"]
        assert len(children) >= 2 and all(
            c["category_id"].startswith(root_id + "_") for c in children
        ), children
    phones = next(c for c in roots["cat_electronics"]["children"] if c["name"] == "Phones")
    assert phones == {
        "category_id": "cat_electronics_phones",
        "name": "Phones",
        "slug": "phones",
        "children": [],
    }

    name = f"Poetry {secrets.token_hex(3)}"
    added = client.post(
        "/v1/admin/categories", json={"name": name, "parent_id": "cat_books"}, headers=admin
    )
    assert added.status_code == 201, added.text
    category = added.json()
    assert category["parent_id"] == "cat_books"
    assert category["category_id"].startswith("cat_books_poetry_")
    books = next(n for n in client.get("/v1/categories").json() if n["category_id"] == "cat_books")
    assert category["category_id"] in {c["category_id"] for c in books["children"]}

    assert_problem(
        client.post(
            "/v1/admin/categories", json={"name": name, "parent_id": "cat_books"}, headers=admin
        ),
        409,
        "category_exists",
    )
    shopper = register(client)
    assert_problem(
        client.post("/v1/admin/categories", json={"name": "Mine"}, headers=shopper["headers"]),
        403,
    )
    assert_problem(client.post("/v1/admin/categories", json={"name": "Anon"}), 401)
    assert_problem(
        client.post(
            "/v1/admin/categories", json={"name": "X", "parent_id": "cat_nope"}, headers=admin
        ),
        422,
        "unknown_category",
    )
    assert_problem(
        client.post("/v1/admin/categories", json={"name": "&&&"}, headers=admin),
        422,
        "invalid_category_name",
    )
    assert_problem(client.post("/v1/admin/categories", json={}, headers=admin), 400)

    # A product in the new leaf shows under its root.
    seller = approved_seller(client, admin)
    poem = list_product(
        client, seller, skus_prices={fresh_sku(): 900}, category_id=category["category_id"]
    )
    under_books = client.get(
        "/v1/products", params={"category": "cat_books", "seller": seller["seller_id"]}
    ).json()
    assert [p["product_id"] for p in under_books["items"]] == [poem["product_id"]]


def test_openapi_document_lists_the_catalog_and_seller_paths(client: Any) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in [
        "/v1/sellers",
        "/v1/sellers/{seller_id}",
        "/v1/admin/sellers/{seller_id}/kyc",
        "/v1/products",
        "/v1/products/{product_id}",
        "/v1/categories",
        "/v1/admin/categories",
    ]:
        assert path in paths, sorted(paths)


def test_outbox_rows_carry_the_product_id_as_key(
    client: Any, services: Services, engine: Engine
) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))
    product = list_product(client, seller, skus_prices={fresh_sku(): 500})
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT topic, event_type, value FROM outbox WHERE message_key = :id"),
            {"id": product["product_id"]},
        ).one()
    assert row.event_type == "product.created"
    assert "catalog" in row.topic
    assert json.loads(bytes(row.value))["aggregate_type"] == "product"
