"""Recommendations over HTTP on the real stack: real FAISS, Redis, PostgreSQL, registry."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from jobs.lake import table_store
from models.registry import ModelRegistry
from serving.recommendations.engines import ALS
from serving.recommendations.model import FALLBACK
from serving.recommendations.service import Request
from serving.recommendations.wiring import build_recommendations
from souk.stack.homes import temporary_home
from tests.integration.http import admin_headers, assert_problem
from tests.integration.purchase.test_checkout_api import set_stock
from tests.integration.recommendations.conftest import PHONES, Shop, train


def ids(body: dict[str, Any]) -> list[str]:
    return [item["product_id"] for item in body["items"]]


def served_events(engine: Engine, recommendation_id: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT topic, value FROM outbox WHERE event_type = 'recommendation.served' "
                "AND convert_from(value, 'UTF8') LIKE :pattern"
            ),
            {"pattern": f"%{recommendation_id}%"},
        ).all()
    return [{"topic": row.topic, **json.loads(bytes(row.value))} for row in rows]


def test_for_you_excludes_bought_out_of_stock_and_unlisted_and_carries_the_version(
    shop: Shop, engine: Engine
) -> None:
    response = shop.client.get(
        "/v1/recommendations/for-you",
        params={"limit": 20, "session_id": "ses_rec_test"},
        headers=shop.buyer["headers"],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "als"
    assert body["model_version"] == shop.versions.als
    assert body["fallback"] is False
    got = ids(body)
    assert got, body
    assert shop.bought not in got
    assert shop.out_of_stock not in got
    assert shop.archived not in got
    # The buyer's taste first: the phones they looked at lead the list.
    assert set(got[:4]) == set(shop.phones[1:5]), got
    [event] = served_events(engine, body["recommendation_id"])
    payload = event["payload"]
    assert event["event_type"] == "recommendation.served"
    assert payload["model_version"] == shop.versions.als
    assert payload["product_ids"] == got
    assert payload["customer_id"] == shop.buyer["customer_id"]
    assert payload["session_id"] == "ses_rec_test"
    assert event["topic"] == "eu.behaviour.v1"


def test_similar_items_come_from_the_promoted_index_and_are_servable(shop: Shop) -> None:
    anchor = shop.phones[1]
    body = shop.client.get(f"/v1/recommendations/similar/{anchor}", params={"limit": 3}).json()
    assert body["model"] == "item_vectors"
    assert body["model_version"] == shop.versions.item_vectors
    assert body["context_product_id"] == anchor
    got = ids(body)
    assert len(got) == 3 and anchor not in got
    assert set(got) <= set(shop.phones) - {shop.out_of_stock, shop.archived}
    # Cached per model version: the second answer is the same list.
    again = shop.client.get(f"/v1/recommendations/similar/{anchor}", params={"limit": 3}).json()
    assert ids(again) == got and again["recommendation_id"] != body["recommendation_id"]


def test_a_product_running_out_of_stock_drops_out_at_once(shop: Shop) -> None:
    anchor = shop.phones[1]
    first = ids(shop.client.get(f"/v1/recommendations/similar/{anchor}").json())
    gone = first[0]
    set_stock(shop.client, shop.seller, shop.sku_of[gone], 0)
    try:
        after = ids(shop.client.get(f"/v1/recommendations/similar/{anchor}").json())
        assert gone not in after
        assert after[: len(first) - 1] == [pid for pid in first if pid != gone]
    finally:
        set_stock(shop.client, shop.seller, shop.sku_of[gone], 50)
    assert gone in ids(shop.client.get(f"/v1/recommendations/similar/{anchor}").json())


def test_bought_together_ranks_co_purchases_without_out_of_stock(shop: Shop) -> None:
    body = shop.client.get(f"/v1/recommendations/bought-together/{shop.phones[1]}").json()
    assert body["model"] == "fbt" and body["model_version"] == shop.versions.fbt
    assert ids(body) == [shop.phones[2], shop.audio[0]]  # the out-of-stock partner is left out


def test_bad_parameters_are_problems(shop: Shop) -> None:
    client = shop.client
    assert_problem(client.get("/v1/recommendations/for-you"), 401, "missing_token")
    assert_problem(
        client.get(f"/v1/recommendations/similar/{shop.phones[1]}", params={"limit": 0}), 400
    )
    assert_problem(client.get("/v1/feed", params={"limit": 51}), 400)
    assert_problem(client.get("/v1/trending", params={"limit": "ten"}), 400)
    assert_problem(
        client.get(f"/v1/recommendations/similar/{shop.phones[1]}", params={"region": "mars"}),
        422,
        "unknown_region",
    )
    assert_problem(client.get("/v1/recommendations/similar/prd_00_nope"), 404, "product_not_found")
    assert_problem(
        client.get("/v1/recommendations/bought-together/prd_00_nope"), 404, "product_not_found"
    )
    other = client.get(
        "/v1/recommendations/for-you",
        params={"customer_id": "cus_someone_else"},
        headers=shop.buyer["headers"],
    )
    assert_problem(other, 403, "forbidden")
    assert_problem(client.get("/v1/admin/recommendations/ctr", headers=shop.buyer["headers"]), 403)


def test_an_admin_may_ask_for_a_customer(shop: Shop) -> None:
    response = shop.client.get(
        "/v1/recommendations/for-you",
        params={"customer_id": shop.buyer["customer_id"], "limit": 3},
        headers=admin_headers(shop.services.tokens),
    )
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "als" and shop.bought not in ids(response.json())


def test_a_promotion_is_served_without_a_restart_and_a_rollback_too(shop: Shop) -> None:
    service = shop.recommendations
    request = Request("eu", None, shop.buyer["customer_id"])
    assert service.for_you(shop.buyer["customer_id"], 5, request).model_version == shop.versions.als
    newer = train((shop.buyer["customer_id"], shop.phones, shop.audio), seed=2)
    version = shop.registry.register(ALS, newer.save).id
    shop.registry.promote(ALS, version)
    deadline = time.monotonic() + 5
    while service.for_you(shop.buyer["customer_id"], 5, request).model_version != version:
        assert time.monotonic() < deadline, "the promoted version was not picked up"
        time.sleep(0.06)
    shop.registry.rollback(ALS)
    deadline = time.monotonic() + 5
    while service.for_you(shop.buyer["customer_id"], 5, request).model_version != shop.versions.als:
        assert time.monotonic() < deadline, "the rollback was not picked up"
        time.sleep(0.06)


def write_window(shop: Shop, scope: str, end_ms: int, scores: dict[str, int]) -> None:
    from pipelines.trending import LATEST_KEY, window_key

    redis = shop.services.redis
    redis.zadd(window_key(scope, end_ms), {pid: score for pid, score in scores.items()})
    redis.hset(LATEST_KEY, scope, end_ms)


def test_trending_reads_the_streaming_window_and_filters_it(shop: Shop) -> None:
    end = int(datetime(2026, 12, 7, 10, 15, tzinfo=UTC).timestamp() * 1000)
    scope = f"region:{shop.region}:category:{PHONES}"
    write_window(shop, scope, end, {shop.phones[3]: 40, shop.out_of_stock: 90, shop.phones[4]: 20})
    body = shop.client.get(
        "/v1/trending", params={"region": shop.region, "category": PHONES}
    ).json()
    assert body["model"] == "trending_stream"
    assert body["model_version"] == "window-20261207T101500Z"
    assert body["scope"] == scope
    assert ids(body) == [shop.phones[3], shop.phones[4]]


def test_no_promoted_model_falls_back_to_trending_then_the_daily_baseline(shop: Shop) -> None:
    """An empty registry: for-you is the region's trending with model_version "fallback";
    with no streaming window either, the lake's daily table stands in."""
    home = temporary_home("souk-recs-empty-")
    settings = shop.settings.model_copy(update={"home": home})
    services = shop.services
    empty = build_recommendations(
        settings, services.engine, services.redis, services.outbox, registry=ModelRegistry(home)
    )
    customer = shop.buyer["customer_id"]
    lonely_region = "q" + shop.region[1:]  # no streaming window was ever written for it
    end = int(datetime(2026, 12, 7, 11, 0, tzinfo=UTC).timestamp() * 1000)
    write_window(shop, f"region:{shop.region}", end, {shop.audio[5]: 9, shop.audio[6]: 7})
    served = empty.for_you(customer, 5, Request(shop.region, None, customer))
    assert served.model_version == FALLBACK and served.fallback
    assert served.model == "trending_stream"
    assert [p.product_id for p in served.items] == [shop.audio[5], shop.audio[6]]
    similar = empty.similar(shop.phones[1], 5, Request(shop.region))
    assert similar.model_version == FALLBACK

    table_store(settings).overwrite(
        "gold/trending_daily",
        pa.table(
            {
                "day": pa.array([datetime(2026, 12, 6).date()] * 3, pa.date32()),
                "region": [lonely_region] * 3,
                "product_id": [shop.audio[2], shop.archived, shop.audio[3]],
                "score": pa.array([30, 20, 10], pa.int64()),
                "rank": pa.array([1, 2, 3], pa.int32()),
            }
        ),
    )
    daily = empty.trending(None, lonely_region, 5, Request(shop.region))
    shutil.rmtree(home, ignore_errors=True)
    assert daily.model == "trending_daily" and daily.model_version == "day-2026-12-06"
    assert [p.product_id for p in daily.items] == [shop.audio[2], shop.audio[3]]


def test_openapi_documents_every_endpoint_with_examples(shop: Shop) -> None:
    document = shop.client.get("/schema/openapi.json").json()
    for path in (
        "/v1/recommendations/similar/{product_id}",
        "/v1/recommendations/for-you",
        "/v1/recommendations/bought-together/{product_id}",
        "/v1/feed",
        "/v1/trending",
        "/v1/admin/recommendations/ctr",
    ):
        operation = document["paths"][path]["get"]
        content = operation["responses"]["200"]["content"]["application/json"]
        assert content.get("examples"), (path, content)


@pytest.mark.parametrize("limit", [1, 7])
def test_limits_are_honoured(shop: Shop, limit: int) -> None:
    body = shop.client.get("/v1/feed", params={"limit": limit}).json()
    assert len(body["items"]) <= limit
