"""The topic layout: one topic per domain and region (``<region>.<domain>.v1``) plus its DLQ."""

from __future__ import annotations

from schemas.registry import REGISTRY, SchemaRegistry, dlq_topic, topic_for
from souk.settings import Settings
from transactional.shared.kafka import create_topics


def planned_topics(settings: Settings, registry: SchemaRegistry = REGISTRY) -> list[str]:
    """Every domain topic of every configured region, and each one's dead-letter topic."""
    topics = [
        topic_for(domain, region) for region in settings.regions for domain in registry.domains()
    ]
    return sorted(topics + [dlq_topic(topic) for topic in topics])


def ensure_topics(settings: Settings, bootstrap: str) -> list[str]:
    """Create the planned topics that are missing; return the names created."""
    return create_topics(
        bootstrap,
        planned_topics(settings),
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
    )
