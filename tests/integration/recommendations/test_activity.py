"""The activity consumer on the real broker and Redis: fresh taste re-ranks, clicks count."""

from __future__ import annotations

import secrets
import time

from sqlalchemy import Engine

from schemas.registry import REGISTRY
from serving.recommendations.activity import ActivityConsumer
from serving.recommendations.adapters import RedisActivity
from serving.recommendations.service import Request
from souk.stack.endpoints import Endpoints
from tests.integration.publishing import publish_through_outbox
from tests.integration.recommendations.conftest import Shop


def test_recent_views_re_rank_the_feed_and_search_and_clicks_count_per_version(
    shop: Shop, endpoints: Endpoints, engine: Engine
) -> None:
    service = shop.recommendations
    customer = f"cus_fresh_{secrets.token_hex(4)}"  # unknown to ALS: taste from the stream only
    session = f"ses_{secrets.token_hex(6)}"
    views = [
        REGISTRY.new_event(
            "product.viewed",
            {"session_id": session, "customer_id": customer, "product_id": product},
            region=shop.region,
        )
        for product in shop.audio[:3]
    ]
    publish_through_outbox(endpoints, engine, views)

    consumer = ActivityConsumer(
        shop.settings,
        endpoints.kafka_bootstrap,
        shop.services.redis,
        topics=[f"{shop.region}.behaviour.v1"],
        group=f"recs-test-{secrets.token_hex(4)}",
    )
    consumer.consumer.subscribe(consumer.topics)
    try:
        deadline = time.monotonic() + 30
        while consumer.applied < len(views):
            assert time.monotonic() < deadline, "the consumer did not apply the views"
            consumer.poll_once(0.5)
        recent = RedisActivity(shop.services.redis).recent(customer, 10)
        assert [s.product_id for s in recent] == shop.audio[:3][::-1]  # newest first
        assert {s.kind for s in recent} == {"view"}

        # Search re-ranking: equal scores, the audio items (the fresh taste) rise.
        mixed = [shop.phones[1], shop.audio[4], shop.phones[2], shop.audio[5]]
        scores = service.rerank(customer, mixed, [1.0, 1.0, 1.0, 1.0])
        ranked = [p for _, p in sorted(zip(scores, mixed, strict=True), reverse=True)]
        assert set(ranked[:2]) == {shop.audio[4], shop.audio[5]}
        assert service.rerank("cus_nobody", mixed, [3.0, 2.0, 1.0, 0.5]) == [3.0, 2.0, 1.0, 0.5]

        # The feed of a customer ALS never saw: the viewed items' neighbours, audio first.
        feed = service.feed(customer, 5, Request(shop.region, session, customer))
        assert feed.items and all(p.category_id == "cat_electronics_audio" for p in feed.items[:3])
        for_you = service.for_you(customer, 5, Request(shop.region, session, customer))
        assert (
            for_you.model == "item_vectors" and for_you.model_version == shop.versions.item_vectors
        )
        assert not {p.product_id for p in for_you.items} & set(shop.audio[:3])  # already seen

        # The service's own served events (feed, for-you) went to the outbox; clicks come
        # back through /v1/events like these: click-through per model version, once per list.
        clicks = [
            REGISTRY.new_event(
                "recommendation.clicked",
                {
                    "recommendation_id": for_you.recommendation_id,
                    "session_id": session,
                    "customer_id": customer,
                    "placement": for_you.placement,
                    "product_id": for_you.items[position].product_id,
                    "position": position,
                },
                region=shop.region,
            )
            for position in (0, 1)
        ]
        before = {(r.model, r.model_version): r for r in service.click_through()}.get(
            ("item_vectors", for_you.model_version)
        )
        publish_through_outbox(endpoints, engine, clicks)  # the relay takes the served ones too
        deadline = time.monotonic() + 30
        while consumer.applied < len(views) + 2 + len(clicks):  # + feed and for-you served
            assert time.monotonic() < deadline, "the consumer did not apply served/clicked"
            consumer.poll_once(0.5)
        after = {(r.model, r.model_version): r for r in service.click_through()}[
            ("item_vectors", for_you.model_version)
        ]
        assert after.served - (before.served if before else 0) == 1
        assert after.clicked - (before.clicked if before else 0) == 1  # two clicks, one list
        # A replayed event changes nothing (event ids are applied once).
        consumer.writer.apply([*clicks, *views])
        again = {(r.model, r.model_version): r for r in service.click_through()}[
            ("item_vectors", for_you.model_version)
        ]
        assert (again.served, again.clicked) == (after.served, after.clicked)
        assert len(RedisActivity(shop.services.redis).recent(customer, 50)) == 3
    finally:
        consumer.consumer.close()


def test_admin_reads_click_through_over_http(shop: Shop) -> None:
    from tests.integration.http import admin_headers

    response = shop.client.get(
        "/v1/admin/recommendations/ctr", headers=admin_headers(shop.services.tokens)
    )
    assert response.status_code == 200, response.text
    for row in response.json()["versions"]:
        assert 0 <= row["clicked"] <= row["served"] or row["model"] == "unknown"
        assert row["ctr"] == (round(row["clicked"] / row["served"], 6) if row["served"] else 0)
