"""Souk event contracts: the envelope, per-domain payload structs, and the schema registry.

Only msgspec and the standard library are imported here, so every service, job and tool
can depend on ``schemas`` without pulling in drivers or frameworks.
"""

from schemas.common import Address, LineItem, Money
from schemas.envelope import Envelope
from schemas.errors import InvalidPayload, SchemaError, UnknownEventType
from schemas.ids import new_id, parse_id, uuid7
from schemas.registry import REGISTRY, SchemaRegistry, dlq_topic, topic_for
from schemas.spec import EventSpec

__all__ = [
    "REGISTRY",
    "Address",
    "Envelope",
    "EventSpec",
    "InvalidPayload",
    "LineItem",
    "Money",
    "SchemaError",
    "SchemaRegistry",
    "UnknownEventType",
    "dlq_topic",
    "new_id",
    "parse_id",
    "topic_for",
    "uuid7",
]
