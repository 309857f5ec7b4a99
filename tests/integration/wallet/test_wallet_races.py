"""The wallet's double-spend race on real PostgreSQL: however many spends and checkouts race on
one wallet, the balance never goes below zero and exactly the affordable ones succeed."""

from __future__ import annotations

import functools
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, text

from souk.services import Services
from tests.integration.http import admin_headers, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import ADDRESS, filled_cart, stock_of, stock_sku
from tests.integration.purchase.test_checkout_races import card_request, saga
from tests.integration.wallet.helpers import balance_of, entries_of, top_up
from transactional.carts.repository import RedisCarts
from transactional.checkout.model import CheckoutRequest, PaymentMethod, ShippingAddress
from transactional.payments.instruments import wallet_token
from transactional.payments.model import GatewayAuthorization
from transactional.shared.auth import Principal

T = TypeVar("T")


def race(calls: list[Callable[[], T]]) -> list[T]:
    """Run the calls on their own threads, released together."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def assert_ledger_of_entries(engine: Engine, customer_id: str) -> None:
    """Entries sum to the balance, and no entry ever left the wallet below zero."""
    entries = entries_of(engine, customer_id)
    assert sum(amount for _, amount, _ in entries) == balance_of(engine, customer_id)
    assert all(after >= 0 for _, _, after in entries)


def test_forty_spends_racing_on_one_wallet_take_exactly_what_it_holds(
    client: Any, engine: Engine, services: Services
) -> None:
    shopper = register(client)
    customer_id = shopper["customer_id"]
    assert top_up(client, shopper, 10_500).status_code == 201
    router = services["payment_router"]
    token = wallet_token(customer_id)

    def spend(i: int) -> GatewayAuthorization:
        result: GatewayAuthorization = router.authorize(
            token, 1000, "EUR", f"race-{uuid.uuid4().hex}-{i}", owner=customer_id
        )
        return result

    results = race([functools.partial(spend, i) for i in range(40)])

    assert Counter(r.status for r in results) == {"authorized": 10, "declined": 30}
    assert {r.decline_code for r in results if r.status == "declined"} == {"insufficient_funds"}
    assert balance_of(engine, customer_id) == 500
    assert [kind for kind, _, _ in entries_of(engine, customer_id)].count("debit") == 10
    assert_ledger_of_entries(engine, customer_id)
    with engine.connect() as connection:
        held = connection.execute(
            text("SELECT count(*), sum(amount_minor) FROM wallet_spends WHERE customer_id = :c"),
            {"c": customer_id},
        ).one()
    assert tuple(held) == (10, 10_000)


def test_spends_racing_with_releases_and_top_ups_never_overdraw(
    client: Any, engine: Engine, services: Services
) -> None:
    shopper = register(client)
    customer_id = shopper["customer_id"]
    assert top_up(client, shopper, 3000).status_code == 201
    router = services["payment_router"]
    token = wallet_token(customer_id)
    held = [
        router.authorize(token, 1000, "EUR", f"held-{uuid.uuid4().hex}", owner=customer_id)
        for _ in range(3)
    ]
    assert [h.status for h in held] == ["authorized"] * 3 and balance_of(engine, customer_id) == 0

    # Two holds released and 2000 topped up while 20 spends of 1000 race: 4000 comes in, so
    # exactly 4 spends succeed, whichever order things happen in.
    def release(reference: str) -> Any:
        return router.void(reference, f"{reference}:void")

    def spend() -> Any:
        return router.authorize(token, 1000, "EUR", f"r-{uuid.uuid4().hex}", owner=customer_id)

    calls: list[Callable[[], Any]] = [functools.partial(release, h.reference) for h in held[:2]]
    calls.append(functools.partial(top_up, client, shopper, 2000))
    calls += [spend for _ in range(20)]
    results = race(calls)
    spends = [r for r in results if isinstance(r, GatewayAuthorization)]
    authorized = sum(r.status == "authorized" for r in spends)
    # Spends that ran before the money came in were declined; never more than 4 succeed.
    assert authorized <= 4
    assert balance_of(engine, customer_id) == 4000 - 1000 * authorized >= 0
    assert_ledger_of_entries(engine, customer_id)


def test_concurrent_checkouts_paid_by_one_wallet_complete_only_as_far_as_it_goes(
    client: Any, engine: Engine, services: Services
) -> None:
    seller = approved_seller(client, admin_headers(services.tokens))
    sku = stock_sku(client, seller, 30, price_minor=2500)
    shopper = register(client)
    customer_id = shopper["customer_id"]
    principal = Principal(customer_id, "eu", frozenset())
    checkout = saga(services)  # no fraud screen: eight checkouts a second are not fraud here
    store = RedisCarts(services.redis, ttl_s=3600)

    def own_cart() -> str:
        """A cart of the shopper's, detached from its 'active cart' slot so the next is new."""
        cart_id = filled_cart(client, shopper, {sku: 1})
        services.redis.delete(store.index_key(customer_id))
        return cart_id

    probe = checkout.checkout(principal, card_request(own_cart()), str(uuid.uuid4()))
    assert probe.response.status == 201, probe.response.body
    total = int(probe.response.body["totals"]["grand_total_minor"])
    assert top_up(client, shopper, 3 * total + total // 2).status_code == 201

    carts = [own_cart() for _ in range(8)]

    def pay(cart_id: str) -> Any:
        request = CheckoutRequest(
            cart_id=cart_id,
            payment=PaymentMethod(wallet=True),
            address=ShippingAddress(**ADDRESS),
        )
        return checkout.checkout(principal, request, str(uuid.uuid4())).response

    responses = race([functools.partial(pay, c) for c in carts])

    assert Counter(r.status for r in responses) == {201: 3, 402: 5}, [r.body for r in responses]
    assert {r.body["decline_code"] for r in responses if r.status == 402} == {"insufficient_funds"}
    assert balance_of(engine, customer_id) == total // 2
    assert_ledger_of_entries(engine, customer_id)
    # Every sale paid, every refused one's unit back on the shelf: 30 - 1 (probe) - 3 sold.
    assert stock_of(engine, sku) == (26, 0)
    with engine.connect() as connection:
        paid = connection.execute(
            text(
                "SELECT count(*), coalesce(sum(captured_minor), 0) FROM payments "
                "WHERE customer_id = :c AND method = 'wallet' AND status = 'captured'"
            ),
            {"c": customer_id},
        ).one()
    assert tuple(paid) == (3, 3 * total)
