"""Autosuggest end to end: events on Kafka → consumer group → Redis → the serving index."""

from __future__ import annotations

import secrets
import string
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from schemas.registry import REGISTRY
from serving.suggest.catalog import SqlCatalogTitles
from serving.suggest.consumer import SuggestConsumer, ops_of
from serving.suggest.model import decay_factor
from serving.suggest.ports import QuerySeen
from serving.suggest.redis_store import RedisCountStore
from serving.suggest.service import SuggestConfig, SuggestService
from souk.services import Services
from souk.stack.endpoints import Endpoints
from tests.integration.http import admin_headers, assert_problem
from tests.integration.publishing import publish_through_outbox
from tests.integration.purchase.catalog_helpers import approved_seller, fresh_sku, list_product
from transactional.shared.kafka import KafkaClientSettings


def _word() -> str:
    """A made-up brand nobody else's products or queries contain (letters only)."""
    return "zq" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))


def _search(region: str, query: str, results: int = 7) -> Any:
    return REGISTRY.new_event(
        "search.performed",
        {
            "search_id": f"srch_{uuid.uuid4().hex}",
            "session_id": f"ses_{uuid.uuid4().hex[:12]}",
            "query": query,
            "result_count": results,
        },
        region=region,
    )


def _created(region: str, product_id: str, title: str) -> Any:
    return REGISTRY.new_event(
        "product.created",
        {
            "product_id": product_id,
            "seller_id": "sel_test",
            "product_version": 1,
            "title": title,
            "category_id": "cat_test",
            "price": {"amount_minor": 1999, "currency": "EUR"},
        },
        region=region,
    )


def _consume_until(
    consumer: SuggestConsumer, done: Callable[[], bool], timeout: float = 45
) -> None:
    consumer.consumer.subscribe(consumer.topics, on_assign=consumer._on_assign)
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"consumer applied only {consumer.applied} events"
        consumer.poll_once()


def test_queries_and_titles_flow_from_events_to_suggestions(
    endpoints: Endpoints, engine: Engine, services: Services, client: Any, region: str
) -> None:
    brand = _word()
    seller = approved_seller(client, admin_headers(services.tokens))
    listed = list_product(
        client,
        seller,
        skus_prices={fresh_sku(): 4999},
        title=f"{brand.title()} Wireless Headphones",
    )
    store = RedisCountStore(services.redis, prefix=f"souk:test:{region}:")
    # No decay here: weights are plain counts (the consumer below uses the same half-life).
    config = SuggestConfig(
        regions=(region,), default_region=region, refresh_s=3600, half_life_days=0
    )
    service = SuggestService(store, SqlCatalogTitles(engine), config)
    service.warm()  # before any event: what follows must arrive through the change log
    assert [s.product_id for s in service.suggest(brand)] == [listed["product_id"]]

    started = time.monotonic()
    events = [
        *(_search(region, f"{brand} Wireless Headphones") for _ in range(3)),
        _search(region, f"{brand} wireless mouse"),
        _search(region, f"{brand} wirexyz", results=0),  # found nothing: never suggested
    ]
    publish_through_outbox(endpoints, engine, events)
    publish_through_outbox(
        endpoints, engine, [_created(region, "prd_00_" + brand, f"{brand} Bluetooth Speaker")]
    )
    consumer = SuggestConsumer(
        store,
        KafkaClientSettings(endpoints.kafka_bootstrap, session_timeout_ms=6000),
        [region],
        half_life_days=0,
        group=f"souk-suggest-{region}",
    )
    try:
        _consume_until(consumer, lambda: consumer.applied >= 5)
    finally:
        consumer.consumer.close()
    service.refresh()
    visible_after = time.monotonic() - started

    found = service.suggest(f"{brand} wi")
    assert [(s.text, s.kind, s.weight) for s in found] == [
        (f"{brand} wireless headphones", "query", 3.0),
        (f"{brand} wireless mouse", "query", 1.0),
    ]  # the title reads as the popular query: one suggestion, the heavier one
    fixed = service.suggest(f"{brand} wireles hea")
    assert fixed[0].text == f"{brand} wireless headphones" and fixed[0].corrected
    assert f"{brand} Bluetooth Speaker" in [s.text for s in service.suggest(brand)]
    assert not [s for s in service.suggest(f"{brand} wirex") if "wirexyz" in s.text]
    assert visible_after < 30  # publish → relay → consumer → Redis → index, on 2 busy cores

    # A restarted process rebuilds from the catalog and Redis: the counts survive.
    restarted = SuggestService(store, SqlCatalogTitles(engine), config)
    assert [(s.text, s.weight) for s in restarted.suggest(f"{brand} wi")][:2] == [
        (f"{brand} wireless headphones", 3.0),
        (f"{brand} wireless mouse", 1.0),
    ]
    # Redelivery (a new group reads everything again) counts nothing twice.
    again = SuggestConsumer(
        store,
        KafkaClientSettings(endpoints.kafka_bootstrap, session_timeout_ms=6000),
        [region],
        half_life_days=0,
        group=f"souk-suggest-{region}-again",
    )
    try:
        seen: list[Any] = []
        deadline = time.monotonic() + 30
        again.consumer.subscribe(again.topics)
        while len(seen) < 6 and time.monotonic() < deadline:
            seen += [m for m in again.consumer.consume(100, timeout=0.5) if m.error() is None]
        assert len(seen) == 6
        assert store.apply(ops_of(seen, 0)) == 0
    finally:
        again.consumer.close()
    assert store.queries(region, 10)[f"{brand} wireless headphones"] == 3.0


def test_suggest_endpoint_contract(client: Any, services: Services) -> None:
    brand = _word()
    # Two searches now, stored as the consumer stores them (scaled for the decay).
    now = decay_factor(datetime.now(UTC), services.settings.suggest_half_life_days)
    RedisCountStore(services.redis).apply(
        [QuerySeen(str(uuid.uuid4()), "eu", f"{brand} garden hose", 2 * now)]
    )
    services["suggest"].refresh()
    response = client.get("/v1/suggest", params={"q": f"{brand} gar", "region": "eu"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == f"{brand} gar" and body["region"] == "eu"
    assert body["suggestions"][0] == {
        "text": f"{brand} garden hose",
        "kind": "query",
        "product_id": None,
        "score": pytest.approx(2.0, rel=0.01),
        "corrected": False,
    }
    assert body["took_ms"] >= 0
    assert_problem(client.get("/v1/suggest", params={"q": ""}), 400)
    assert_problem(client.get("/v1/suggest", params={"q": "x" * 201}), 400)
    assert_problem(client.get("/v1/suggest"), 400)
    assert_problem(client.get("/v1/suggest", params={"q": "a", "limit": 11}), 400)
    assert_problem(
        client.get("/v1/suggest", params={"q": "a", "region": "zz"}), 422, "unknown_region"
    )
    assert client.get("/v1/suggest", params={"q": "?!"}).json()["suggestions"] == []


def test_openapi_documents_suggest_with_examples(client: Any) -> None:
    operation = client.get("/schema/openapi.json").json()["paths"]["/v1/suggest"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]
    assert ok.get("examples"), ok
    example = next(iter(ok["examples"].values()))["value"]
    assert example["suggestions"][0]["text"] == "wireless headphones"
    names = {p["name"]: p for p in operation["parameters"]}
    assert names["q"]["required"] and names["q"].get("examples")


def test_redis_outage_keeps_serving_the_last_state(services: Services, engine: Engine) -> None:
    dead = RedisCountStore(redis.Redis(port=1, socket_connect_timeout=0.2))
    live = RedisCountStore(services.redis, prefix="souk:test:outage:")
    config = SuggestConfig(regions=("eu",), default_region="eu", refresh_s=0.0)
    service = SuggestService(live, SqlCatalogTitles(engine), config)
    before = service.suggest("a")
    service._store = dead  # the store goes away after start-up
    assert service.suggest("a") == before  # the failed refresh runs aside, the state stays
