"""Tracking use case: validate a batch of behaviour events and publish it through the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, SchemaError
from transactional.shared.auth import Principal
from transactional.shared.unit_of_work import UnitOfWork
from transactional.tracking.model import (
    BEHAVIOUR_DOMAIN,
    EventError,
    InvalidEvents,
    TrackedEvent,
    attribute,
    check_batch_size,
    check_occurred_at,
)

# Headroom for the Kafka key and headers the outbox adds to the encoded envelope.
_HEADER_ALLOWANCE = 1024


class TrackingService:
    """The storefront event collector."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        *,
        region: str,
        max_event_bytes: int = 900_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._region = region
        self._max_event_bytes = max_event_bytes
        self._clock = clock

    def collect(self, events: Sequence[TrackedEvent], principal: Principal | None = None) -> int:
        """Validate and publish a batch (all or nothing); returns how many were accepted."""
        return len(self.accept(events, principal))

    def accept(
        self, events: Sequence[TrackedEvent], principal: Principal | None = None
    ) -> list[uuid.UUID]:
        """Validate and publish a batch (all or nothing); returns the new event ids in order.

        InvalidEvents lists every bad event by index with its schema error; nothing is written.
        """
        check_batch_size(len(events))
        now = self._clock()
        customer_id = principal.customer_id if principal else None
        envelopes: list[Envelope] = []
        errors: list[EventError] = []
        for index, event in enumerate(events):
            try:
                envelopes.append(self._envelope(event, customer_id, now))
            except (SchemaError, ValueError) as error:
                errors.append(EventError(index, event.type, str(error)))
        if errors:
            raise InvalidEvents(
                f"{len(errors)} of {len(events)} events are invalid; none was accepted",
                errors=[asdict(error) for error in errors],
            )
        with self._uow() as uow:
            uow.emit(*envelopes)
            try:
                uow.commit()
            except SchemaError as error:  # the outbox's own checks (region served, size)
                raise InvalidEvents(f"the batch was refused: {error}", errors=[]) from None
        return [envelope.event_id for envelope in envelopes]

    def _envelope(self, event: TrackedEvent, customer_id: str | None, now: datetime) -> Envelope:
        spec = REGISTRY.spec(event.type)
        if spec.domain != BEHAVIOUR_DOMAIN:
            accepted = ", ".join(
                s.event_type for s in REGISTRY.specs() if s.domain == BEHAVIOUR_DOMAIN
            )
            raise ValueError(f"{event.type} is not a storefront event; accepted: {accepted}")
        check_occurred_at(event.occurred_at, now)
        envelope = REGISTRY.new_event(
            event.type,
            attribute(event.payload, customer_id),
            region=self._region,
            occurred_at=event.occurred_at or now,
        )
        size = len(REGISTRY.encode(envelope)) + _HEADER_ALLOWANCE
        if size > self._max_event_bytes:
            raise ValueError(
                f"the event is about {size:,} bytes; the limit is {self._max_event_bytes:,}"
            )
        return envelope
