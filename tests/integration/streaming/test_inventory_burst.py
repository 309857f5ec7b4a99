"""The inventory view converges to PostgreSQL after a burst of concurrent orders,
cancellations and restocks fired through the HTTP API (real app, relay, broker, Flink)."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis
from sqlalchemy import Engine, text

from pipelines.common.runner import Servers
from pipelines.inventory import JOB as INVENTORY
from pipelines.inventory import stock_key
from souk.services import Services
from souk.settings import Settings
from souk.stack.endpoints import Endpoints
from souk.topics import ensure_topics
from tests.integration.http import admin_headers, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import (
    WAREHOUSE,
    checkout_body,
    filled_cart,
    set_stock,
    stock_sku,
)
from tests.integration.purchase.test_checkout_concurrency import race
from tests.integration.streaming.conftest import running, wait_for
from transactional.shared.kafka import KafkaClientSettings, KafkaEventPublisher
from transactional.shared.outbox_store import PostgresOutboxStore
from transactional.shared.relay import Relay


def relay_everything(endpoints: Endpoints) -> None:
    """Publish every committed outbox row (the relay the server runs, drained once)."""
    relay = Relay(
        PostgresOutboxStore(endpoints.database_url),
        KafkaEventPublisher(KafkaClientSettings(endpoints.kafka_bootstrap)),
    )
    try:
        relay.drain()
    finally:
        relay.close()


def truth(engine: Engine, skus: list[str]) -> dict[str, int]:
    """Available units (on hand minus reserved) of ``skus`` in the test warehouse."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT sku, on_hand - reserved AS available FROM stock_levels "
                "WHERE warehouse_id = :w AND sku = ANY(:skus)"
            ),
            {"w": WAREHOUSE, "skus": skus},
        ).all()
    return {row.sku: int(row.available) for row in rows}


def view(client: redis.Redis, skus: list[str]) -> dict[str, int | None]:
    """What the inventory job shows for ``skus`` in the test warehouse."""
    values = {sku: client.hget(stock_key(sku), f"wh:{WAREHOUSE}") for sku in skus}
    return {sku: None if v is None else int(v) for sku, v in values.items()}


def test_the_view_matches_postgres_after_a_burst_of_orders_cancels_and_restocks(
    client: Any,
    engine: Engine,
    services: Services,
    live_url: str,
    endpoints: Endpoints,
    souk_settings: Settings,
    tmp_path: Path,
) -> None:
    rng = random.Random(8)
    seller = approved_seller(client, admin_headers(services.tokens))
    skus = [stock_sku(client, seller, 12, price_minor=2500) for _ in range(5)]
    buyers = [register(client) for _ in range(16)]
    carts = [
        filled_cart(client, buyer, {sku: rng.randint(1, 3) for sku in rng.sample(skus, 2)})
        for buyer in buyers
    ]
    settings = souk_settings.model_copy(
        update={
            "home": tmp_path / "home",
            "kafka_bootstrap": endpoints.kafka_bootstrap,
            "redis_url": endpoints.redis_url,
            "flink_checkpoint_interval_s": 1.0,
            "flink_restart_attempts": 0,
        }
    )
    ensure_topics(settings, endpoints.kafka_bootstrap)
    servers = Servers(endpoints.kafka_bootstrap, endpoints.redis_url)
    with running(INVENTORY, settings, servers), httpx.Client(base_url=live_url, timeout=60) as http:
        # The burst: 16 checkouts racing for 60 units, with restocks among them.
        calls: list[Any] = [
            lambda b=buyer, c=cart: http.post(
                "/v1/checkout",
                json=checkout_body(c),
                headers={**b["headers"], "Idempotency-Key": str(uuid.uuid4())},
            )
            for buyer, cart in zip(buyers, carts, strict=True)
        ]
        calls += [lambda sku=sku: set_stock(client, seller, sku, 20) for sku in skus[:2]]
        results = race(calls)
        placed = [
            (buyer, r.json()["order_id"])
            for buyer, r in zip(buyers, results[: len(buyers)], strict=True)
            if r.status_code == 201
        ]
        assert placed, [r.text for r in results[: len(buyers)]][:3]
        # Shoppers cancel a third of the paid orders: their units go back on the shelf.
        for buyer, order_id in placed[::3]:
            cancelled = http.post(
                f"/v1/orders/{order_id}/cancel", json={}, headers=buyer["headers"]
            )
            assert cancelled.status_code == 200, cancelled.text
        relay_everything(endpoints)

        reader = redis.Redis.from_url(endpoints.redis_url, decode_responses=True)
        expected = truth(engine, skus)
        assert len(expected) == len(skus)
        # Within seconds of the last event the view equals PostgreSQL for every SKU.
        wait_for(lambda: view(reader, skus) == expected, timeout_s=60)
        assert sum(expected.values()) < 5 * 12 + 2 * 8  # some units really were sold
