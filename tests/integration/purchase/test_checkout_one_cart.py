"""One cart sells once: concurrent checkouts of the same cart with *different* keys (two tabs, a
client minting a key per click) buy its lines once, also when the first checkout's process
died and recovery finished or undid it."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import register
from tests.integration.purchase.test_checkout_api import (
    checkout_body,
    checkout_ids_of,
    filled_cart,
    stock_of,
    stock_sku,
)
from tests.integration.purchase.test_checkout_concurrency import post, race
from tests.integration.purchase.test_checkout_races import LEASE_S, run, saga, seller
from transactional.carts.model import Cart
from transactional.checkout.adapters import (
    CartsAdapter,
    OrdersAdapter,
    PaymentsAdapter,
    StockAdapter,
)
from transactional.checkout.dto import render
from transactional.checkout.pipelined import PipelinedCheckoutUnitOfWork
from transactional.checkout.repository import SqlCheckoutUnitOfWork
from transactional.checkout.service import CheckoutService
from transactional.payments.model import Payment
from transactional.shared.auth import Principal

__all__ = ["seller"]  # the module-scoped fixture, shared with the races module
UNITS_IN_CART = 2


class Died(BaseException):
    """The process dying mid-checkout (nothing below it runs, no handler sees it)."""


def sales(engine: Engine, customer_id: str) -> dict[str, Any]:
    """What the customer was sold and charged: orders by status, captures at the processor."""
    with engine.connect() as connection:
        orders = dict(
            connection.execute(
                text("SELECT status, count(*) FROM orders WHERE customer_id = :c GROUP BY status"),
                {"c": customer_id},
            ).all()
        )
        charges = dict(
            connection.execute(
                text(
                    "SELECT g.status, count(*) FROM payments p JOIN sandbox_gateway_charges g "
                    "ON g.reference = p.gateway_reference WHERE p.customer_id = :c "
                    "GROUP BY g.status"
                ),
                {"c": customer_id},
            ).all()
        )
    return {"orders": orders, "charges": charges}


def cart_skus(client: Any, shopper: dict[str, Any], cart_id: str) -> list[tuple[str, int]]:
    cart = client.get(f"/v1/carts/{cart_id}", headers=shopper["headers"])
    assert cart.status_code == 200, cart.text
    return [(line["sku"], line["quantity"]) for line in cart.json()["lines"]]


def racing_checkouts(
    live_url: str, shopper: dict[str, Any], cart_id: str, racers: int
) -> list[httpx.Response]:
    """``racers`` checkouts of one cart at once, each with its own Idempotency-Key."""
    body = checkout_body(cart_id)
    with httpx.Client(base_url=live_url, timeout=60) as http:
        return race([lambda: post(http, shopper, body, str(uuid.uuid4())) for _ in range(racers)])


@pytest.mark.parametrize("racers", [10, 50])
def test_racing_checkouts_of_one_cart_with_different_keys_buy_it_once(
    client: Any, engine: Engine, seller: dict[str, Any], live_url: str, racers: int
) -> None:
    sku = stock_sku(client, seller, 100)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: UNITS_IN_CART})

    responses = racing_checkouts(live_url, shopper, cart_id, racers)

    answers = Counter(
        (r.status_code, r.json().get("code"), r.json().get("reason")) for r in responses
    )
    assert answers[(201, None, None)] == 1, answers
    paid = next(r.json() for r in responses if r.status_code == 201)
    others = [r.json() for r in responses if r.status_code != 201]
    for problem in others:
        # Either still running (409 naming it), or already bought (the lines are gone).
        assert (problem["status"], problem["code"]) in (
            (409, "checkout_in_progress"),
            (422, "invalid_cart"),
        ), problem
        if problem["code"] == "checkout_in_progress":
            assert problem["checkout_id"] == paid["checkout_id"]
        else:
            assert (problem["reason"], problem["order_id"]) == (
                "already_checked_out",
                paid["order_id"],
            )
    assert sales(engine, shopper["customer_id"]) == {
        "orders": {"paid": 1},
        "charges": {"captured": 1},
    }
    assert stock_of(engine, sku) == (100 - UNITS_IN_CART, 0)
    assert cart_skus(client, shopper, cart_id) == []
    again = post(client, shopper, checkout_body(cart_id), str(uuid.uuid4()))
    assert (again.status_code, again.json()["reason"]) == (422, "already_checked_out")


def test_a_checkout_that_read_the_cart_before_another_bought_it_does_not_buy_it_again(
    client: Any, engine: Engine, services: Services, seller: dict[str, Any]
) -> None:
    # Tab B reads the cart (its lines are there), then stalls; tab A checks out the whole
    # cart meanwhile, lines removed and claim released; then B goes on with what it read.
    sku = stock_sku(client, seller, 100)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: UNITS_IN_CART})
    b_read, a_done = threading.Event(), threading.Event()

    class StallsAfterReading(CartsAdapter):
        def contents(self, cart_id: str, principal: Principal) -> Cart:
            cart = super().contents(cart_id, principal)
            b_read.set()
            assert a_done.wait(30)
            return cart

    tab_b = CheckoutService(  # the same service, its cart reads stalled
        lambda: SqlCheckoutUnitOfWork(services.engine, services.outbox),
        lambda: PipelinedCheckoutUnitOfWork(services.engine.raw_connection, services.outbox),
        carts=StallsAfterReading(services["carts"]),
        stock=StockAdapter(services["inventory"]),
        orders=OrdersAdapter(services["orders"]),
        payments=PaymentsAdapter(services["payments"]),
        render=render,
        card_key=b"races",
        lease_s=LEASE_S,
        idempotency_ttl_s=3600,
        regions=services.settings.regions,
    )
    late: list[Any] = []
    thread = threading.Thread(target=lambda: late.append(run(tab_b, shopper, cart_id, "key-B")))
    thread.start()
    assert b_read.wait(30)
    paid = run(saga(services), shopper, cart_id, "key-A")
    a_done.set()
    thread.join(60)

    assert paid.response.status == 201
    (answer,) = late
    body = answer.response.body
    assert (answer.response.status, body["code"], body["reason"]) == (
        422,
        "invalid_cart",
        "already_checked_out",
    )
    assert body["order_id"] == paid.response.body["order_id"]
    assert sales(engine, shopper["customer_id"]) == {
        "orders": {"paid": 1},
        "charges": {"captured": 1},
    }
    assert stock_of(engine, sku) == (100 - UNITS_IN_CART, 0)


@pytest.mark.parametrize(
    ("dies_after", "recovered_to"),
    [("authorize", "completed"), ("order", "failed")],
)
def test_a_cart_whose_checkout_recovery_took_over_is_still_bought_once(
    client: Any,
    engine: Engine,
    services: Services,
    seller: dict[str, Any],
    live_url: str,
    dies_after: str,
    recovered_to: str,
) -> None:
    sku = stock_sku(client, seller, 100)
    shopper = register(client)
    cart_id = filled_cart(client, shopper, {sku: UNITS_IN_CART})

    class DiesMidPayment(PaymentsAdapter):
        def hold(self, payment: Payment) -> None:
            if dies_after == "authorize":
                super().hold(payment)  # the processor holds the money, then the process dies
            raise Died

    with pytest.raises(Died):
        run(saga(services, payments=DiesMidPayment(services["payments"])), shopper, cart_id, "k1")
    (crashed,) = checkout_ids_of(engine, shopper["customer_id"])

    # While the dead checkout's saga is pending, its cart cannot be bought again.
    during = racing_checkouts(live_url, shopper, cart_id, 10)
    assert {(r.status_code, r.json()["code"]) for r in during} == {(409, "checkout_in_progress")}
    assert {r.json()["checkout_id"] for r in during} == {crashed}

    # Recovery takes the saga over once its lease runs out, and finishes or undoes it.
    assert saga(services, skew_s=LEASE_S + 1).recover() >= 1
    with engine.connect() as connection:
        status = connection.execute(
            text("SELECT status FROM checkouts WHERE checkout_id = :c"), {"c": crashed}
        ).scalar_one()
    assert status == recovered_to

    after = racing_checkouts(live_url, shopper, cart_id, 10)
    answers = Counter((r.status_code, r.json().get("code")) for r in after)
    if recovered_to == "completed":
        # Bought by the recovered checkout: the lines are gone, nobody buys them again.
        assert answers == {(422, "invalid_cart"): 10}
        assert all(r.json()["reason"] == "already_checked_out" for r in after)
    else:
        # Undone: the lines stayed in the cart, and exactly one racer buys them now.
        assert answers[(201, None)] == 1, answers
        assert set(answers) <= {(201, None), (409, "checkout_in_progress"), (422, "invalid_cart")}
    assert sales(engine, shopper["customer_id"])["orders"].get("paid") == 1
    captured = sales(engine, shopper["customer_id"])["charges"]
    assert captured.get("captured") == 1, captured
    assert stock_of(engine, sku) == (100 - UNITS_IN_CART, 0)
    assert cart_skus(client, shopper, cart_id) == []
