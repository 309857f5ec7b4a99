"""Request and response bodies of the tracking collector (msgspec structs at the edge)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec

from schemas.common import Timestamp


class EventIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One storefront event: a ``behaviour`` event type, its payload, when it happened."""

    type: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    payload: dict[str, Any]
    occurred_at: Timestamp | None = None


class EventBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/events: 1 to 500 events, accepted or refused together."""

    events: list[EventIn]


class Accepted(msgspec.Struct, kw_only=True):
    """How many events were accepted, and their ids (in the order sent)."""

    accepted: int
    event_ids: list[uuid.UUID]
