"""Carts over HTTP on the real stack (Redis + PostgreSQL outbox, real catalog and inventory)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from transactional.carts.repository import RedisCarts, SqlCartsUnitOfWork
from transactional.carts.service import CartService
from transactional.shared.auth import JwtTokens, Principal

WAREHOUSE = "wh_eu_1"


class Shop:
    """One approved seller listing fresh SKUs with stock, through the real HTTP API."""

    def __init__(self, client: Any, services: Services) -> None:
        self.client = client
        self.seller = approved_seller(client, admin_headers(services.tokens))

    def sku(self, price: int | Mapping[str, int] = 1999, on_hand: int = 50) -> dict[str, Any]:
        """A new SKU priced ``price`` (EUR minor units, or per currency) with stock."""
        sku = fresh_sku("CART")
        product = list_product(self.client, self.seller, skus_prices={sku: price})
        self.stock(sku, on_hand)
        return {"sku": sku, "product_id": product["product_id"]}

    def stock(self, sku: str, on_hand: int) -> None:
        """Set the SKU's on-hand units in the EU warehouse."""
        response = self.client.put(
            f"/v1/inventory/{sku}/warehouses/{WAREHOUSE}",
            json={"on_hand": on_hand},
            headers=self.seller["headers"],
        )
        assert response.status_code == 200, response.text

    def reprice(self, item: Mapping[str, Any], prices: Mapping[str, int]) -> None:
        """Change the SKU's list prices as its seller."""
        response = self.client.patch(
            f"/v1/products/{item['product_id']}",
            json={"prices": {item["sku"]: dict(prices)}},
            headers=self.seller["headers"],
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def shop(app: Litestar, services: Services) -> Iterator[Shop]:
    """A seller shared by this module's tests (each test still uses fresh SKUs and carts)."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Shop(client, services)


def outbox_rows(engine: Engine, cart_id: str) -> list[dict[str, Any]]:
    """The cart's events in outbox (commit) order, as (type, topic, payload)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT event_type, topic, value FROM outbox WHERE message_key = :key ORDER BY id"
            ),
            {"key": cart_id},
        ).all()
    return [
        {"type": row.event_type, "topic": row.topic, **json.loads(bytes(row.value))["payload"]}
        for row in rows
    ]


def new_cart(client: Any, headers: Mapping[str, str] | None = None, **body: Any) -> str:
    response = client.post("/v1/carts", json=body or None, headers=dict(headers or {}))
    assert response.status_code == 201, response.text
    cart_id: str = response.json()["cart_id"]
    return cart_id


def add(client: Any, cart_id: str, sku: str, quantity: int, **kw: Any) -> httpx.Response:
    response: httpx.Response = client.post(
        f"/v1/carts/{cart_id}/items", json={"sku": sku, "quantity": quantity}, **kw
    )
    return response


def test_guest_cart_lifecycle_with_events_and_ttl(
    client: Any, shop: Shop, services: Services, engine: Engine
) -> None:
    a, b = shop.sku(1999), shop.sku({"EUR": 500, "USD": 600})
    created = client.post("/v1/carts")
    assert created.status_code == 201, created.text
    body = created.json()
    cart_id = body["cart_id"]
    assert (body["currency"], body["customer_id"], body["lines"]) == ("EUR", None, [])

    store = RedisCarts(services.redis, ttl_s=services.settings.cart_ttl_s)
    services.redis.expire(store.meta_key(cart_id), 100)
    assert 0 < store.ttl(cart_id) <= 100

    assert add(client, cart_id, a["sku"], 2).status_code == 200
    assert store.ttl(cart_id) > services.settings.cart_ttl_s - 60  # refreshed by the write
    assert 0 < services.redis.ttl(store.lines_key(cart_id)) <= services.settings.cart_ttl_s
    added = add(client, cart_id, b["sku"], 3)
    assert added.status_code == 200, added.text
    view = client.get(f"/v1/carts/{cart_id}").json()
    assert [
        (line["sku"], line["quantity"], line["line_total_minor"]) for line in view["lines"]
    ] == [
        (a["sku"], 2, 3998),
        (b["sku"], 3, 1500),
    ]
    assert view["lines"][0]["available"] == 50 and view["lines"][0]["title"] == "Test product"
    assert view["lines"][0]["seller_id"] == shop.seller["seller_id"]
    assert (view["subtotal_minor"], view["item_count"], view["ready_for_checkout"]) == (
        5498,
        5,
        True,
    )

    patched = client.patch(f"/v1/carts/{cart_id}/items/{b['sku']}", json={"quantity": 1})
    assert patched.status_code == 200 and patched.json()["subtotal_minor"] == 3998 + 500
    removed = client.delete(f"/v1/carts/{cart_id}/items/{a['sku']}")
    assert removed.status_code == 200, removed.text
    assert [line["sku"] for line in removed.json()["lines"]] == [b["sku"]]
    zero = client.patch(f"/v1/carts/{cart_id}/items/{b['sku']}", json={"quantity": 0})
    assert zero.json()["lines"] == [] and zero.json()["item_count"] == 0

    events = outbox_rows(engine, cart_id)
    assert [(e["type"], e["sku"], e["quantity"], e["quantity_in_cart"]) for e in events] == [
        ("cart.item_added", a["sku"], 2, 2),
        ("cart.item_added", b["sku"], 3, 3),
        ("cart.item_removed", b["sku"], 2, 1),
        ("cart.item_removed", a["sku"], 2, 0),
        ("cart.item_removed", b["sku"], 1, 0),
    ]
    assert {e["topic"] for e in events} == {"eu.carts.v1"}
    assert events[0]["unit_price"] == {"amount_minor": 1999, "currency": "EUR"}
    assert events[0]["product_id"] == a["product_id"] and events[0]["session_id"] == cart_id


def test_customer_has_one_cart_in_their_currency_hidden_from_others(
    client: Any, shop: Shop
) -> None:
    item = shop.sku({"EUR": 1000, "GBP": 900})
    ada, bob = register(client, currency="GBP"), register(client)
    first = client.post("/v1/carts", headers=ada["headers"])
    assert first.status_code == 201, first.text
    cart_id = first.json()["cart_id"]
    assert first.json()["currency"] == "GBP" and first.json()["customer_id"] == ada["customer_id"]
    again = client.post("/v1/carts", json={"currency": "GBP"}, headers=ada["headers"])
    assert again.status_code == 200 and again.json()["cart_id"] == cart_id
    other = client.post("/v1/carts", json={"currency": "EUR"}, headers=ada["headers"])
    assert assert_problem(other, 409, "cart_currency_mismatch")["cart_id"] == cart_id
    assert add(client, cart_id, item["sku"], 1, headers=ada["headers"]).status_code == 200
    assert (
        client.get(f"/v1/carts/{cart_id}", headers=ada["headers"]).json()["subtotal_minor"] == 900
    )

    unknown = assert_problem(client.get("/v1/carts/crt_nope"), 404, "cart_not_found")
    for headers in (bob["headers"], {}):
        foreign = assert_problem(
            client.get(f"/v1/carts/{cart_id}", headers=headers), 404, "cart_not_found"
        )
        assert foreign["detail"].replace(cart_id, "") == unknown["detail"].replace("crt_nope", "")
        assert_problem(add(client, cart_id, item["sku"], 1, headers=headers), 404, "cart_not_found")
        assert_problem(
            client.patch(
                f"/v1/carts/{cart_id}/items/{item['sku']}", json={"quantity": 5}, headers=headers
            ),
            404,
            "cart_not_found",
        )
        assert_problem(
            client.delete(f"/v1/carts/{cart_id}/items/{item['sku']}", headers=headers),
            404,
            "cart_not_found",
        )
    # A guest cart is a capability: anyone holding its id may use it.
    guest = new_cart(client)
    assert client.get(f"/v1/carts/{guest}", headers=bob["headers"]).status_code == 200


def test_flags_price_changes_and_short_stock(client: Any, shop: Shop) -> None:
    item = shop.sku(1000, on_hand=5)
    cart_id = new_cart(client)
    assert add(client, cart_id, item["sku"], 4).status_code == 200
    shop.reprice(item, {"EUR": 1200})
    shop.stock(item["sku"], 2)
    line = client.get(f"/v1/carts/{cart_id}").json()["lines"][0]
    assert (line["unit_price_minor"], line["added_unit_price_minor"]) == (1200, 1000)
    assert (line["price_changed"], line["stock_short"], line["available"]) == (True, True, 2)
    assert line["line_total_minor"] == 4800
    assert client.get(f"/v1/carts/{cart_id}").json()["ready_for_checkout"] is False


def test_concurrent_adds_lose_no_units(live_url: str, shop: Shop, engine: Engine) -> None:
    item = shop.sku(100, on_hand=40)
    with httpx.Client(base_url=live_url, timeout=30) as http:
        cart_id = new_cart(http)
        barrier = threading.Barrier(20)
        statuses: list[int] = []

        def add_one() -> None:
            with httpx.Client(base_url=live_url, timeout=30) as own:
                barrier.wait()
                statuses.append(add(own, cart_id, item["sku"], 1).status_code)

        threads = [threading.Thread(target=add_one) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [200] * 20
        assert http.get(f"/v1/carts/{cart_id}").json()["lines"][0]["quantity"] == 20
    events = outbox_rows(engine, cart_id)
    # The per-cart lock makes the outbox order the order of the Redis changes.
    assert [e["quantity_in_cart"] for e in events] == list(range(1, 21))


def test_sign_in_merges_the_guest_cart_once(
    client: Any, shop: Shop, services: Services, engine: Engine
) -> None:
    a, b = shop.sku(1000), shop.sku(700)
    only_usd = shop.sku({"USD": 100})
    ada = register(client)
    mine = new_cart(client, ada["headers"])
    assert add(client, mine, a["sku"], 1, headers=ada["headers"]).status_code == 200
    guest = new_cart(client)
    for item, quantity in ((a, 2), (b, 1)):
        assert add(client, guest, item["sku"], quantity).status_code == 200
    usd_guest = new_cart(client, currency="USD")
    assert add(client, usd_guest, only_usd["sku"], 1).status_code == 200

    def sign_in(guest_cart_id: str | None) -> dict[str, Any]:
        response = client.post(
            "/v1/auth/token",
            json={
                "email": ada["email"],
                "password": ada["password"],
                "guest_cart_id": guest_cart_id,
            },
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = sign_in(guest)
    assert first["cart_id"] == mine
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    lines = client.get(f"/v1/carts/{mine}", headers=headers).json()["lines"]
    assert [(line["sku"], line["quantity"]) for line in lines] == [(a["sku"], 3), (b["sku"], 1)]
    assert_problem(client.get(f"/v1/carts/{guest}"), 404, "cart_not_found")
    store = RedisCarts(services.redis, ttl_s=60)
    assert not services.redis.exists(store.meta_key(guest), store.lines_key(guest))

    assert sign_in(guest)["cart_id"] == mine  # a retried login: nothing doubles
    assert sign_in(usd_guest)["cart_id"] == mine  # no EUR price: the line is dropped
    assert sign_in(None)["cart_id"] == mine
    lines = client.get(f"/v1/carts/{mine}", headers=headers).json()["lines"]
    assert [(line["sku"], line["quantity"]) for line in lines] == [(a["sku"], 3), (b["sku"], 1)]

    into_mine = outbox_rows(engine, mine)
    assert [(e["type"], e["quantity"], e["quantity_in_cart"]) for e in into_mine] == [
        ("cart.item_added", 1, 1),
        ("cart.item_added", 2, 3),
        ("cart.item_added", 1, 1),
    ]
    assert [e["session_id"] for e in into_mine[1:]] == [guest, guest]
    closed = outbox_rows(engine, guest)
    assert [(e["type"], e["reason"]) for e in closed[-2:]] == [
        ("cart.item_removed", "merged"),
        ("cart.item_removed", "merged"),
    ]
    assert [e["reason"] for e in outbox_rows(engine, usd_guest)[1:]] == ["merged"]

    newcomer = register(client, currency="USD")
    guest2 = new_cart(client, currency="USD")
    assert add(client, guest2, only_usd["sku"], 2).status_code == 200
    response = client.post(
        "/v1/auth/token",
        json={
            "email": newcomer["email"],
            "password": newcomer["password"],
            "guest_cart_id": guest2,
        },
    )
    created = response.json()["cart_id"]
    assert created not in (None, guest2)
    view = client.get(
        f"/v1/carts/{created}",
        headers={"Authorization": f"Bearer {response.json()['access_token']}"},
    ).json()
    assert (view["currency"], view["customer_id"]) == ("USD", newcomer["customer_id"])
    assert [(line["sku"], line["quantity"]) for line in view["lines"]] == [(only_usd["sku"], 2)]


def test_snapshot_and_checked_out_for_checkout(
    client: Any, shop: Shop, services: Services, engine: Engine
) -> None:
    carts: CartService = services["carts"]
    item = shop.sku(250)
    ada = register(client)
    principal = Principal(ada["customer_id"], "eu")
    cart_id = new_cart(client, ada["headers"])
    assert add(client, cart_id, item["sku"], 3, headers=ada["headers"]).status_code == 200
    view = carts.snapshot(cart_id, principal)
    assert [
        (line.sku, line.quantity, line.unit_price_minor, line.available) for line in view.lines
    ] == [(item["sku"], 3, 250, 50)]
    assert view.subtotal_minor == 750 and view.customer_id == ada["customer_id"]
    carts.checked_out(cart_id, "ord_test_1")
    carts.checked_out(cart_id, "ord_test_1")
    assert carts.snapshot(cart_id, principal).lines == []
    removed = [e for e in outbox_rows(engine, cart_id) if e["type"] == "cart.item_removed"]
    assert [(e["quantity"], e["reason"]) for e in removed] == [(3, "checked_out")]


def test_checked_out_removes_only_what_the_order_bought(
    client: Any, shop: Shop, services: Services, engine: Engine
) -> None:
    carts: CartService = services["carts"]
    bought, later = shop.sku(250), shop.sku(300)
    ada = register(client)
    principal = Principal(ada["customer_id"], "eu")
    cart_id = new_cart(client, ada["headers"])
    assert add(client, cart_id, bought["sku"], 2, headers=ada["headers"]).status_code == 200
    # While the checkout of those 2 runs, the shopper adds one more and another SKU.
    assert add(client, cart_id, bought["sku"], 1, headers=ada["headers"]).status_code == 200
    assert add(client, cart_id, later["sku"], 4, headers=ada["headers"]).status_code == 200
    carts.checked_out(cart_id, "ord_test_2", [(bought["sku"], 2)])
    carts.checked_out(cart_id, "ord_test_2", [(bought["sku"], 2)])
    left = carts.snapshot(cart_id, principal).lines
    assert [(line.sku, line.quantity) for line in left] == [(bought["sku"], 1), (later["sku"], 4)]
    removed = [e for e in outbox_rows(engine, cart_id) if e["type"] == "cart.item_removed"]
    assert [(e["sku"], e["quantity"], e["quantity_in_cart"]) for e in removed] == [
        (bought["sku"], 2, 1)
    ]


def test_a_refused_commit_leaves_redis_as_it_was(
    client: Any, shop: Shop, services: Services, engine: Engine
) -> None:
    item = shop.sku(300)
    cart_id = new_cart(client)
    assert add(client, cart_id, item["sku"], 1).status_code == 200
    store = RedisCarts(services.redis, ttl_s=services.settings.cart_ttl_s)
    live: CartService = services["carts"]
    # Same store and outbox, but events for a region this deployment does not serve: the
    # outbox refuses them at commit, after the Redis change was made.
    broken = CartService(
        lambda: SqlCartsUnitOfWork(engine, services.outbox, store),
        store,
        live._shelf,
        region="zz",
        customer_currency=lambda _id: None,
    )
    with pytest.raises(Exception, match="not served"):
        broken.add_item(cart_id, None, item["sku"], 2)
    with pytest.raises(Exception, match="not served"):
        broken.remove_item(cart_id, None, item["sku"])
    lines = client.get(f"/v1/carts/{cart_id}").json()["lines"]
    assert [(line["sku"], line["quantity"]) for line in lines] == [(item["sku"], 1)]
    assert len(outbox_rows(engine, cart_id)) == 1


def test_expired_cart_is_not_found(client: Any, shop: Shop, services: Services) -> None:
    item = shop.sku(100)
    cart_id = new_cart(client)
    assert add(client, cart_id, item["sku"], 1).status_code == 200
    store = RedisCarts(services.redis, ttl_s=60)
    services.redis.delete(store.meta_key(cart_id), store.lines_key(cart_id))  # as the TTL does
    assert_problem(client.get(f"/v1/carts/{cart_id}"), 404, "cart_not_found")
    assert_problem(add(client, cart_id, item["sku"], 1), 404, "cart_not_found")


def test_bad_input_is_a_problem_not_a_500(client: Any, shop: Shop, services: Services) -> None:
    item = shop.sku(100, on_hand=3)
    usd_only = shop.sku({"USD": 100})
    draft_free = fresh_sku("NOPE")
    cart_id = new_cart(client)
    url = f"/v1/carts/{cart_id}/items"

    for body, status, code in [
        ({"quantity": 1}, 400, None),  # missing sku
        ({"sku": item["sku"]}, 400, None),  # missing quantity
        ({"sku": item["sku"], "quantity": 0}, 400, None),
        ({"sku": item["sku"], "quantity": -2}, 400, None),
        ({"sku": item["sku"], "quantity": 1, "price": 1}, 400, None),  # unknown field
        ({"sku": draft_free, "quantity": 1}, 422, "unknown_sku"),
        ({"sku": usd_only["sku"], "quantity": 1}, 422, "price_unavailable"),
        ({"sku": item["sku"], "quantity": 100}, 409, "quantity_limit_exceeded"),
        ({"sku": item["sku"], "quantity": 4}, 409, "insufficient_stock"),
    ]:
        assert_problem(client.post(url, json=body), status, code)
    assert_problem(
        client.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400
    )
    assert_problem(
        client.post("/v1/carts/crt_nope/items", json={"sku": item["sku"], "quantity": 1}),
        404,
        "cart_not_found",
    )
    short = assert_problem(client.post(url, json={"sku": item["sku"], "quantity": 4}), 409)
    assert (short["available"], short["requested"]) == (3, 4)

    assert add(client, cart_id, item["sku"], 1).status_code == 200
    line = f"{url}/{item['sku']}"
    for body, status, code in [
        ({}, 400, None),
        ({"quantity": -1}, 400, None),
        ({"quantity": 1.5}, 400, None),
        ({"quantity": 4}, 409, "insufficient_stock"),
        ({"quantity": 100}, 409, "quantity_limit_exceeded"),
    ]:
        assert_problem(client.patch(line, json=body), status, code)
    assert_problem(
        client.patch(f"{url}/{usd_only['sku']}", json={"quantity": 1}), 404, "line_not_found"
    )
    assert_problem(client.delete(f"{url}/{usd_only['sku']}"), 404, "line_not_found")

    for body, status, code in [
        ({"currency": "eur"}, 400, None),
        ({"currency": "XYZ"}, 422, "unsupported_currency"),
        ({"currency": "EUR", "owner": "me"}, 400, None),
    ]:
        assert_problem(client.post("/v1/carts", json=body), status, code)

    settings = services.settings
    past = JwtTokens(
        settings.jwt_secret, ttl_s=60, clock=lambda: datetime.now(UTC) - timedelta(hours=2)
    )
    expired, _ = past.issue(Principal("cus_x", "eu"))
    for headers, code in [
        ({"Authorization": f"Bearer {expired}"}, "token_expired"),
        ({"Authorization": "Bearer abc"}, "invalid_token"),
        ({"Authorization": "Basic abc"}, "invalid_token"),
    ]:
        assert_problem(client.post("/v1/carts", headers=headers), 401, code)
        assert_problem(client.get(f"/v1/carts/{cart_id}", headers=headers), 401, code)
        assert_problem(add(client, cart_id, item["sku"], 1, headers=headers), 401, code)


def test_openapi_lists_the_cart_paths(client: Any) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in ["/v1/carts", "/v1/carts/{cart_id}", "/v1/carts/{cart_id}/items/{sku}"]:
        assert path in paths, sorted(paths)
