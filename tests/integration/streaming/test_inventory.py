"""The inventory job on a real mini-cluster: per-warehouse and per-region availability in
Redis and the compacted topic, and a SIGKILLed job resuming from its checkpoint."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from confluent_kafka import Consumer

from pipelines import control
from pipelines.common.checkpoints import latest_checkpoint
from pipelines.common.runner import Servers
from pipelines.inventory import AVAILABILITY_TOPIC, stock_key
from schemas.envelope import Envelope
from schemas.registry import REGISTRY
from souk.settings import Settings
from tests.integration.streaming.conftest import wait_for


def adjusted(region: str, sku: str, warehouse: str, available: int) -> Envelope:
    """A receipt leaving ``available`` units of ``sku`` in ``warehouse``."""
    return REGISTRY.new_event(
        "stock.adjusted",
        {
            "sku": sku,
            "warehouse_id": warehouse,
            "delta": 1,
            "on_hand_after": available,
            "available_after": available,
            "reason": "receipt",
        },
        region=region,
    )


def reserved(region: str, sku: str, warehouse: str, quantity: int, available: int) -> Envelope:
    """A checkout's hold of ``quantity`` units, leaving ``available``."""
    return REGISTRY.new_event(
        "stock.reserved",
        {
            "reservation_id": f"res_{secrets.token_hex(4)}",
            "sku": sku,
            "warehouse_id": warehouse,
            "quantity": quantity,
            "checkout_id": f"chk_{secrets.token_hex(4)}",
            "expires_at": "2030-01-01T00:00:00Z",
            "available_after": available,
        },
        region=region,
    )


def released(region: str, sku: str, warehouse: str, quantity: int, available: int) -> Envelope:
    """A hold given back, leaving ``available``."""
    return REGISTRY.new_event(
        "stock.released",
        {
            "reservation_id": f"res_{secrets.token_hex(4)}",
            "sku": sku,
            "warehouse_id": warehouse,
            "quantity": quantity,
            "reason": "payment_failed",
            "available_after": available,
        },
        region=region,
    )


def view(client: redis.Redis, skus: Iterable[str]) -> dict[str, dict[str, str]]:
    """The availability hashes of ``skus`` without the time fields."""
    out = {}
    for sku in skus:
        fields = client.hgetall(stock_key(sku))
        out[sku] = {k: v for k, v in fields.items() if not k.startswith("at:")}
    return out


def history(settings: Settings, sku_prefix: str) -> list[Envelope]:
    """Movements of three SKUs in two regions' warehouses, with holds and releases."""
    a, b = settings.regions
    events: list[Envelope] = []
    for i in range(3):
        sku = f"{sku_prefix}{i}"
        events += [
            adjusted(a, sku, "wh_a1", 10 + i),
            adjusted(a, sku, "wh_a2", 5),
            adjusted(b, sku, "wh_b1", 7),
            reserved(a, sku, "wh_a1", 2, 8 + i),
            reserved(b, sku, "wh_b1", 3, 4),
            released(a, sku, "wh_a1", 2, 10 + i),
            reserved(a, sku, "wh_a2", 1, 4),
        ]
    return events


def expected(settings: Settings, sku_prefix: str) -> dict[str, dict[str, str]]:
    a, b = settings.regions
    return {
        f"{sku_prefix}{i}": {
            "wh:wh_a1": str(10 + i),
            "wh:wh_a2": "4",
            "wh:wh_b1": "4",
            f"region:{a}": str(14 + i),
            f"region:{b}": "4",
        }
        for i in range(3)
    }


def test_availability_per_warehouse_and_region_and_the_compacted_topic(
    stream_settings: Settings,
    stream_servers: Servers,
    publish: Callable[[Iterable[Envelope]], None],
    redis_client: redis.Redis,
) -> None:
    prefix = f"SKU-{secrets.token_hex(3)}-"
    publish(history(stream_settings, prefix))
    try:
        control.start(stream_settings, "inventory")
        want = expected(stream_settings, prefix)
        wait_for(lambda: view(redis_client, want) == want)
        assert view(redis_client, want) == want
        # An event time is kept beside each warehouse value.
        assert redis_client.hget(stock_key(f"{prefix}0"), "at:wh_a1").endswith("Z")

        # The compacted topic: the latest record per (sku, warehouse) holds the same values.
        latest = topic_view(stream_servers.kafka_bootstrap, prefix, expect=9)
        assert latest == {
            (f"{prefix}{i}", wh): n
            for i in range(3)
            for wh, n in (("wh_a1", 10 + i), ("wh_a2", 4), ("wh_b1", 4))
        }
        status = control.status(stream_settings, "inventory", stream_servers.kafka_bootstrap)
        assert status.running and status.state == "RUNNING"
    finally:
        control.stop(stream_settings, "inventory")
    assert not control.status(stream_settings, "inventory").running


def topic_view(bootstrap: str, prefix: str, expect: int) -> dict[tuple[str, str], int]:
    """The newest value per key of the availability topic for SKUs starting with ``prefix``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{secrets.token_hex(4)}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([AVAILABILITY_TOPIC])
    latest: dict[tuple[str, str], int] = {}
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                if len(latest) >= expect and message is None:
                    break
                continue
            if message.value() is None:
                continue
            value: dict[str, Any] = json.loads(message.value())
            if value["sku"].startswith(prefix):
                latest[(value["sku"], value["warehouse_id"])] = value["available"]
    finally:
        consumer.close()
    return latest


def test_a_killed_job_resumes_from_its_checkpoint_and_ends_as_if_never_stopped(
    stream_settings: Settings,
    stream_servers: Servers,
    publish: Callable[[Iterable[Envelope]], None],
    redis_client: redis.Redis,
) -> None:
    a, _b = stream_settings.regions
    prefix = f"SKU-{secrets.token_hex(3)}-"
    before = history(stream_settings, prefix)
    publish(before)
    try:
        control.start(stream_settings, "inventory")
        first = expected(stream_settings, prefix)
        wait_for(lambda: view(redis_client, first) == first)
        # A checkpoint taken after the values landed holds the source offsets past them.
        landed = control.status(stream_settings, "inventory").last_checkpoint or 0
        wait_for(
            lambda: (control.status(stream_settings, "inventory").last_checkpoint or 0) > landed + 1
        )
        assert control.kill(stream_settings, "inventory")
        assert latest_checkpoint(stream_settings, "inventory") is not None

        # While it is down: more movements (sales and a restock) arrive.
        publish(
            [
                reserved(a, f"{prefix}0", "wh_a1", 4, 6),
                adjusted(a, f"{prefix}1", "wh_a2", 9),
                released(a, f"{prefix}2", "wh_a2", 1, 5),
            ]
        )
        redis_client.delete(*(stock_key(f"{prefix}{i}") for i in range(3)))  # a wiped cache
        control.start(stream_settings, "inventory")
        log = control.runs_dir(stream_settings) / "inventory.log"
        want = expected(stream_settings, prefix)
        want[f"{prefix}0"].update({"wh:wh_a1": "6", f"region:{a}": "10"})
        want[f"{prefix}1"].update({"wh:wh_a2": "9", f"region:{a}": "20"})
        want[f"{prefix}2"].update({"wh:wh_a2": "5", f"region:{a}": "17"})
        # Only the keys the new events touch come back: the rest was restored from state
        # and is not re-emitted, which is why the wiped hashes hold just those fields.
        wait_for(
            lambda: all(
                redis_client.hget(stock_key(sku), field) == value
                for sku, fields in want.items()
                for field, value in fields.items()
                if field in ("wh:wh_a1", "wh:wh_a2") and value in ("6", "9", "5")
            )
        )
        assert "resuming from file:" in log.read_text()
        # The resumed state is the full history: region sums count every warehouse once.
        # (They are a second stage with its own mini-batch: they may land a batch later.)
        sums = {f"{prefix}0": "10", f"{prefix}1": "20", f"{prefix}2": "17"}
        wait_for(
            lambda: all(
                redis_client.hget(stock_key(sku), f"region:{a}") == value
                for sku, value in sums.items()
            ),
            timeout_s=30,
        )
    finally:
        control.stop(stream_settings, "inventory")
