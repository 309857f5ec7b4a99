"""A poison event lands in the DLQ with its error after N tries; its partition keeps flowing."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest
from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Connection, Engine, text

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, dlq_topic
from souk.stack.endpoints import Endpoints
from tests.builders import stock_adjusted
from tests.fakes import FakePublisher
from tests.integration.publishing import publish_through_outbox
from transactional.shared.consumer import KafkaEventConsumer
from transactional.shared.errors import PublishFailed
from transactional.shared.inbox import PostgresInbox
from transactional.shared.kafka import (
    KafkaClientSettings,
    KafkaEventPublisher,
    consumer_config,
)
from transactional.shared.processor import MessageProcessor

pytestmark = pytest.mark.integration


def committed(kafka: KafkaClientSettings, group: str, topic: str) -> int:
    """The group's committed offset of partition 0 (-1001 when none)."""
    reader = Consumer(consumer_config(kafka, group))
    try:
        [partition] = reader.committed([TopicPartition(topic, 0)], timeout=10)
        return int(partition.offset)
    finally:
        reader.close()


def test_poison_event_is_dead_lettered_and_the_partition_keeps_flowing(
    endpoints: Endpoints, engine: Engine, region: str, clean_outbox: None
) -> None:
    envelopes = [stock_adjusted(region, "sku-1", n) for n in range(1, 21)]
    poison = envelopes[6]
    topic = publish_through_outbox(endpoints, engine, envelopes, partitions=2)
    kafka = KafkaClientSettings(endpoints.kafka_bootstrap)

    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE IF NOT EXISTS dlq_test_applied (seq bigserial, region text, n int)")
        )

    def handle(envelope: Envelope, payload: msgspec.Struct, tx: Connection) -> None:
        if envelope.event_id == poison.event_id:
            raise RuntimeError("warehouse wh_1 is not configured")
        tx.execute(
            text("INSERT INTO dlq_test_applied (region, n) VALUES (:r, :n)"),
            {"r": region, "n": payload.on_hand_after},
        )  # type: ignore[attr-defined]

    processor = MessageProcessor(
        f"dlq-test-{region}",
        handle,
        PostgresInbox(engine),
        KafkaEventPublisher(kafka),
        max_attempts=4,
        backoff_s=0.01,
    )
    consumer = KafkaEventConsumer(processor, [topic], kafka)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, kwargs={"stop": stop, "max_messages": 20})
    thread.start()
    thread.join(90)
    stop.set()
    consumer.close()

    with engine.connect() as connection:
        applied = (
            connection.execute(
                text("SELECT n FROM dlq_test_applied WHERE region = :r ORDER BY seq"), {"r": region}
            )
            .scalars()
            .all()
        )
    assert applied == [n for n in range(1, 21) if n != 7]
    assert processor.stats.dead_lettered == 1

    reader = Consumer(consumer_config(kafka, f"dlq-reader-{region}"))
    reader.subscribe([dlq_topic(topic)])
    deadline = time.monotonic() + 30
    message = None
    while message is None and time.monotonic() < deadline:
        candidate = reader.poll(0.5)
        if candidate is not None and candidate.error() is None:
            message = candidate
    reader.close()
    assert message is not None, "nothing arrived on the DLQ"
    headers = {k: (v or b"").decode() for k, v in message.headers() or []}
    assert headers["dlq.error"] == "warehouse wh_1 is not configured"
    assert headers["dlq.error_type"] == "RuntimeError"
    assert headers["dlq.attempts"] == "4"
    assert headers["dlq.original_topic"] == topic
    assert headers["event_id"] == str(poison.event_id)
    assert REGISTRY.decode(message.value() or b"").event_id == poison.event_id


def test_a_message_neither_applied_nor_dead_lettered_is_never_committed(
    endpoints: Endpoints, engine: Engine, region: str, clean_outbox: None
) -> None:
    envelopes = [stock_adjusted(region, "sku-2", n) for n in range(1, 11)]
    poison = envelopes[5]
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE IF NOT EXISTS dlq_test_applied (seq bigserial, region text, n int)")
        )
    topic = publish_through_outbox(endpoints, engine, envelopes)
    kafka = KafkaClientSettings(endpoints.kafka_bootstrap)

    def handle(envelope: Envelope, payload: msgspec.Struct, tx: Connection) -> None:
        if envelope.event_id == poison.event_id:
            raise RuntimeError("cannot apply")
        tx.execute(
            text("INSERT INTO dlq_test_applied (region, n) VALUES (:r, :n)"),
            {"r": region, "n": payload.on_hand_after},  # type: ignore[attr-defined]
        )

    group = f"commit-test-{region}"
    broken_dlq = FakePublisher(fail=lambda _m: "DLQ broker unreachable")
    first = KafkaEventConsumer(
        MessageProcessor(group, handle, PostgresInbox(engine), broken_dlq, max_attempts=1),
        [topic], kafka, batch_size=3,
    )  # fmt: skip
    with pytest.raises(PublishFailed):
        first.run(idle_timeout_s=30)
    first.close()  # commits only what was processed
    assert 0 < committed(kafka, group, topic) <= 5  # the poison event sits at offset 5

    second_processor = MessageProcessor(
        group, handle, PostgresInbox(engine), KafkaEventPublisher(kafka), max_attempts=1
    )
    second = KafkaEventConsumer(second_processor, [topic], kafka)
    second.run(idle_timeout_s=8)
    second.close()
    assert second_processor.stats.dead_lettered == 1, "the poison event was skipped"
    assert committed(kafka, group, topic) == 10
    with engine.connect() as connection:
        applied = (
            connection.execute(
                text("SELECT n FROM dlq_test_applied WHERE region = :r ORDER BY seq"),
                {"r": region},
            )
            .scalars()
            .all()
        )
    assert applied == [1, 2, 3, 4, 5, 7, 8, 9, 10]
