"""The composition root: builds adapters from settings and the resolved server URLs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from souk.settings import Settings
from transactional.shared.consumer import KafkaEventConsumer
from transactional.shared.db import create_db_engine
from transactional.shared.inbox import PostgresInbox
from transactional.shared.kafka import KafkaClientSettings, KafkaEventPublisher
from transactional.shared.outbox import Outbox
from transactional.shared.outbox_store import PostgresOutboxStore
from transactional.shared.processor import Handler, MessageProcessor
from transactional.shared.relay import Relay


def kafka_settings(settings: Settings, bootstrap: str, client_id: str) -> KafkaClientSettings:
    """Client settings for one Kafka client of ours."""
    return KafkaClientSettings(
        bootstrap=bootstrap,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
        client_id=client_id,
    )


def build_outbox(settings: Settings) -> Outbox:
    """The outbox writer, refusing events of unserved regions or over the message limit."""
    return Outbox(regions=settings.regions, max_message_bytes=settings.kafka_max_message_bytes)


def build_relay(settings: Settings, database_url: str, kafka_bootstrap: str) -> Relay:
    """The outbox relay over PostgreSQL and Kafka."""
    return Relay(
        PostgresOutboxStore(database_url),
        KafkaEventPublisher(kafka_settings(settings, kafka_bootstrap, "souk-relay")),
        batch_size=settings.relay_batch_size,
        stall_timeout_s=settings.relay_stall_timeout_s,
    )


def build_consumer(
    settings: Settings,
    database_url: str,
    kafka_bootstrap: str,
    *,
    name: str,
    topics: Sequence[str],
    handler: Handler,
    engine: Engine | None = None,
) -> KafkaEventConsumer:
    """A consumer group member with the PostgreSQL inbox and a Kafka dead-letter publisher."""
    kafka = kafka_settings(settings, kafka_bootstrap, name)
    processor = MessageProcessor(
        name,
        handler,
        PostgresInbox(engine or create_db_engine(database_url, pool_size=2)),
        KafkaEventPublisher(kafka),
        max_attempts=settings.consumer_max_attempts,
        backoff_s=settings.consumer_backoff_s,
    )
    # Ids are remembered a day longer than the outbox keeps rows that could be republished.
    retention_s = (settings.outbox_retention_hours + 24) * 3600
    return KafkaEventConsumer(processor, topics, kafka, inbox_retention_s=retention_s)
