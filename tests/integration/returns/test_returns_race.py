"""Refund racing a cancel, on the real stack: a return's refund and the order's own refund
of everything left (the cancel/return compensation) run at once; never more than captured is
given back, each refund is recorded once, and no unit comes back twice."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine

from souk.services import Services
from tests.integration.http import admin_headers
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.returns.helpers import (
    delivered_order,
    events_of,
    gateway_refunded,
    line_of,
    manual_returns,
    payment_row,
    received,
    refunds_of,
    stock_row,
)
from transactional.payments.model import GatewayRefused
from transactional.returns.model import RefundExceedsCaptured
from transactional.shared.auth import ADMIN, Principal
from transactional.shared.errors import DomainError

ROUNDS = 4
UNITS = 10
DESK = Principal("admin", "eu", frozenset({ADMIN}))


@pytest.fixture(scope="module")
def seller(app: Litestar, services: Services) -> Iterator[dict[str, Any]]:
    with TestClient(app, raise_server_exceptions=False) as setup:
        yield approved_seller(setup, admin_headers(services.tokens))


def race(*contenders: Callable[[], object]) -> list[BaseException | None]:
    """Run the callables at once (a barrier releases them together); each one's error."""
    barrier = threading.Barrier(len(contenders))
    errors: list[BaseException | None] = [None] * len(contenders)

    def run(index: int, contender: Callable[[], object]) -> None:
        barrier.wait()
        try:
            contender()
        except BaseException as error:  # collected, asserted on below
            errors[index] = error

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a contender hung"
    return errors


def test_a_return_refund_racing_the_orders_cancel_refund_never_refunds_more_than_captured(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    admin = admin_headers(services.tokens)
    returns = manual_returns(services)
    orders, payments = services["orders"], services["payments"]
    outcomes: set[str] = set()
    for _ in range(ROUNDS):
        shopper, order, (sku,) = delivered_order(client, admin, seller, {1999: 2}, units=UNITS)
        order_id, payment_id = order["order_id"], order["payment_id"]
        line_id = line_of(order, sku)["line_id"]
        captured = payment_row(engine, payment_id)["captured_minor"]
        asked = client.post(
            f"/v1/orders/{order_id}/returns",
            json={"lines": [{"line_id": line_id, "quantity": 1, "reason": "defective"}]},
            headers=shopper["headers"],
        )
        assert asked.status_code == 201, asked.text
        return_id = asked.json()["return_id"]
        received(services, return_id, {line_id: 1})

        errors = race(
            lambda: returns.refund(return_id, DESK),  # noqa: B023 - run within this round
            # The order's compensation: everything left refunded and restocked, as a cancel.
            lambda: orders.transition(order_id, "returned", "customer refused it", "admin:a"),  # noqa: B023
            lambda: payments.refund(payment_id, None, reason="cancellation"),  # noqa: B023
        )
        for error in errors:  # losing a race is a refusal, never a 500-type failure
            assert error is None or isinstance(error, DomainError), repr(error)
        # Whatever lost, a retry of the order's compensation settles it.
        orders.transition(order_id, "returned", "customer refused it", "admin:a")

        payment = payment_row(engine, payment_id)
        recorded = refunds_of(engine, payment_id)
        assert payment["refunded_minor"] == sum(recorded) == gateway_refunded(engine, payment_id)
        assert payment["refunded_minor"] == captured  # all of it back, not a cent more
        ret = returns.get(return_id, DESK)
        issued = [e for e in events_of(engine, return_id) if e["type"] == "refund.issued"]
        if ret.status == "refunded":
            assert ret.refund is not None and ret.refund.amount_minor in recorded
            assert len(issued) == 1
            outcomes.add("return first")
        else:
            # Refused when planned (nothing committed: our own check) or when sent (the plan
            # dropped: the gateway found the charge refunded meanwhile).
            assert ret.status == "received" and ret.refund is None and issued == []
            assert isinstance(errors[0], RefundExceedsCaptured | GatewayRefused), repr(errors[0])
            outcomes.add("cancel first")
        # Every sold unit is back exactly once (one by the return, the other by the order).
        assert stock_row(engine, sku) == (UNITS, 0, 0)
        shown = client.get(f"/v1/orders/{order_id}", headers=shopper["headers"]).json()
        assert shown["status"] == "returned"
    assert outcomes  # at least one round ran to the end (which side won varies)
