"""Sellers over HTTP on the real stack: apply, KYC review, history, events, bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, assert_problem, register
from tests.integration.purchase.catalog_helpers import apply_as_seller, fresh_sku, list_product
from transactional.shared.auth import JwtTokens, Principal


def _outbox(engine: Engine, key: str) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event_type, value FROM outbox WHERE message_key = :key ORDER BY id"),
            {"key": key},
        ).all()
    return [(row[0], json.loads(bytes(row[1]))["payload"]) for row in rows]


def test_apply_then_admin_approves_with_history_and_events(
    client: Any, services: Services, engine: Engine
) -> None:
    admin = admin_headers(services.tokens)
    shopper = register(client)
    applied = apply_as_seller(client, shopper, display_name="Ada's Gadgets")
    assert applied.status_code == 201, applied.text
    seller = applied.json()
    seller_id = seller["seller_id"]
    assert seller["kyc_status"] == "pending"
    assert seller["customer_id"] == shopper["customer_id"]
    assert [(t["from_status"], t["to_status"]) for t in seller["kyc_history"]] == [
        (None, "pending")
    ]

    assert client.get(f"/v1/sellers/{seller_id}", headers=shopper["headers"]).status_code == 200
    assert client.get("/v1/sellers/me", headers=shopper["headers"]).json()["seller_id"] == (
        seller_id
    )
    assert client.get(f"/v1/sellers/{seller_id}", headers=admin).status_code == 200
    stranger = register(client)
    assert_problem(
        client.get(f"/v1/sellers/{seller_id}", headers=stranger["headers"]),
        404,
        "seller_not_found",
    )
    assert_problem(client.get("/v1/sellers/me", headers=stranger["headers"]), 404)

    # Pending sellers are in the admin's review queue.
    queue = client.get("/v1/admin/sellers?status=pending&page_size=100", headers=admin)
    assert queue.status_code == 200
    assert all(s["kyc_status"] == "pending" for s in queue.json()["items"])
    assert queue.json()["total"] >= 1

    decision = {"decision": "approved", "reason": "registration and tax id verified"}
    assert_problem(
        client.post(
            f"/v1/admin/sellers/{seller_id}/kyc", json=decision, headers=shopper["headers"]
        ),
        403,
        "forbidden",
    )
    approved = client.post(f"/v1/admin/sellers/{seller_id}/kyc", json=decision, headers=admin)
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["kyc_status"] == "approved"
    last = body["kyc_history"][-1]
    assert (last["from_status"], last["to_status"], last["reviewer_id"]) == (
        "pending",
        "approved",
        "admin",
    )
    assert last["reason"] == decision["reason"]

    for again in ({"decision": "approved"}, {"decision": "rejected", "reason": "changed mind"}):
        assert_problem(
            client.post(f"/v1/admin/sellers/{seller_id}/kyc", json=again, headers=admin),
            409,
            "illegal_kyc_transition",
        )

    with engine.connect() as connection:
        transitions = connection.execute(
            text(
                "SELECT from_status, to_status, reviewer_id, reason FROM seller_kyc_transitions "
                "WHERE seller_id = :id ORDER BY transition_id"
            ),
            {"id": seller_id},
        ).all()
    assert [tuple(t) for t in transitions] == [
        (None, "pending", None, None),
        ("pending", "approved", "admin", decision["reason"]),
    ]
    events = _outbox(engine, seller_id)
    assert [event_type for event_type, _ in events] == ["seller.applied", "seller.kyc_changed"]
    assert events[0][1]["display_name"] == "Ada's Gadgets"
    changed = events[1][1]
    assert (changed["old_status"], changed["new_status"]) == ("pending", "verified")
    assert changed["reviewer_id"] == "admin"
    assert sorted(changed["documents_verified"]) == ["business_registration", "tax_id"]


def test_rejected_seller_stays_rejected_and_cannot_list(
    client: Any, services: Services, engine: Engine
) -> None:
    admin = admin_headers(services.tokens)
    shopper = register(client)
    seller_id = apply_as_seller(client, shopper).json()["seller_id"]
    url = f"/v1/admin/sellers/{seller_id}/kyc"

    assert_problem(
        client.post(url, json={"decision": "rejected"}, headers=admin), 422, "reason_required"
    )
    rejected = client.post(
        url, json={"decision": "rejected", "reason": "blurry documents"}, headers=admin
    )
    assert rejected.status_code == 200 and rejected.json()["kyc_status"] == "rejected"
    assert_problem(
        client.post(url, json={"decision": "approved"}, headers=admin),
        409,
        "illegal_kyc_transition",
    )
    listing = client.post(
        "/v1/products",
        json={
            "title": "Nope",
            "category_id": "cat_books",
            "variants": [{"sku": fresh_sku(), "prices": {"EUR": 100}}],
        },
        headers=shopper["headers"],
    )
    assert_problem(listing, 403, "seller_not_approved")
    events = _outbox(engine, seller_id)
    assert events[-1][0] == "seller.kyc_changed"
    assert events[-1][1]["new_status"] == "rejected"
    assert events[-1][1]["reason"] == "blurry documents"


def test_one_seller_account_per_customer(client: Any) -> None:
    shopper = register(client)
    assert apply_as_seller(client, shopper).status_code == 201
    assert_problem(apply_as_seller(client, shopper), 409, "seller_exists")


def test_pending_seller_cannot_list_until_approved(client: Any, services: Services) -> None:
    shopper = register(client)
    seller_id = apply_as_seller(client, shopper).json()["seller_id"]
    body = {
        "title": "Phone",
        "category_id": "cat_electronics_phones",
        "variants": [{"sku": fresh_sku(), "prices": {"EUR": 19900}}],
    }
    assert_problem(
        client.post("/v1/products", json=body, headers=shopper["headers"]),
        403,
        "seller_not_approved",
    )
    client.post(
        f"/v1/admin/sellers/{seller_id}/kyc",
        json={"decision": "approved"},
        headers=admin_headers(services.tokens),
    )
    seller = {**shopper, "seller_id": seller_id, "currency": "EUR"}
    product = list_product(client, seller, skus_prices={fresh_sku(): 19900})
    assert product["seller_id"] == seller_id


def test_bad_applications_and_decisions_are_problems_not_500(
    client: Any, services: Services
) -> None:
    shopper = register(client)
    admin = admin_headers(services.tokens)
    base = {
        "legal_name": "Acme GmbH",
        "display_name": "Acme",
        "business_type": "company",
        "country": "DE",
        "region": "eu",
        "documents": [{"kind": "tax_id", "reference": "ref-1"}],
    }
    for body, status, code in [
        ({k: v for k, v in base.items() if k != "legal_name"}, 400, None),  # missing field
        ({**base, "business_type": "charity"}, 400, None),
        ({**base, "country": "de"}, 400, None),
        ({**base, "unexpected": 1}, 400, None),
        ({**base, "documents": []}, 422, "documents_required"),
        ({**base, "documents": [{"kind": "selfie", "reference": "x"}]}, 422, None),
        ({**base, "documents": [{"kind": "tax_id", "reference": "  "}]}, 422, None),
        ({**base, "documents": [base["documents"][0]] * 2}, 422, "duplicate_document"),  # type: ignore[index]
        ({**base, "country": "US"}, 422, "country_not_in_region"),
        ({**base, "region": "mars"}, 422, "unknown_region"),
        ({**base, "display_name": "x" * 150}, 422, "invalid_display_name"),
        ({**base, "legal_name": "   "}, 422, "invalid_legal_name"),
    ]:
        assert_problem(
            client.post("/v1/sellers", json=body, headers=shopper["headers"]), status, code
        )
    assert_problem(client.post("/v1/sellers", json=base), 401, "missing_token")
    expired, _ = JwtTokens(
        services.settings.jwt_secret,
        ttl_s=60,
        clock=lambda: datetime.now(UTC) - timedelta(hours=2),
    ).issue(Principal(shopper["customer_id"], "eu"))
    assert_problem(
        client.post("/v1/sellers", json=base, headers={"Authorization": f"Bearer {expired}"}),
        401,
        "token_expired",
    )
    # None of the refused applications created an account.
    assert_problem(client.get("/v1/sellers/me", headers=shopper["headers"]), 404)

    assert_problem(
        client.post("/v1/admin/sellers/sel_nope/kyc", json={"decision": "approved"}, headers=admin),
        404,
        "seller_not_found",
    )
    seller_id = apply_as_seller(client, register(client)).json()["seller_id"]
    url = f"/v1/admin/sellers/{seller_id}/kyc"
    assert_problem(client.post(url, json={"decision": "maybe"}, headers=admin), 400)
    assert_problem(client.post(url, json={}, headers=admin), 400)
    assert_problem(client.post(url, json={"decision": "approved"}), 401, "missing_token")
    assert_problem(client.get("/v1/admin/sellers", headers=shopper["headers"]), 403)
    assert_problem(client.get("/v1/admin/sellers?status=frozen", headers=admin), 400)
    assert_problem(client.get("/v1/admin/sellers?page=0", headers=admin), 400)
    assert_problem(client.get(f"/v1/sellers/{seller_id}"), 401, "missing_token")
