"""The pending-cancel sweeper backs off a stuck cancel, so it never starves newer ones."""

from __future__ import annotations

import logging

import pytest

from tests.unit.orders.test_order_service import World
from transactional.orders.service import PENDING_ALERT_ATTEMPTS
from transactional.shared.errors import StoreUnavailable


@pytest.fixture
def world() -> World:
    return World()


def stuck_cancel(world: World) -> str:
    """A paid order whose cancel is pending because its refund keeps failing."""
    order = world.paid()
    world.payments.fail = StoreUnavailable("gateway down")
    with pytest.raises(StoreUnavailable):
        world.service.cancel(order.order_id, "admin:a", "fraud_suspected")
    return str(order.order_id)


def test_a_stuck_cancel_backs_off_exponentially_up_to_an_hour(world: World) -> None:
    order_id = stuck_cancel(world)
    world.clock.advance(minutes=2)
    waits = []
    for _ in range(9):
        assert world.service.finish_pending_cancellations(older_than_s=60) == 0
        pending = world.service.get(order_id).pending
        assert pending is not None and pending.retry_at is not None
        waits.append((pending.retry_at - world.clock.now).total_seconds() / 60)
        # Not due before its next try...
        world.clock.advance(seconds=(pending.retry_at - world.clock.now).total_seconds() - 1)
        assert world.service.finish_pending_cancellations(older_than_s=60) == 0
        assert world.service.get(order_id).pending == pending
        world.clock.advance(seconds=1)  # ...due at it
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    world.payments.fail = None
    assert world.service.finish_pending_cancellations(older_than_s=60) == 1
    order = world.service.get(order_id)
    assert order.status == "cancelled" and order.pending is None


def test_a_stuck_cancel_does_not_starve_newer_ones(world: World) -> None:
    stuck = stuck_cancel(world)
    world.clock.advance(minutes=2)
    assert world.service.finish_pending_cancellations(older_than_s=60, limit=1) == 0
    world.payments.fail = None
    newer = world.place()
    world.inventory.fail = StoreUnavailable("redis is down")
    with pytest.raises(StoreUnavailable):
        world.service.cancel(newer.order_id, "admin:a", "fraud_suspected")
    world.inventory.fail = None
    world.payments.fail = StoreUnavailable("gateway down")  # the old one is still stuck
    world.clock.advance(minutes=2)
    # Both are due; the one waiting longest (the newer: never retried) goes first.
    assert world.service.finish_pending_cancellations(older_than_s=60, limit=1) == 1
    assert world.service.get(newer.order_id).status == "cancelled"
    assert world.service.get(stuck).pending is not None


def test_a_cancel_that_keeps_failing_is_logged_as_an_error(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    order_id = stuck_cancel(world)
    world.clock.advance(minutes=2)
    for attempt in range(1, PENDING_ALERT_ATTEMPTS + 1):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="transactional.orders.service"):
            world.service.finish_pending_cancellations(older_than_s=60)
        levels = [r.levelno for r in caplog.records if order_id in r.getMessage()]
        expected = logging.ERROR if attempt >= PENDING_ALERT_ATTEMPTS else logging.WARNING
        assert levels == [expected]
        world.clock.advance(hours=1)
