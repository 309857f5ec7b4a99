"""The outbox relay under fire: SIGKILLed three times while writers commit 10,000 events."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import msgspec
import pytest
from sqlalchemy import Connection, Engine, text

from schemas.envelope import Envelope
from schemas.registry import topic_for
from souk.settings import Settings
from souk.stack.endpoints import Endpoints
from tests.builders import stock_adjusted
from transactional.shared.consumer import KafkaEventConsumer
from transactional.shared.inbox import PostgresInbox
from transactional.shared.kafka import KafkaClientSettings, KafkaEventPublisher, create_topics
from transactional.shared.outbox import Outbox
from transactional.shared.outbox_store import PostgresOutboxStore
from transactional.shared.processor import MessageProcessor
from transactional.shared.relay import Relay

pytestmark = pytest.mark.integration

EVENTS = 10_000
AGGREGATES = 100
WRITERS = 4
KILLS_AT = (2_000, 4_500, 7_000)  # published-row counts at which the relay is SIGKILLed


def relay_process(endpoints: Endpoints, settings: Settings) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        SOUK_DATABASE_URL=endpoints.database_url,
        SOUK_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap,
        SOUK_REDIS_URL=endpoints.redis_url,
        SOUK_HOME=str(settings.home),
        SOUK_RELAY_BATCH_SIZE="200",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "souk", "relay", "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def published(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
            ).scalar_one()
        )


def write_events(engine: Engine, region: str, writer: int, count: int) -> None:
    """Each transaction bumps the aggregate's counter row (a real domain write) and emits."""
    outbox = Outbox(regions=[region])
    rng_state = writer
    written = 0
    while written < count:
        rng_state = (rng_state * 1103515245 + 12345) % 2**31
        batch = min(1 + rng_state % 5, count - written)
        with engine.begin() as connection:
            envelopes = []
            # Sorted, so concurrent writers lock counter rows in one order (no deadlocks).
            skus = sorted({f"sku-{(rng_state + i * 37) % AGGREGATES:03d}" for i in range(batch)})
            for sku in skus:
                n = connection.execute(
                    text(
                        "UPDATE relay_test_counter SET n = n + 1 WHERE region = :r AND sku = :s "
                        "RETURNING n"
                    ),
                    {"r": region, "s": sku},
                ).scalar_one()
                envelopes.append(stock_adjusted(region, sku, n))
            outbox.add(connection, envelopes)
        written += len(skus)


def test_relay_killed_three_times_loses_nothing_and_keeps_order(
    endpoints: Endpoints,
    souk_settings: Settings,
    engine: Engine,
    region: str,
    clean_outbox: None,
) -> None:
    topic = topic_for("inventory", region)
    create_topics(endpoints.kafka_bootstrap, [topic, topic + ".dlq"], partitions=4)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE IF NOT EXISTS relay_test_counter "
                "(region text, sku text, n int NOT NULL, PRIMARY KEY (region, sku))"
            )
        )
        connection.execute(
            text(
                "CREATE TABLE IF NOT EXISTS relay_test_applied (seq bigserial PRIMARY KEY, "
                "region text, event_id uuid, sku text, n int)"
            )
        )
        connection.execute(
            text("INSERT INTO relay_test_counter VALUES (:r, :s, 0)"),
            [{"r": region, "s": f"sku-{i:03d}"} for i in range(AGGREGATES)],
        )

    def apply(envelope: Envelope, payload: msgspec.Struct, tx: Connection) -> None:
        tx.execute(
            text(
                "INSERT INTO relay_test_applied (region, event_id, sku, n) VALUES (:r, :e, :s, :n)"
            ),
            {
                "r": region,
                "e": envelope.event_id,
                "s": envelope.aggregate_id,
                "n": payload.on_hand_after,
            },
        )  # type: ignore[attr-defined]

    kafka = KafkaClientSettings(endpoints.kafka_bootstrap, session_timeout_ms=6000)
    processor = MessageProcessor(
        f"relay-test-{region}", apply, PostgresInbox(engine), KafkaEventPublisher(kafka)
    )
    consumer = KafkaEventConsumer(processor, [topic], kafka)
    stop_consumer = threading.Event()
    consumer_thread = threading.Thread(target=consumer.run, kwargs={"stop": stop_consumer})
    consumer_thread.start()

    base = published(engine)
    writers = [
        threading.Thread(target=write_events, args=(engine, region, w, EVENTS // WRITERS))
        for w in range(WRITERS)
    ]
    for thread in writers:
        thread.start()
    relay = relay_process(endpoints, souk_settings)
    kills = 0
    try:
        deadline = time.monotonic() + 180
        for threshold in KILLS_AT:
            while published(engine) - base < threshold:
                assert relay.poll() is None, relay.stderr.read().decode() if relay.stderr else ""
                assert time.monotonic() < deadline, "relay made no progress"
                time.sleep(0.02)
            relay.send_signal(signal.SIGKILL)
            relay.wait(10)
            kills += 1
            relay = relay_process(endpoints, souk_settings)
        for thread in writers:
            thread.join(120)

        def applied_count() -> Any:
            with engine.connect() as connection:
                return connection.execute(
                    text("SELECT count(*) FROM relay_test_applied WHERE region = :r"), {"r": region}
                ).scalar_one()

        while applied_count() < EVENTS and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        relay.terminate()
        relay.wait(10)
        stop_consumer.set()
        consumer_thread.join(30)
        consumer.close()

    assert kills == 3
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event_id, sku, n FROM relay_test_applied WHERE region = :r ORDER BY seq"),
            {"r": region},
        ).all()
        pending = connection.execute(
            text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        ).scalar_one()
    assert len(rows) == EVENTS, f"{EVENTS - len(rows)} events never arrived"
    assert len({row.event_id for row in rows}) == EVENTS, "an event was applied twice"
    sequence: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        sequence[row.sku].append(row.n)
    assert len(sequence) == AGGREGATES
    for sku, ns in sequence.items():
        assert ns == list(range(1, len(ns) + 1)), f"{sku} applied out of commit order"
    assert pending == 0


def test_relay_reconnects_after_its_database_connection_is_killed(
    endpoints: Endpoints, engine: Engine, region: str, clean_outbox: None
) -> None:
    topic = topic_for("inventory", region)
    create_topics(endpoints.kafka_bootstrap, [topic], partitions=1)
    kafka = KafkaClientSettings(endpoints.kafka_bootstrap)
    relay = Relay(PostgresOutboxStore(endpoints.database_url), KafkaEventPublisher(kafka))
    stop = threading.Event()
    thread = threading.Thread(
        target=relay.run, args=(stop,), kwargs={"poll_interval_s": 0.01, "max_backoff_s": 0.2}
    )
    thread.start()

    def write(first: int) -> list[Envelope]:
        events = [stock_adjusted(region, "sku-r", n) for n in range(first, first + 50)]
        with engine.begin() as connection:
            Outbox(regions=[region]).add(connection, events)
        return events

    def unpublished(events: list[Envelope]) -> int:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM outbox WHERE published_at IS NULL "
                        "AND event_id = ANY(:ids)"
                    ),
                    {"ids": [e.event_id for e in events]},
                ).scalar_one()
            )

    try:
        events = write(1)
        deadline = time.monotonic() + 30
        while unpublished(events) and time.monotonic() < deadline:
            time.sleep(0.05)
        with engine.begin() as connection:
            killed = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = 'souk-relay'"
                )
            ).scalar_one()
        assert killed >= 1
        events += write(51)
        while unpublished(events) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert unpublished(events) == 0, "the relay did not come back after losing its connection"
    finally:
        stop.set()
        thread.join(10)
        relay.close()


def test_relay_once_behind_an_active_relay_says_so(
    endpoints: Endpoints, souk_settings: Settings
) -> None:
    leader = PostgresOutboxStore(endpoints.database_url)
    try:
        assert leader.try_acquire_leadership()
        env = dict(os.environ)
        env.update(
            SOUK_DATABASE_URL=endpoints.database_url,
            SOUK_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap,
            SOUK_HOME=str(souk_settings.home),
        )
        result = subprocess.run(
            [sys.executable, "-m", "souk", "relay", "--once"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        leader.close()
    assert result.returncode == 1
    assert "error: another relay is active on this database" in result.stderr
