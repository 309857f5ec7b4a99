"""The local stack: PostgreSQL, Redis (Valkey) and Kafka (Tansu), embedded or configured by URL.

A URL setting (``SOUK_DATABASE_URL``, ``SOUK_REDIS_URL``, ``SOUK_KAFKA_BOOTSTRAP``) means "use
that server"; left unset, `Stack.up()` starts the embedded default under ``settings.state_dir``
and records it in ``stack.json``. `resolve_endpoints()` is what the rest of Souk calls.
"""

from souk.stack.endpoints import Endpoints, resolve_endpoints
from souk.stack.errors import ServerStartError, ServerUnreachable, StackError, StackNotRunning
from souk.stack.stack import Stack
from souk.stack.status import (
    ComponentStatus,
    ConsumerGroupStatus,
    GroupTopicOffsets,
    PartitionOffsets,
    TopicStatus,
    statuses_to_json,
)
from souk.stack.urls import libpq_url, redact_url

__all__ = [
    "ComponentStatus",
    "ConsumerGroupStatus",
    "Endpoints",
    "GroupTopicOffsets",
    "PartitionOffsets",
    "ServerStartError",
    "ServerUnreachable",
    "Stack",
    "StackError",
    "StackNotRunning",
    "TopicStatus",
    "libpq_url",
    "redact_url",
    "resolve_endpoints",
    "statuses_to_json",
]
