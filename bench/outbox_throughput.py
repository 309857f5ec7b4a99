"""Benchmark: outbox → Kafka relay throughput and commit → consumer latency.

Baseline: the broker's raw produce rate, measured in the same run with the same producer
settings (idempotent, acks=all), so the ratio says what the outbox and relay cost.

    python -m bench.outbox_throughput [--events 20000] [--latency-seconds 5] [--rate 2000]

Uses SOUK_* URLs when set, else starts the embedded stack in a private folder and stops it.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import threading
import time
from typing import Any

import msgspec
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, Engine, text

from bench.stats import percentile
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from souk.stack import Stack
from souk.stack.endpoints import Endpoints
from souk.stack.homes import temporary_home
from souk.wiring import kafka_settings
from transactional.shared.consumer import KafkaEventConsumer
from transactional.shared.db import create_db_engine
from transactional.shared.inbox import PostgresInbox
from transactional.shared.kafka import (
    KafkaClientSettings,
    KafkaEventPublisher,
    create_topics,
    producer_config,
)
from transactional.shared.migrations import upgrade_database
from transactional.shared.outbox import Outbox
from transactional.shared.outbox_store import PostgresOutboxStore
from transactional.shared.ports import OutgoingMessage
from transactional.shared.processor import MessageProcessor
from transactional.shared.relay import Relay

console = Console()


def make_events(region: str, n: int, aggregates: int = 100) -> list[Envelope]:
    """Stock movements spread over ``aggregates`` SKUs (~300-byte messages)."""
    return [
        REGISTRY.new_event(
            "stock.adjusted",
            {
                "sku": f"sku-{i % aggregates:04d}",
                "warehouse_id": "wh_eu_1",
                "delta": 1,
                "on_hand_after": i // aggregates + 1,
                "reason": "receipt",
            },
            aggregate_id=f"sku-{i % aggregates:04d}",
            region=region,
        )
        for i in range(n)
    ]


def raw_produce_rate(kafka: KafkaClientSettings, topic: str, values: list[bytes]) -> float:
    """Messages/s for a bare producer with our settings: no database, no Python callbacks."""
    producer = Producer(producer_config(kafka))
    start = time.perf_counter()
    for i, value in enumerate(values):
        while True:
            try:
                producer.produce(topic, value, key=f"sku-{i % 100:04d}")
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(60)
    elapsed = time.perf_counter() - start
    assert left == 0, f"{left} messages not acknowledged"
    return len(values) / elapsed


def adapter_produce_rate(kafka: KafkaClientSettings, topic: str, values: list[bytes]) -> float:
    """Messages/s through our publisher adapter (per-message delivery reports)."""
    publisher = KafkaEventPublisher(kafka)
    acked = [0]

    def on_delivery(_m: OutgoingMessage, error: str | None) -> None:
        acked[0] += error is None

    start = time.perf_counter()
    for i, value in enumerate(values):
        publisher.publish(OutgoingMessage(topic, f"sku-{i % 100:04d}", value), on_delivery)
    publisher.flush(60)
    elapsed = time.perf_counter() - start
    assert acked[0] == len(values), f"only {acked[0]}/{len(values)} acknowledged"
    return len(values) / elapsed


def fill_outbox(engine: Engine, events: list[Envelope], per_tx: int = 10) -> float:
    """Write events in transactions of ``per_tx``; return events/s."""
    outbox = Outbox(regions={event.region for event in events})
    start = time.perf_counter()
    for i in range(0, len(events), per_tx):
        with engine.begin() as connection:
            outbox.add(connection, events[i : i + per_tx])
    return len(events) / (time.perf_counter() - start)


def relay_rate(endpoints: Endpoints, kafka: KafkaClientSettings, expected: int) -> float:
    """Drain a pre-filled outbox; return events/s."""
    relay = Relay(
        PostgresOutboxStore(endpoints.database_url), KafkaEventPublisher(kafka), batch_size=1000
    )
    start = time.perf_counter()
    published = relay.drain(timeout_s=300)
    relay.close()  # hands the relay leadership to the latency run
    elapsed = time.perf_counter() - start
    assert published >= expected, f"relay published {published}/{expected}"
    return published / elapsed


def latency(
    endpoints: Endpoints,
    engine: Engine,
    kafka: KafkaClientSettings,
    region: str,
    seconds: float,
    rate: int,
) -> tuple[list[float], int]:
    """Commit events at ``rate``/s while relay and an inbox consumer run; ms per event."""
    topic = topic_for("inventory", region)
    committed: dict[Any, float] = {}
    received: dict[Any, float] = {}

    def handle(envelope: Envelope, _p: msgspec.Struct, _tx: Connection) -> None:
        received.setdefault(envelope.event_id, time.perf_counter())

    processor = MessageProcessor(
        f"bench-{region}", handle, PostgresInbox(engine), KafkaEventPublisher(kafka)
    )
    consumer = KafkaEventConsumer(processor, [topic], kafka)
    relay = Relay(PostgresOutboxStore(endpoints.database_url), KafkaEventPublisher(kafka))
    stop = threading.Event()
    threads = [
        threading.Thread(target=relay.run, args=(stop,), kwargs={"poll_interval_s": 0.005}),
        threading.Thread(target=consumer.run, kwargs={"stop": stop}),
    ]
    for thread in threads:
        thread.start()
    # Let the consumer join its group before the clock starts.
    warmup = make_events(region, 1)
    fill_outbox(engine, warmup)
    deadline = time.monotonic() + 30
    while warmup[0].event_id not in received and time.monotonic() < deadline:
        time.sleep(0.05)
    outbox = Outbox(regions=[region])
    events = make_events(region, int(seconds * rate))
    per_tick = max(1, rate // 100)
    start = time.perf_counter()
    for i in range(0, len(events), per_tick):
        batch = events[i : i + per_tick]
        with engine.begin() as connection:
            outbox.add(connection, batch)
        now = time.perf_counter()
        for event in batch:
            committed[event.event_id] = now
        pause = start + (i + per_tick) / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    deadline = time.monotonic() + 60
    while not all(e.event_id in received for e in events) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(30)
    consumer.close()
    relay.close()
    samples = [(received[k] - v) * 1000 for k, v in committed.items() if k in received]
    return samples, len(events) - len(samples)


def main() -> None:
    """Run the benchmark and print figures beside the raw-producer baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=1_000, help="events/s during the latency run")
    args = parser.parse_args()

    settings = Settings(home=temporary_home("souk-bench-"))
    stack = Stack(settings)
    with console.status("starting the stack…"):
        endpoints = stack.up()
        upgrade_database(endpoints.database_url)
    try:
        region = "b" + secrets.token_hex(3)
        # The latency run gets its own topics: a backlog from the throughput run would be
        # consumed first and counted as latency.
        latency_region = "l" + secrets.token_hex(3)
        topics = [topic_for("inventory", name) for name in (region, latency_region)]
        kafka = kafka_settings(settings, endpoints.kafka_bootstrap, "souk-bench")
        create_topics(
            endpoints.kafka_bootstrap,
            [f"{region}.raw", *topics, *(topic + ".dlq" for topic in topics)],
            partitions=settings.kafka_partitions,
        )
        engine = create_db_engine(endpoints.database_url)
        with engine.begin() as connection:
            pending = connection.execute(
                text("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            ).scalar_one()
        if pending:
            raise SystemExit(
                f"{pending} unpublished outbox rows exist already: drain them "
                "with `souk relay --once` or point SOUK_DATABASE_URL elsewhere"
            )
        events = make_events(region, args.events)
        values = [REGISTRY.encode(event) for event in events]
        with console.status("raw produce rate…"):
            raw = raw_produce_rate(kafka, f"{region}.raw", values)
            adapter = adapter_produce_rate(kafka, f"{region}.raw", values)
        with console.status("writing the outbox…"):
            write = fill_outbox(engine, events)
        with console.status("relaying…"):
            relayed = relay_rate(endpoints, kafka, len(events))
        with console.status(f"end-to-end latency at {args.rate} events/s…"):
            samples, lost = latency(
                endpoints, engine, kafka, latency_region, args.latency_seconds, args.rate
            )
        engine.dispose()
    finally:
        stack.down(purge=True)

    table = Table(
        title=f"Outbox → Kafka ({args.events:,} events, ~{len(values[0])} B each; "
        "idempotent producer, acks=all)"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("vs baseline", justify="right")
    table.add_row("baseline: bare producer", f"{raw:,.0f} msg/s", "1.00")
    table.add_row(
        "publisher adapter (delivery reports)", f"{adapter:,.0f} msg/s", f"{adapter / raw:.2f}"
    )
    table.add_row("outbox write (10 events/tx)", f"{write:,.0f} events/s", f"{write / raw:.2f}")
    table.add_row("relay: outbox → Kafka", f"{relayed:,.0f} events/s", f"{relayed / raw:.2f}")
    table.add_row(
        f"commit → consumer p50 (at {args.rate}/s)", f"{statistics.median(samples):.1f} ms", ""
    )
    table.add_row(
        f"commit → consumer p99 (at {args.rate}/s)", f"{percentile(samples, 0.99):.1f} ms", ""
    )
    table.add_row("events not received", str(lost), "")
    console.print(table)


if __name__ == "__main__":
    main()
