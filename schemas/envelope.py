"""The single envelope every Souk event travels in (Kafka value, outbox row, event store)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

__all__ = ["Envelope"]

_REGION_RE = re.compile(r"^[a-z][a-z0-9-]{1,15}$")


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """Metadata shared by all events plus the raw JSON payload (typed via the registry)."""

    event_id: uuid.UUID  # UUIDv7: time-ordered, doubles as the consumer dedup key
    event_type: Annotated[str, msgspec.Meta(min_length=1)]
    schema_version: Annotated[int, msgspec.Meta(ge=1)]
    occurred_at: Annotated[datetime, msgspec.Meta(tz=True)]
    aggregate_type: Annotated[str, msgspec.Meta(min_length=1)]
    aggregate_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    region: Annotated[str, msgspec.Meta(pattern=_REGION_RE.pattern)]
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    # Kept as plain JSON data so relays, DLQ tooling and the event store can move events
    # without importing every payload type; SchemaRegistry.validate() types it.
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        # Meta constraints only run on decode/convert; these checks also guard direct
        # construction, which is how producers build envelopes.
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware (UTC), got a naive datetime")
        if self.occurred_at.tzinfo is not UTC:
            # Normalise so encoded timestamps always end in "Z" and compare as text.
            msgspec.structs.force_setattr(self, "occurred_at", self.occurred_at.astimezone(UTC))
        if not self.event_type or not self.aggregate_type or not self.aggregate_id:
            raise ValueError("event_type, aggregate_type and aggregate_id must be non-empty")
        if self.schema_version < 1:
            raise ValueError(f"schema_version must be >= 1, got {self.schema_version}")
        if not _REGION_RE.match(self.region):
            raise ValueError(f"region must be a lowercase code like 'eu', got {self.region!r}")
