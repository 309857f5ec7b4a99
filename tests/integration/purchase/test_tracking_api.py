"""The tracking collector over HTTP on the real stack: batches land in the outbox or not at all."""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import assert_problem, register
from transactional.shared.auth import JwtTokens, Principal


def session() -> str:
    return f"ses_{secrets.token_hex(8)}"


def viewed(session_id: str, **payload: Any) -> dict[str, Any]:
    return {
        "type": "product.viewed",
        "payload": {"session_id": session_id, "product_id": "prd_1", **payload},
    }


def rows(engine: Engine, session_id: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT event_id, event_type, topic, value FROM outbox "
                "WHERE message_key = :key ORDER BY id"
            ),
            {"key": session_id},
        ).all()
    return [
        {
            "event_id": row.event_id,
            "type": row.event_type,
            "topic": row.topic,
            "envelope": json.loads(bytes(row.value)),
        }
        for row in found
    ]


def test_a_batch_is_accepted_into_the_behaviour_topic(
    client: Any, engine: Engine, services: Services
) -> None:
    sid = session()
    at = datetime.now(UTC) - timedelta(minutes=2)
    batch = [
        viewed(sid, source="search", search_id="srch_1", position=3),
        {
            "type": "search.performed",
            "payload": {
                "search_id": "srch_1",
                "session_id": sid,
                "query": "red shoes",
                "result_count": 12,
            },
            "occurred_at": at.isoformat(),
        },
        {
            "type": "recommendation.served",
            "payload": {
                "recommendation_id": "rec_1",
                "session_id": sid,
                "placement": "pdp.similar",
                "model": "als",
                "product_ids": ["prd_1", "prd_2"],
            },
        },
        {
            "type": "recommendation.clicked",
            "payload": {
                "recommendation_id": "rec_1",
                "session_id": sid,
                "placement": "pdp.similar",
                "product_id": "prd_2",
                "position": 1,
            },
        },
    ]
    response = client.post("/v1/events", json={"events": batch})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 4 and len(body["event_ids"]) == 4
    stored = rows(engine, sid)
    assert [str(row["event_id"]) for row in stored] == body["event_ids"]
    assert [row["type"] for row in stored] == [event["type"] for event in batch]
    region = services.settings.region
    assert {row["topic"] for row in stored} == {f"{region}.behaviour.v1"}
    assert stored[0]["envelope"]["payload"]["position"] == 3
    assert stored[0]["envelope"]["payload"].get("customer_id") is None
    occurred = datetime.fromisoformat(stored[1]["envelope"]["occurred_at"].replace("Z", "+00:00"))
    assert abs(occurred - at) < timedelta(milliseconds=1)


def test_a_signed_in_shopper_is_attributed(client: Any, engine: Engine) -> None:
    shopper = register(client)
    sid = session()
    response = client.post(
        "/v1/events",
        json={"events": [viewed(sid), viewed(sid, customer_id=shopper["customer_id"])]},
        headers=shopper["headers"],
    )
    assert response.status_code == 202, response.text
    customers = [row["envelope"]["payload"]["customer_id"] for row in rows(engine, sid)]
    assert customers == [shopper["customer_id"]] * 2

    other = session()
    foreign = client.post(
        "/v1/events",
        json={"events": [viewed(other, customer_id="cus_someone_else")]},
        headers=shopper["headers"],
    )
    body = assert_problem(foreign, 422, "invalid_events")
    assert [e["index"] for e in body["errors"]] == [0]
    anonymous = client.post(
        "/v1/events", json={"events": [viewed(other, customer_id=shopper["customer_id"])]}
    )
    assert_problem(anonymous, 422, "invalid_events")
    assert rows(engine, other) == []


def test_one_bad_event_refuses_the_whole_batch(client: Any, engine: Engine) -> None:
    sid = session()
    batch = [
        viewed(sid),
        viewed(sid, source="telepathy"),
        {"type": "order.placed", "payload": {"order_id": "ord_1"}},
        {"type": "product.vieweed", "payload": {"session_id": sid}},
        {"type": "product.viewed", "payload": {"product_id": "prd_1"}},
        viewed(sid),
    ]
    response = client.post("/v1/events", json={"events": batch})
    body = assert_problem(response, 422, "invalid_events")
    assert [(e["index"], e["type"]) for e in body["errors"]] == [
        (1, "product.viewed"),
        (2, "order.placed"),
        (3, "product.vieweed"),
        (4, "product.viewed"),
    ]
    assert all(e["error"] for e in body["errors"])
    assert rows(engine, sid) == []


def test_batch_size_and_shape_errors_are_problems(client: Any, services: Services) -> None:
    sid = session()
    assert_problem(client.post("/v1/events", json={"events": []}), 422, "empty_batch")
    too_many = client.post("/v1/events", json={"events": [viewed(sid)] * 501})
    assert assert_problem(too_many, 422, "batch_too_large")["max"] == 500
    full = client.post("/v1/events", json={"events": [viewed(sid)] * 500})
    assert full.status_code == 202 and full.json()["accepted"] == 500
    for body in [
        {},
        {"events": "nope"},
        {"events": [{"payload": {"session_id": sid}}]},  # no type
        {"events": [{"type": "product.viewed"}]},  # no payload
        {"events": [{"type": "product.viewed", "payload": [1]}]},
        {"events": [{**viewed(sid), "occurred_at": "2026-01-01T00:00:00"}]},  # naive
        {"events": [{**viewed(sid), "extra": 1}]},
    ]:
        assert_problem(client.post("/v1/events", json=body), 400)
    future = {**viewed(sid), "occurred_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    assert_problem(client.post("/v1/events", json={"events": [future]}), 422, "invalid_events")
    response = client.post(
        "/v1/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_problem(response, 400)

    past = JwtTokens(
        services.settings.jwt_secret,
        ttl_s=60,
        clock=lambda: datetime.now(UTC) - timedelta(hours=2),
    )
    expired, _ = past.issue(Principal("cus_x", "eu"))
    assert_problem(
        client.post(
            "/v1/events",
            json={"events": [viewed(sid)]},
            headers={"Authorization": f"Bearer {expired}"},
        ),
        401,
        "token_expired",
    )


def test_event_ids_are_uuids(client: Any) -> None:
    response = client.post("/v1/events", json={"events": [viewed(session())]})
    assert response.status_code == 202
    assert uuid.UUID(response.json()["event_ids"][0]).version == 7
