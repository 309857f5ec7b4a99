"""HTTP controller of the tracking collector: storefront behaviour events in batches.

A batch is all or nothing: one bad event → 422 ``invalid_events`` with ``errors`` listing every
bad index and its schema error, and nothing is published. An empty batch is 422
``empty_batch``; more than 500 events is 422 ``batch_too_large``.
"""

from __future__ import annotations

from litestar import Controller, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from transactional.shared.auth import Principal
from transactional.shared.http import Inject
from transactional.tracking.dto import Accepted, EventBatch
from transactional.tracking.model import TrackedEvent
from transactional.tracking.service import TrackingService


class TrackingController(Controller):
    """/v1/events: the clickstream collector."""

    path = "/v1/events"
    tags = ("tracking",)

    @post("/", status_code=HTTP_202_ACCEPTED, sync_to_thread=True)
    def collect(
        self,
        data: JSONBody[EventBatch],
        tracking: Inject[TrackingService],
        maybe_principal: Inject[Principal | None],
    ) -> Accepted:
        """Accept a batch of behaviour events for publication (202)."""
        ids = tracking.accept(
            [TrackedEvent(e.type, e.payload, e.occurred_at) for e in data.events],
            maybe_principal,
        )
        return Accepted(accepted=len(ids), event_ids=ids)


ROUTES = [TrackingController]
