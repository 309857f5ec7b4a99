"""Checkout over HTTP on the real stack: the saga's outcomes, what each leaves behind, bad input.

Also the helpers the other checkout tests use (a stocked SKU, a shopper with a filled cart).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from transactional.shared.auth import JwtTokens, Principal

APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"
TIMEOUT = "4000000000000259"
ADDRESS = {
    "full_name": "Ada Lovelace",
    "line1": "1 Main St",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}
WAREHOUSE = "wh_eu_1"


# -- helpers (used by the other test_checkout_* modules too) ---------------------------------


def stock_sku(client: Any, seller: Mapping[str, Any], units: int, price_minor: int = 1999) -> str:
    """A new SKU of ``seller`` priced in EUR with ``units`` on hand in wh_eu_1."""
    sku = fresh_sku("CHK")
    list_product(client, seller, skus_prices={sku: price_minor}, title=f"Thing {sku}")
    set_stock(client, seller, sku, units)
    return sku


def set_stock(client: Any, seller: Mapping[str, Any], sku: str, units: int) -> None:
    """Count ``units`` on the shelf of wh_eu_1."""
    response = client.put(
        f"/v1/inventory/{sku}/warehouses/{WAREHOUSE}",
        json={"on_hand": units, "reason": "receipt"},
        headers=seller["headers"],
    )
    assert response.status_code == 200, response.text


def filled_cart(client: Any, shopper: Mapping[str, Any], items: Mapping[str, int]) -> str:
    """The shopper's cart (EUR) holding ``items`` (sku → quantity)."""
    created = client.post("/v1/carts", json={"currency": "EUR"}, headers=shopper["headers"])
    assert created.status_code in (200, 201), created.text
    cart_id: str = created.json()["cart_id"]
    for sku, quantity in items.items():
        added = client.post(
            f"/v1/carts/{cart_id}/items",
            json={"sku": sku, "quantity": quantity},
            headers=shopper["headers"],
        )
        assert added.status_code == 200, added.text
    return cart_id


def checkout_body(
    cart_id: str, *, number: str = APPROVED, address: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A POST /v1/checkout body paying by raw card."""
    return {
        "cart_id": cart_id,
        "shipping_address": dict(address or ADDRESS),
        "payment_method": {
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        },
    }


def post_checkout(
    client: Any,
    shopper: Mapping[str, Any],
    body: Mapping[str, Any],
    key: str | None = None,
) -> Any:
    """POST /v1/checkout with a fresh (or the given) Idempotency-Key."""
    headers = {**shopper["headers"], "Idempotency-Key": key or str(uuid.uuid4())}
    return client.post("/v1/checkout", json=dict(body), headers=headers)


def stock_of(engine: Engine, sku: str) -> tuple[int, int]:
    """(on_hand, reserved) of a SKU in wh_eu_1."""
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT on_hand, reserved FROM stock_levels WHERE sku = :sku AND warehouse_id = :w"
            ),
            {"sku": sku, "w": WAREHOUSE},
        ).one()
    return int(row.on_hand), int(row.reserved)


def reservations_of(engine: Engine, checkout_id: str) -> list[str]:
    """Statuses of a checkout's reservations."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT status FROM reservations WHERE checkout_id = :id ORDER BY 1"),
                {"id": checkout_id},
            ).scalars()
        )


def order_of(engine: Engine, checkout_id: str) -> dict[str, Any] | None:
    """The order placed for a checkout (status, payment, paid amount), if any."""
    with engine.connect() as connection:
        row = (
            connection.execute(
                text(
                    "SELECT o.order_id, o.status, o.payment_id, o.paid_minor, o.grand_total_minor "
                    "FROM orders o JOIN order_checkouts c USING (region, order_id) "
                    "WHERE c.checkout_id = :id"
                ),
                {"id": checkout_id},
            )
            .mappings()
            .first()
        )
    return None if row is None else dict(row)


def saga_of(engine: Engine, checkout_id: str) -> dict[str, Any]:
    """The checkouts row."""
    with engine.connect() as connection:
        return dict(
            connection.execute(
                text("SELECT * FROM checkouts WHERE checkout_id = :id"), {"id": checkout_id}
            )
            .mappings()
            .one()
        )


def checkout_ids_of(engine: Engine, customer_id: str) -> list[str]:
    """A customer's checkouts, oldest first."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT checkout_id FROM checkouts WHERE customer_id = :id "
                    "ORDER BY created_at, checkout_id"
                ),
                {"id": customer_id},
            ).scalars()
        )


def outbox_types(engine: Engine, key: str) -> list[str]:
    """Event types written to the outbox for one aggregate, in order."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT event_type FROM outbox WHERE message_key = :key ORDER BY id"),
                {"key": key},
            ).scalars()
        )


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    """One approved seller for the module's products."""
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


# -- the saga's outcomes --------------------------------------------------------------------


def test_happy_path_makes_one_paid_order_sells_the_stock_and_empties_the_cart(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    shirt = stock_sku(client, seller, 10, price_minor=1999)
    mug = stock_sku(client, seller, 5, price_minor=500)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {shirt: 2, mug: 1})

    response = post_checkout(client, shopper, checkout_body(cart_id))

    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers
    body = response.json()
    checkout_id, order_id = body["checkout_id"], body["order_id"]
    assert response.headers["location"] == f"/v1/checkout/{checkout_id}"
    assert body["status"] == "completed"
    assert body["totals"]["currency"] == "EUR"
    assert body["totals"]["subtotal_minor"] == 2 * 1999 + 500
    assert body["totals"]["grand_total_minor"] >= body["totals"]["subtotal_minor"]
    assert body["payment"]["status"] == "captured" and body["payment"]["last4"] == "4242"

    order = order_of(engine, checkout_id)
    assert order is not None and order["order_id"] == order_id
    assert order["status"] == "paid" and order["paid_minor"] == body["totals"]["grand_total_minor"]
    assert order["payment_id"] == body["payment"]["payment_id"]
    assert stock_of(engine, shirt) == (8, 0) and stock_of(engine, mug) == (4, 0)
    assert reservations_of(engine, checkout_id) == ["committed", "committed"]
    cart = client.get(f"/v1/carts/{cart_id}", headers=shopper["headers"]).json()
    assert cart["lines"] == [] and cart["item_count"] == 0

    assert outbox_types(engine, checkout_id) == ["checkout.started", "checkout.completed"]
    assert outbox_types(engine, order_id) == ["order.placed", "order.paid"]
    assert outbox_types(engine, body["payment"]["payment_id"]) == [
        "payment.authorized",
        "payment.captured",
    ]
    assert outbox_types(engine, shirt)[-2:] == ["stock.reserved", "stock.committed"]

    shown = client.get(f"/v1/checkout/{checkout_id}", headers=shopper["headers"])
    assert shown.status_code == 200, shown.text
    saga = shown.json()
    assert (saga["status"], saga["stage"], saga["order_id"]) == ("completed", "completed", order_id)
    assert [s["step"] for s in saga["steps"]] == [
        "validate",
        "reserve",
        "order",
        "authorize",
        "capture",
        "finish",
    ]


def test_the_raw_card_is_stored_nowhere_but_the_processors_vault(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 3)
    shopper = register(client)
    number = "4000056655665556"  # an approved Visa debit nobody else uses in these tests
    body = checkout_body(filled_cart(client, shopper, {sku: 1}), number=number)
    response = post_checkout(client, shopper, body)
    assert response.status_code == 201, response.text
    checkout_id = response.json()["checkout_id"]
    with engine.connect() as connection:
        stored = connection.execute(
            text(
                "SELECT row_to_json(c)::text || coalesce((SELECT string_agg(row_to_json(k)::text,"
                " '') FROM checkout_idempotency_keys k WHERE k.checkout_id = c.checkout_id), '')"
                " || coalesce((SELECT string_agg(convert_from(value, 'UTF8'), '') FROM outbox o"
                " WHERE o.message_key IN (c.checkout_id, c.order_id, c.payment_id)), '')"
                " FROM checkouts c WHERE checkout_id = :id"
            ),
            {"id": checkout_id},
        ).scalar_one()
    assert number not in stored and "4242" not in stored.replace(number[-4:], "")
    assert number[-4:] in stored  # the last four digits are kept, and only those


def test_insufficient_stock_is_409_with_the_skus_and_leaves_no_order_or_hold(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    plenty = stock_sku(client, seller, 10)
    scarce = stock_sku(client, seller, 2)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {plenty: 1, scarce: 2})
    set_stock(client, seller, scarce, 1)  # sold elsewhere after it went into the cart

    response = post_checkout(client, shopper, checkout_body(cart_id))

    problem = assert_problem(response, 409, "insufficient_stock")
    assert problem["skus"] == [scarce] and problem["step"] in ("validate", "reserve")
    checkout_id = problem["checkout_id"]
    assert order_of(engine, checkout_id) is None
    assert reservations_of(engine, checkout_id) == []
    assert stock_of(engine, plenty) == (10, 0) and stock_of(engine, scarce) == (1, 0)
    assert outbox_types(engine, checkout_id) == ["checkout.failed"]
    cart = client.get(f"/v1/carts/{cart_id}", headers=shopper["headers"]).json()
    assert len(cart["lines"]) == 2  # the cart is kept for another try


def test_a_declined_card_is_402_cancels_the_order_releases_stock_and_captures_nothing(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 4)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: 3})

    response = post_checkout(client, shopper, checkout_body(cart_id, number=INSUFFICIENT_FUNDS))

    problem = assert_problem(response, 402)
    assert problem["step"] == "payment" and problem["decline_code"] == "insufficient_funds"
    checkout_id = problem["checkout_id"]
    order = order_of(engine, checkout_id)
    assert order is not None and order["status"] == "cancelled" and order["paid_minor"] is None
    assert reservations_of(engine, checkout_id) == ["released"]
    assert stock_of(engine, sku) == (4, 0)
    saga = saga_of(engine, checkout_id)
    with engine.connect() as connection:
        payment = connection.execute(
            text("SELECT status, captured_minor FROM payments WHERE payment_id = :id"),
            {"id": saga["payment_id"]},
        ).one()
        captures = connection.execute(
            text(
                "SELECT count(*) FROM sandbox_gateway_charges WHERE token = :token "
                "AND captured_minor > 0"
            ),
            {"token": saga["instrument_token"]},
        ).scalar_one()
    assert (payment.status, payment.captured_minor, captures) == ("declined", 0, 0)
    assert outbox_types(engine, checkout_id) == ["checkout.started", "checkout.failed"]
    assert outbox_types(engine, order["order_id"]) == ["order.placed", "order.cancelled"]
    shown = client.get(f"/v1/checkout/{checkout_id}", headers=shopper["headers"]).json()
    assert shown["status"] == "failed" and shown["failure"]["step"] == "payment"
    assert [s["outcome"] for s in shown["steps"]][-3:] == ["failed", "compensated", "compensated"]


def test_a_lost_authorization_answer_is_looked_up_and_the_checkout_completes(
    client: Any, engine: Engine, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 2)
    shopper = register(client)
    body = checkout_body(filled_cart(client, shopper, {sku: 1}), number=TIMEOUT)
    response = post_checkout(client, shopper, body)
    assert response.status_code == 201, response.text
    assert stock_of(engine, sku) == (1, 0)
    order = order_of(engine, response.json()["checkout_id"])
    assert order is not None and order["status"] == "paid"


def test_paying_with_a_saved_address_and_a_vault_token(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    from transactional.payments.model import Card

    sku = stock_sku(client, seller, 2)
    shopper = register(client)
    saved = client.post(
        "/v1/customers/me/addresses", json=ADDRESS, headers=shopper["headers"]
    ).json()
    token = services.provided["payments"].tokenize(
        Card(APPROVED, 12, 2040, "123", "Ada L"), shopper["customer_id"]
    )
    body = {
        "cart_id": filled_cart(client, shopper, {sku: 1}),
        "shipping_address": {"address_id": saved["address_id"]},
        "payment_method": {"type": "card", "token": token},
    }
    response = post_checkout(client, shopper, body)
    assert response.status_code == 201, response.text
    assert response.json()["payment"]["last4"] is None  # a token: we never saw the number
    assert saga_of(engine, response.json()["checkout_id"])["instrument_token"] == token


def test_an_expired_key_is_purged_and_can_be_used_anew(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    sku = stock_sku(client, seller, 5)
    shopper = register(client)
    key = str(uuid.uuid4())
    first = post_checkout(
        client, shopper, checkout_body(filled_cart(client, shopper, {sku: 1})), key
    )
    assert first.status_code == 201, first.text
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE checkout_idempotency_keys SET expires_at = now() - interval '1 second' "
                "WHERE customer_id = :id"
            ),
            {"id": shopper["customer_id"]},
        )
    services.provided["checkout"].recover()  # purges expired keys
    with engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM checkout_idempotency_keys WHERE customer_id = :id"),
            {"id": shopper["customer_id"]},
        ).scalar_one()
    assert left == 0
    again = post_checkout(
        client, shopper, checkout_body(filled_cart(client, shopper, {sku: 1})), key
    )
    assert again.status_code == 201, again.text
    assert "idempotent-replayed" not in again.headers
    assert again.json()["checkout_id"] != first.json()["checkout_id"]
    assert stock_of(engine, sku) == (3, 0)


# -- invalid carts, bad input ---------------------------------------------------------------


def test_invalid_carts_are_422(client: Any, seller: dict[str, Any]) -> None:
    sku = stock_sku(client, seller, 5)
    shopper, other = register(client), register(client)
    empty = filled_cart(client, shopper, {})
    theirs = filled_cart(client, other, {sku: 1})
    for cart_id, reason in [
        (empty, "empty"),
        (theirs, "cart_not_found"),
        ("crt_" + secrets.token_hex(8), "cart_not_found"),
    ]:
        problem = assert_problem(
            post_checkout(client, shopper, checkout_body(cart_id)), 422, "invalid_cart"
        )
        assert (problem["reason"], problem["step"]) == (reason, "validate")


def test_the_idempotency_key_header_is_required(client: Any, seller: dict[str, Any]) -> None:
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {stock_sku(client, seller, 1): 1})
    missing = client.post("/v1/checkout", json=checkout_body(cart_id), headers=shopper["headers"])
    assert_problem(missing, 400, "idempotency_key_missing")
    blank = post_checkout(client, shopper, checkout_body(cart_id), key=" ")
    assert_problem(blank, 400, "idempotency_key_missing")
    too_long = post_checkout(client, shopper, checkout_body(cart_id), key="k" * 300)
    assert_problem(too_long, 400, "idempotency_key_invalid")


def test_bad_bodies_and_references_are_problems_not_500(
    client: Any, seller: dict[str, Any]
) -> None:
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {stock_sku(client, seller, 3): 1})
    good = checkout_body(cart_id)
    card = good["payment_method"]["card"]
    for body, status, code in [
        ({k: v for k, v in good.items() if k != "cart_id"}, 400, None),  # missing field
        ({**good, "extra": True}, 400, None),
        ({**good, "payment_method": {"type": "cash"}}, 400, None),
        (
            {**good, "payment_method": {"type": "card", "card": {**card, "exp_month": -1}}},
            400,
            None,
        ),
        ({**good, "payment_method": {"type": "card"}}, 422, "invalid_payment_method"),
        ({**good, "shipping_address": {"city": "Berlin"}}, 422, "invalid_shipping_address"),
        (
            {**good, "shipping_address": {**ADDRESS, "address_id": "adr_1"}},
            422,
            "invalid_shipping_address",
        ),
        ({**good, "shipping_address": {"address_id": "adr_nope"}}, 422, "unknown_address"),
        (checkout_body(cart_id, address={**ADDRESS, "country": "JP"}), 422, "unserved_country"),
        (checkout_body(cart_id, number="4242424242424241"), 422, "invalid_card"),
        (
            {**good, "payment_method": {"type": "card", "card": {**card, "exp_year": 2001}}},
            422,
            "invalid_card",
        ),
    ]:
        assert_problem(post_checkout(client, shopper, body), status, code)
    assert_problem(
        client.post(
            "/v1/checkout",
            content=b"{not json",
            headers={
                **shopper["headers"],
                "Idempotency-Key": "k",
                "content-type": "application/json",
            },
        ),
        400,
    )


def test_tokens_are_required_and_checkouts_are_private(
    client: Any, services: Services, seller: dict[str, Any]
) -> None:
    shopper, other = register(client), register(client)
    cart_id = filled_cart(client, shopper, {stock_sku(client, seller, 2): 1})
    headers = {"Idempotency-Key": "k"}
    assert_problem(client.post("/v1/checkout", json=checkout_body(cart_id), headers=headers), 401)
    settings = services.settings
    past = JwtTokens(
        settings.jwt_secret, ttl_s=60, clock=lambda: datetime.now(UTC) - timedelta(hours=2)
    )
    expired, _ = past.issue(Principal(shopper["customer_id"], "eu"))
    assert_problem(
        post_checkout(
            client, {"headers": {"Authorization": f"Bearer {expired}"}}, checkout_body(cart_id)
        ),
        401,
        "token_expired",
    )
    done = post_checkout(client, shopper, checkout_body(cart_id))
    assert done.status_code == 201, done.text
    checkout_id = done.json()["checkout_id"]
    assert_problem(client.get(f"/v1/checkout/{checkout_id}"), 401, "missing_token")
    assert_problem(
        client.get(f"/v1/checkout/{checkout_id}", headers=other["headers"]),
        404,
        "checkout_not_found",
    )
    assert_problem(
        client.get("/v1/checkout/chk_nope", headers=shopper["headers"]), 404, "checkout_not_found"
    )


def test_openapi_documents_the_checkout(client: Any) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    post = paths["/v1/checkout"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in post["parameters"]}
    assert "201" in post["responses"]
    assert "/v1/checkout/{checkout_id}" in paths
