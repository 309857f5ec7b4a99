"""The tracking domain: storefront behaviour events as a client reports them. Pure Python.

Only the ``behaviour`` domain of the schema registry is collected here; a batch is all or
nothing, and a signed-in shopper can only report events for themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from transactional.shared.errors import InvalidRequest

MAX_BATCH = 500
BEHAVIOUR_DOMAIN = "behaviour"
# Client clocks drift; an event "from the future" beyond this is a client bug, not a drift.
MAX_CLOCK_SKEW = timedelta(minutes=5)


class EmptyBatch(InvalidRequest):
    """A batch without events."""

    code = "empty_batch"


class BatchTooLarge(InvalidRequest):
    """More events than one batch may carry."""

    code = "batch_too_large"


class InvalidEvents(InvalidRequest):
    """Some events of the batch are invalid; ``errors`` lists each by index. Nothing was kept."""

    code = "invalid_events"


@dataclass(frozen=True)
class TrackedEvent:
    """One behaviour event as sent: its type, payload and (optionally) when it happened."""

    type: str
    payload: Mapping[str, Any]
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class EventError:
    """Why the event at ``index`` of a batch was refused."""

    index: int
    type: str
    error: str


def check_batch_size(count: int) -> None:
    """1..MAX_BATCH events per batch."""
    if count == 0:
        raise EmptyBatch("send at least one event", max=MAX_BATCH)
    if count > MAX_BATCH:
        raise BatchTooLarge(
            f"{count} events in one batch; send at most {MAX_BATCH} per request",
            max=MAX_BATCH,
            count=count,
        )


def attribute(payload: Mapping[str, Any], customer_id: str | None) -> dict[str, Any]:
    """The payload attributed to the caller; ValueError if it names another customer.

    With a token, ``customer_id`` must be the caller's or absent (then it is filled in);
    without one it must be absent: anyone could otherwise attribute behaviour to anyone.
    """
    claimed = payload.get("customer_id")
    if customer_id is None:
        if claimed is not None:
            raise ValueError("customer_id needs that customer's bearer token")
        return dict(payload)
    if claimed is not None and claimed != customer_id:
        raise ValueError("customer_id must be the signed-in customer's (or absent)")
    return {**payload, "customer_id": customer_id}


def check_occurred_at(occurred_at: datetime | None, now: datetime) -> None:
    """Refuse naive timestamps and ones too far in the future (ValueError)."""
    if occurred_at is None:
        return
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise ValueError("occurred_at must carry a timezone (UTC)")
    if occurred_at - now > MAX_CLOCK_SKEW:
        raise ValueError(
            f"occurred_at {occurred_at.isoformat()} is in the future "
            f"(more than {int(MAX_CLOCK_SKEW.total_seconds())} s ahead of the server)"
        )
