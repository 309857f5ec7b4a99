"""Orders over HTTP on the real stack: read, list, cancel, history, admin transitions, bad input."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.test_orders_service import outbox_types, pay_order, place_order
from transactional.shared.auth import JwtTokens, Principal


def shopper_with_order(
    client: Any, services: Services, **changes: Any
) -> tuple[dict[str, Any], Any]:
    """A registered shopper and one order placed for them."""
    shopper = register(client)
    return shopper, place_order(services, shopper["customer_id"], **changes)


def test_a_shopper_reads_their_order_and_not_anyone_elses(client: Any, services: Services) -> None:
    shopper, order = shopper_with_order(client, services)
    response = client.get(f"/v1/orders/{order.order_id}", headers=shopper["headers"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["order_id"] == order.order_id and body["status"] == "placed"
    assert body["totals"]["grand_total"] == {"amount_minor": 5999, "currency": "EUR"}
    assert [len(g["line_ids"]) for g in body["fulfilment_groups"]] == [1, 1, 1]
    assert body["lines"][0]["unit_price"] == {"amount_minor": 1250, "currency": "EUR"}

    stranger = register(client)
    for path in (f"/v1/orders/{order.order_id}", f"/v1/orders/{order.order_id}/transitions"):
        assert_problem(client.get(path, headers=stranger["headers"]), 404, "order_not_found")
    assert_problem(
        client.post(f"/v1/orders/{order.order_id}/cancel", json={}, headers=stranger["headers"]),
        404,
        "order_not_found",
    )
    for missing in (f"ord_eu_{secrets.token_hex(16)}", "not-an-order"):
        assert_problem(
            client.get(f"/v1/orders/{missing}", headers=shopper["headers"]), 404, "order_not_found"
        )
    # An admin may read any order.
    admin = client.get(f"/v1/orders/{order.order_id}", headers=admin_headers(services.tokens))
    assert admin.status_code == 200


def test_listing_pages_the_callers_orders_newest_first(client: Any, services: Services) -> None:
    shopper = register(client)
    placed = [place_order(services, shopper["customer_id"]).order_id for _ in range(3)]
    place_order(services)  # someone else's
    first = client.get("/v1/orders?page=1&page_size=2", headers=shopper["headers"])
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["total"], body["page"], body["page_size"]) == (3, 1, 2)
    assert [o["order_id"] for o in body["items"]] == placed[::-1][:2]
    second = client.get(
        "/v1/orders", params={"page": 2, "page_size": 2}, headers=shopper["headers"]
    )
    assert [o["order_id"] for o in second.json()["items"]] == [placed[0]]
    default = client.get("/v1/orders", headers=register(client)["headers"]).json()
    assert default == {"items": [], "total": 0, "page": 1, "page_size": 20}
    for params in ({"page": 0}, {"page_size": 0}, {"page_size": 101}, {"page": "x"}):
        assert_problem(client.get("/v1/orders", params=params, headers=shopper["headers"]), 400)


def test_the_customer_cancels_a_paid_order_and_is_refunded(
    client: Any, services: Services, engine: Engine
) -> None:
    shopper, order = shopper_with_order(client, services)
    pay_order(services, order)
    response = client.post(
        f"/v1/orders/{order.order_id}/cancel",
        json={"reason": "ordered the wrong size"},
        headers=shopper["headers"],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["refunded"] == {"amount_minor": 5999, "currency": "EUR"}
    again = client.post(f"/v1/orders/{order.order_id}/cancel", json={}, headers=shopper["headers"])
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert outbox_types(engine, order.order_id) == ["order.placed", "order.paid", "order.cancelled"]
    with engine.connect() as connection:
        cancelled = connection.execute(
            text(
                "SELECT convert_from(value, 'UTF8') FROM outbox WHERE message_key = :id "
                "AND event_type = 'order.cancelled'"
            ),
            {"id": order.order_id},
        ).scalar_one()
    assert '"cancelled_by":"customer"' in cancelled and "ordered the wrong size" in cancelled
    history = client.get(f"/v1/orders/{order.order_id}/transitions", headers=shopper["headers"])
    moves = history.json()
    assert [(m["from_status"], m["to_status"]) for m in moves] == [
        (None, "placed"),
        ("placed", "paid"),
        ("paid", "cancelled"),
    ]
    assert moves[-1]["actor"] == f"customer:{shopper['customer_id']}"
    assert moves[-1]["cause"] == "customer_request: ordered the wrong size"


def test_admin_moves_an_order_to_delivered_and_illegal_moves_are_409(
    client: Any, services: Services, engine: Engine
) -> None:
    shopper, order = shopper_with_order(client, services, region="us")
    admin = admin_headers(services.tokens)
    path = f"/v1/admin/orders/{order.order_id}/transitions"
    assert_problem(
        client.post(path, json={"to": "packed", "cause": "x"}, headers=admin),
        409,
        "illegal_transition",
    )
    pay_order(services, order)
    for to in ("packed", "shipped", "delivered"):
        response = client.post(path, json={"to": to, "cause": f"dock: {to}"}, headers=admin)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == to
    shipped = client.get(f"/v1/orders/{order.order_id}", headers=shopper["headers"]).json()
    assert all(g["shipment_id"] and g["carrier"] for g in shipped["fulfilment_groups"])
    problem = assert_problem(
        client.post(path, json={"to": "shipped", "cause": "again"}, headers=admin),
        409,
        "illegal_transition",
    )
    assert (problem["order_status"], problem["to"]) == ("delivered", "shipped")
    assert_problem(
        client.post(f"/v1/orders/{order.order_id}/cancel", json={}, headers=shopper["headers"]),
        409,
        "illegal_transition",
    )
    with engine.connect() as connection:
        moves = connection.execute(
            text(
                "SELECT to_status, actor FROM order_transitions WHERE region = 'us' "
                "AND order_id = :id ORDER BY seq"
            ),
            {"id": order.order_id},
        ).all()
    assert [m.to_status for m in moves] == ["placed", "paid", "packed", "shipped", "delivered"]
    assert moves[-1].actor == "admin:admin"
    returned = client.post(path, json={"to": "returned", "cause": "parcel back"}, headers=admin)
    assert returned.status_code == 200 and returned.json()["refunded"]["amount_minor"] == 5999


def test_admin_cancels_with_a_reason(client: Any, services: Services, engine: Engine) -> None:
    _, order = shopper_with_order(client, services)
    admin = admin_headers(services.tokens)
    path = f"/v1/admin/orders/{order.order_id}/transitions"
    assert_problem(
        client.post(path, json={"to": "cancelled", "cause": "felt like it"}, headers=admin),
        422,
        "invalid_cancel_reason",
    )
    response = client.post(
        path,
        json={"to": "cancelled", "cause": "fraud_suspected", "note": "card testing"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert outbox_types(engine, order.order_id)[-1] == "order.cancelled"


def test_admin_transitions_need_an_admin_and_a_valid_body(client: Any, services: Services) -> None:
    shopper, order = shopper_with_order(client, services)
    path = f"/v1/admin/orders/{order.order_id}/transitions"
    body = {"to": "packed", "cause": "x"}
    assert_problem(client.post(path, json=body), 401, "missing_token")
    assert_problem(client.post(path, json=body, headers=shopper["headers"]), 403)
    admin = admin_headers(services.tokens)
    for bad in (
        {"to": "paid", "cause": "x"},
        {"to": "teleported", "cause": "x"},
        {"to": "packed"},
        {"to": "packed", "cause": ""},
        {"cause": "x"},
        {"to": "packed", "cause": "x", "extra": 1},
        {"to": "packed", "cause": 5},
    ):
        assert_problem(client.post(path, json=bad, headers=admin), 400)
    assert_problem(
        client.post(path, content=b"{oops", headers={**admin, "content-type": "application/json"}),
        400,
    )
    missing = f"/v1/admin/orders/ord_eu_{secrets.token_hex(16)}/transitions"
    assert_problem(client.post(missing, json=body, headers=admin), 404, "order_not_found")


def test_cancel_bodies_are_validated(client: Any, services: Services) -> None:
    shopper, order = shopper_with_order(client, services)
    path = f"/v1/orders/{order.order_id}/cancel"
    for bad in ({"reason": ""}, {"reason": "x" * 501}, {"reason": 7}, {"why": "x"}):
        assert_problem(client.post(path, json=bad, headers=shopper["headers"]), 400)
    assert (
        client.get(f"/v1/orders/{order.order_id}", headers=shopper["headers"]).json()["status"]
        == "placed"
    )


def test_missing_and_expired_tokens_are_401(client: Any, services: Services) -> None:
    shopper, order = shopper_with_order(client, services)
    expired, _ = JwtTokens(
        services.settings.jwt_secret,
        ttl_s=60,
        clock=lambda: datetime.now(UTC) - timedelta(hours=2),
    ).issue(Principal(shopper["customer_id"], "eu"))
    stale = {"Authorization": f"Bearer {expired}"}
    for method, path in (
        ("get", "/v1/orders"),
        ("get", f"/v1/orders/{order.order_id}"),
        ("get", f"/v1/orders/{order.order_id}/transitions"),
        ("post", f"/v1/orders/{order.order_id}/cancel"),
    ):
        kwargs: dict[str, Any] = {"json": {}} if method == "post" else {}
        assert_problem(getattr(client, method)(path, **kwargs), 401, "missing_token")
        assert_problem(getattr(client, method)(path, headers=stale, **kwargs), 401, "token_expired")


def test_openapi_lists_the_order_endpoints(client: Any) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    for path in (
        "/v1/orders",
        "/v1/orders/{order_id}",
        "/v1/orders/{order_id}/cancel",
        "/v1/orders/{order_id}/transitions",
        "/v1/admin/orders/{order_id}/transitions",
    ):
        assert path in paths, sorted(paths)
