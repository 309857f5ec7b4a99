"""The tracking collector on a fake unit of work: validation, attribution, all-or-nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schemas.registry import REGISTRY
from tests.fakes import FakeUnitOfWork
from transactional.shared.auth import Principal
from transactional.tracking.model import (
    MAX_BATCH,
    BatchTooLarge,
    EmptyBatch,
    InvalidEvents,
    TrackedEvent,
    attribute,
)
from transactional.tracking.service import TrackingService

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def viewed(**overrides: Any) -> TrackedEvent:
    payload = {"session_id": "ses_1", "product_id": "prd_1", "source": "search", **overrides}
    return TrackedEvent("product.viewed", payload)


def make(max_event_bytes: int = 900_000) -> tuple[TrackingService, FakeUnitOfWork]:
    uow = FakeUnitOfWork()
    service = TrackingService(
        lambda: uow, region="eu", max_event_bytes=max_event_bytes, clock=lambda: NOW
    )
    return service, uow


def test_a_valid_batch_is_published_in_one_commit() -> None:
    service, uow = make()
    at = NOW - timedelta(minutes=3)
    events = [
        viewed(),
        TrackedEvent(
            "search.performed",
            {"search_id": "srch_1", "session_id": "ses_1", "query": "shoes", "result_count": 3},
            at,
        ),
        TrackedEvent(
            "recommendation.served",
            {
                "recommendation_id": "rec_1",
                "session_id": "ses_1",
                "placement": "home",
                "model": "als",
                "product_ids": ["prd_1"],
            },
        ),
        TrackedEvent(
            "recommendation.clicked",
            {
                "recommendation_id": "rec_1",
                "session_id": "ses_1",
                "placement": "home",
                "product_id": "prd_1",
                "position": 0,
            },
        ),
    ]
    ids = service.accept(events)
    assert uow.commits == 1
    assert [e.event_id for e in uow.committed] == ids
    assert [e.event_type for e in uow.committed] == [e.type for e in events]
    assert {e.region for e in uow.committed} == {"eu"}
    assert {e.aggregate_id for e in uow.committed} == {"ses_1"}
    assert [e.occurred_at for e in uow.committed[:2]] == [NOW, at]
    for envelope in uow.committed:
        REGISTRY.validate(envelope)
    assert service.collect([viewed()]) == 1


def test_every_bad_event_is_reported_by_index_and_nothing_is_written() -> None:
    service, uow = make()
    events = [
        viewed(),
        viewed(source="telepathy"),  # not an allowed value
        TrackedEvent("order.placed", {"order_id": "ord_1"}),  # not a behaviour event
        TrackedEvent("product.viewd", {"session_id": "s"}),  # unknown type
        viewed(),
        TrackedEvent("product.viewed", {"product_id": "prd_1"}),  # session_id missing
        TrackedEvent("product.viewed", viewed().payload, NOW + timedelta(hours=1)),
    ]
    with pytest.raises(InvalidEvents) as error:
        service.accept(events)
    errors = error.value.extra["errors"]
    assert isinstance(errors, list)
    assert [e["index"] for e in errors] == [1, 2, 3, 5, 6]
    assert "source" in errors[0]["error"]
    assert "not a storefront event" in errors[1]["error"]
    assert "did you mean" in errors[2]["error"]
    assert "session_id" in errors[3]["error"]
    assert "future" in errors[4]["error"]
    assert uow.committed == [] and uow.commits == 0


def test_batch_size_is_1_to_500() -> None:
    service, uow = make()
    with pytest.raises(EmptyBatch):
        service.accept([])
    with pytest.raises(BatchTooLarge) as error:
        service.accept([viewed()] * (MAX_BATCH + 1))
    assert error.value.code == "batch_too_large"
    assert len(service.accept([viewed()] * MAX_BATCH)) == MAX_BATCH
    assert uow.commits == 1


def test_customer_id_is_the_callers_or_filled_in() -> None:
    service, uow = make()
    ada = Principal("cus_ada", "eu")
    service.accept([viewed(), viewed(customer_id="cus_ada")], ada)
    assert [e.payload["customer_id"] for e in uow.committed] == ["cus_ada", "cus_ada"]
    with pytest.raises(InvalidEvents) as error:
        service.accept([viewed(customer_id="cus_bob")], ada)
    assert error.value.extra["errors"] == [
        {
            "index": 0,
            "type": "product.viewed",
            "error": "customer_id must be the signed-in customer's (or absent)",
        }
    ]
    with pytest.raises(InvalidEvents):
        service.accept([viewed(customer_id="cus_ada")], None)  # no token, no customer_id


def test_attribute_does_not_touch_the_callers_payload() -> None:
    sent = {"session_id": "s"}
    assert attribute(sent, "cus_1") == {"session_id": "s", "customer_id": "cus_1"}
    assert sent == {"session_id": "s"}
    assert attribute(sent, None) == sent


def test_an_event_over_the_message_limit_is_refused() -> None:
    service, uow = make(max_event_bytes=2000)
    big = TrackedEvent(
        "search.performed",
        {
            "search_id": "srch_1",
            "session_id": "ses_1",
            "query": "q" * 900,
            "result_count": 1,
            "filters": {"colour": ["x" * 100] * 20},
        },
    )
    with pytest.raises(InvalidEvents) as error:
        service.accept([viewed(), big])
    assert [e["index"] for e in error.value.extra["errors"]] == [1]
    assert uow.commits == 0
