"""Customers over HTTP on the real stack: register, sign in, profile, addresses, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import assert_problem, register
from transactional.shared.auth import JwtTokens, Principal

ADDRESS = {
    "full_name": "Ada L",
    "line1": "1 Main St",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


def test_register_sign_in_profile_and_addresses(client: Any, engine: Engine) -> None:
    shopper = register(client)
    me = client.get("/v1/customers/me", headers=shopper["headers"])
    assert me.status_code == 200
    assert me.json()["email"] == shopper["email"]
    assert "password_hash" not in me.json()

    first = client.post("/v1/customers/me/addresses", json=ADDRESS, headers=shopper["headers"])
    second = client.post(
        "/v1/customers/me/addresses",
        json={**ADDRESS, "city": "Paris", "country": "FR", "is_default": True},
        headers=shopper["headers"],
    )
    assert first.status_code == 201 and second.status_code == 201
    listed = client.get("/v1/customers/me/addresses", headers=shopper["headers"]).json()
    assert [a["city"] for a in listed] == ["Paris", "Berlin"]
    assert [a["is_default"] for a in listed] == [True, False]

    with engine.connect() as connection:
        types = (
            connection.execute(
                text("SELECT event_type FROM outbox WHERE message_key = :id ORDER BY id"),
                {"id": shopper["customer_id"]},
            )
            .scalars()
            .all()
        )
        stored = connection.execute(
            text("SELECT password_hash FROM customers WHERE customer_id = :id"),
            {"id": shopper["customer_id"]},
        ).scalar_one()
    assert types == ["user.registered", "customer.address_added", "customer.address_added"]
    assert stored.startswith("$argon2id$") and shopper["password"] not in stored


def test_email_is_unique_case_insensitively(client: Any) -> None:
    shopper = register(client)
    again = client.post(
        "/v1/customers",
        json={
            "email": shopper["email"].upper(),
            "password": "another password",
            "name": "X",
            "region": "eu",
            "currency": "EUR",
        },
    )
    assert_problem(again, 409, "email_taken")


def test_wrong_password_and_unknown_email_look_the_same(client: Any) -> None:
    shopper = register(client)
    wrong = client.post("/v1/auth/token", json={"email": shopper["email"], "password": "nope-nope"})
    unknown = client.post(
        "/v1/auth/token", json={"email": "nobody@example.com", "password": "whatever1"}
    )
    assert (
        assert_problem(wrong, 401, "invalid_credentials")["detail"]
        == (assert_problem(unknown, 401, "invalid_credentials")["detail"])
    )


def test_bad_registrations_are_problems_not_500(client: Any) -> None:
    base = {
        "email": "a@example.com",
        "password": "long enough",
        "name": "A",
        "region": "eu",
        "currency": "EUR",
    }
    for body, status in [
        ({k: v for k, v in base.items() if k != "email"}, 400),  # missing field
        ({**base, "currency": "eur"}, 400),  # not an ISO code
        ({**base, "currency": "XYZ"}, 422),  # unsupported
        ({**base, "region": "mars"}, 422),
        ({**base, "password": "short"}, 422),
        ({**base, "email": "not-an-email"}, 422),
        ({**base, "extra": 1}, 400),
    ]:
        assert_problem(client.post("/v1/customers", json=body), status)
    response = client.post(
        "/v1/customers", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)


def test_tokens_missing_malformed_expired_or_forged_are_401(
    client: Any, services: Services
) -> None:
    shopper = register(client)
    assert_problem(client.get("/v1/customers/me"), 401, "missing_token")
    assert_problem(client.get("/v1/customers/me", headers={"Authorization": "Basic x"}), 401)
    assert_problem(
        client.get("/v1/customers/me", headers={"Authorization": "Bearer abc"}),
        401,
        "invalid_token",
    )
    settings = services.settings
    past = JwtTokens(
        settings.jwt_secret, ttl_s=60, clock=lambda: datetime.now(UTC) - timedelta(hours=2)
    )
    expired, _ = past.issue(Principal(shopper["customer_id"], "eu"))
    assert_problem(
        client.get("/v1/customers/me", headers={"Authorization": f"Bearer {expired}"}),
        401,
        "token_expired",
    )
    forged, _ = JwtTokens("another-secret-another-secret-another", ttl_s=60).issue(
        Principal(shopper["customer_id"], "eu")
    )
    assert_problem(
        client.get("/v1/customers/me", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "invalid_token",
    )


def test_openapi_document_lists_the_contract(client: Any) -> None:
    document = client.get("/schema/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    for path in [
        "/v1/customers",
        "/v1/auth/token",
        "/v1/customers/me",
        "/v1/customers/me/addresses",
    ]:
        assert path in paths, sorted(paths)
