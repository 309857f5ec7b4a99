"""A lost database connection is waited out; a failing statement is the event's own failure."""

from __future__ import annotations

import threading

import msgspec
import pytest
from sqlalchemy import Connection, Engine, text

from schemas.envelope import Envelope
from souk.stack.endpoints import Endpoints
from tests.builders import stock_adjusted
from tests.integration.publishing import publish_through_outbox
from transactional.shared.consumer import KafkaEventConsumer
from transactional.shared.db import create_db_engine
from transactional.shared.inbox import PostgresInbox
from transactional.shared.kafka import KafkaClientSettings, KafkaEventPublisher
from transactional.shared.processor import MessageProcessor

pytestmark = pytest.mark.integration


def test_connection_loss_is_retried_and_a_statement_timeout_is_dead_lettered(
    endpoints: Endpoints, engine: Engine, region: str, clean_outbox: None
) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("CREATE TABLE IF NOT EXISTS outage_test_applied (region text, n int)")
        )
    envelopes = [stock_adjusted(region, "sku-o", n) for n in range(1, 7)]
    topic = publish_through_outbox(endpoints, engine, envelopes)
    kafka = KafkaClientSettings(endpoints.kafka_bootstrap)

    kills = [0]

    def handle(envelope: Envelope, payload: msgspec.Struct, tx: Connection) -> None:
        n = payload.on_hand_after  # type: ignore[attr-defined]
        if n == 2 and kills[0] < 3:
            # The database drops our connection mid-transaction, more often than the
            # attempts allowed for a failing event: only waiting it out gets n=2 applied.
            kills[0] += 1
            tx.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        if n == 4:  # fails every time, with an OperationalError that is not an outage
            tx.execute(text("SET LOCAL statement_timeout = 1"))
            tx.execute(text("SELECT pg_sleep(0.2)"))
        tx.execute(text("INSERT INTO outage_test_applied VALUES (:r, :n)"), {"r": region, "n": n})

    consumer_engine = create_db_engine(endpoints.database_url, pool_size=2)
    processor = MessageProcessor(
        f"outage-{region}", handle, PostgresInbox(consumer_engine),
        KafkaEventPublisher(kafka), max_attempts=2, backoff_s=0.01,
    )  # fmt: skip
    consumer = KafkaEventConsumer(processor, [topic], kafka, batch_size=1)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, kwargs={"stop": stop, "max_messages": 6})
    thread.start()
    thread.join(60)
    stop.set()  # ends an endless outage wait, should the classification be wrong
    thread.join(10)
    consumer.close()
    consumer_engine.dispose()

    assert kills[0] == 3
    assert processor.stats.dead_lettered == 1
    with engine.connect() as connection:
        applied = (
            connection.execute(
                text("SELECT n FROM outage_test_applied WHERE region = :r ORDER BY n"),
                {"r": region},
            )
            .scalars()
            .all()
        )
    assert applied == [1, 2, 3, 5, 6]
