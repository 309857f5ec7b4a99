"""Put events on the broker the way the platform does: outbox write, then a relay drain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, dlq_topic
from souk.stack.endpoints import Endpoints
from transactional.shared.kafka import KafkaClientSettings, KafkaEventPublisher, create_topics
from transactional.shared.outbox import Outbox
from transactional.shared.outbox_store import PostgresOutboxStore
from transactional.shared.relay import Relay


def publish_through_outbox(
    endpoints: Endpoints, engine: Engine, envelopes: Sequence[Envelope], *, partitions: int = 1
) -> str:
    """Create the events' topic (and DLQ), commit them to the outbox, relay them; the topic."""
    topic = REGISTRY.topic(envelopes[0])
    create_topics(endpoints.kafka_bootstrap, [topic, dlq_topic(topic)], partitions=partitions)
    with engine.begin() as connection:
        Outbox(regions={e.region for e in envelopes}).add(connection, envelopes)
    relay = Relay(
        PostgresOutboxStore(endpoints.database_url),
        KafkaEventPublisher(KafkaClientSettings(endpoints.kafka_bootstrap)),
    )
    try:
        relay.drain()
    finally:
        relay.close()  # hands the relay leadership to whoever runs next
    return topic
