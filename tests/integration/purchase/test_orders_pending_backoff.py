"""The pending-cancel sweeper on PostgreSQL: a cancel that keeps failing backs off, so it does
not hold the front of the queue, and finishes once its refund goes through."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.purchase.test_orders_cancel import (
    PRICE,
    TimingOutRefunds,
    seller,
    sold_order,
    stocked_sku,
)
from transactional.orders.repository import SqlOrdersUnitOfWork
from transactional.orders.service import OrderService
from transactional.payments.model import GatewayTimeout

__all__ = ["seller"]  # the module-scoped fixture, shared with the cancel module


def orders_at(services: Services, ahead: timedelta, *, flaky: bool) -> OrderService:
    """An order service on the test database, its clock ``ahead``, refunds timing out if flaky."""
    return OrderService(
        lambda: SqlOrdersUnitOfWork(services.engine, services.outbox),
        inventory=services["inventory"],
        payments=TimingOutRefunds(services["payments"]) if flaky else services["payments"],
        regions=services.settings.regions,
        clock=lambda: datetime.now(UTC) + ahead,
    )


def retry_state(engine: Engine, order_id: str) -> tuple[int, datetime | None]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT pending_attempts, pending_retry_at FROM orders WHERE order_id = :o"),
            {"o": order_id},
        ).one()
    return row.pending_attempts, row.pending_retry_at


def test_a_failing_cancel_backs_off_and_then_finishes(
    client: Any, services: Services, engine: Engine, seller: dict[str, Any]
) -> None:
    sku, product_id = stocked_sku(client, seller, 2)
    order = sold_order(services, seller, sku, product_id)
    with pytest.raises(GatewayTimeout):
        orders_at(services, timedelta(0), flaky=True).cancel(
            order.order_id, "system:fraud", "fraud_suspected"
        )
    assert retry_state(engine, order.order_id) == (0, None)
    # The sweeper (a minute later) fails too: one attempt counted, next try a minute on.
    orders_at(services, timedelta(minutes=1), flaky=True).finish_pending_cancellations()
    attempts, retry_at = retry_state(engine, order.order_id)
    assert attempts == 1 and retry_at is not None
    assert timedelta(seconds=100) < retry_at - datetime.now(UTC) <= timedelta(minutes=2)
    # Not due yet: even a working sweeper leaves it (others go first).
    orders_at(
        services, timedelta(minutes=1, seconds=30), flaky=False
    ).finish_pending_cancellations()
    assert retry_state(engine, order.order_id)[0] == 1
    assert services["orders"].get(order.order_id).status == "paid"
    # Due, and the gateway answers: cancelled and refunded, the retry state cleared.
    later = orders_at(services, timedelta(minutes=2, seconds=5), flaky=False)
    assert later.finish_pending_cancellations() >= 1
    done = services["orders"].get(order.order_id)
    assert (done.status, done.refunded_minor, done.pending) == ("cancelled", PRICE, None)
    assert retry_state(engine, order.order_id) == (0, None)
