"""The checkout's hot path on in-memory fakes: the happy path in two commits, refusals before
anything is held, and the stock gate in front of PostgreSQL's conditional update."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.unit.checkout.fakes import (
    ADDRESS,
    CARD,
    OTHER,
    SHOPPER,
    WAREHOUSE,
    Harness,
    harness,
    ready,
    request,
)
from transactional.checkout.model import (
    IdempotencyKeyInvalid,
    IdempotencyKeyMissing,
    PaymentMethod,
    Stage,
)
from transactional.customers.model import Address
from transactional.inventory.model import ReservationStatus
from transactional.shared.auth import Principal
from transactional.shared.errors import InvalidRequest, NotFound

A = ("sku_a", WAREHOUSE)
B = ("sku_b", WAREHOUSE)
T1_EVENTS = ("checkout.started", "stock.reserved", "stock.reserved", "order.placed")
T2_EVENTS = (
    "payment.authorized",
    "payment.captured",
    "stock.committed",
    "stock.committed",
    "order.paid",
    "checkout.completed",
)


def test_the_happy_path_is_one_read_two_commits_and_the_cart_cleanup() -> None:
    h = ready()
    reply = h.checkout()
    checkout_id = reply.checkout_id
    payment_id = "pay_" + checkout_id.removeprefix("chk_")
    (order,) = h.world.orders()
    assert h.world.calls == [
        ("carts.contents", "crt_1"),
        # 1. the reads: one round trip, no transaction
        ("hot.sync", ("keys.get", "claims.state", "catalog.offers", "stock.levels")),
        # 2. the vault (the holder defaults to the addressee)
        ("payments.tokenize", "Ada L"),
        # 3. the Redis gate, no transaction open
        ("redis.gate", checkout_id, (("sku_a", WAREHOUSE, 2), ("sku_b", WAREHOUSE, 1))),
        # 4. T1: one sync, one commit
        (
            "hot.sync",
            (
                "keys.claim",
                "claims.claim",
                "stock.hold",
                "stock.hold",
                "stock.add_reservations",
                "orders.add",
                "payments.add",
                "checkouts.add",
            ),
        ),
        ("hot.commit", T1_EVENTS),
        # 5. authorize, the pre-capture read, capture
        ("payments.hold", payment_id),
        ("hot.sync", ("checkouts.renew", "orders.payable", "payments.status", "stock.held")),
        ("payments.collect", payment_id),
        # 6. T2
        (
            "hot.sync",
            (
                "keys.finish",  # first: a retry's T1 takes the key row before the stock
                "checkouts.save",
                "payments.save_if",
                "stock.commit_checkout",
                "orders.save_if",
            ),
        ),
        ("hot.commit", T2_EVENTS),
        # 7. the bought lines leave the cart, then the cart is free
        ("carts.checked_out", "crt_1", order.order_id, (("sku_a", 2), ("sku_b", 1))),
        ("hot.sync", ("claims.release",)),  # one statement, committed on its own
    ]
    assert h.world.commits() == [("hot.commit", T1_EVENTS), ("hot.commit", T2_EVENTS)]
    assert h.world.event_types() == [*T1_EVENTS, *T2_EVENTS]


def test_the_happy_path_answers_201_and_leaves_everything_settled() -> None:
    h = ready()
    reply = h.checkout()
    assert reply.response.status == 201 and not reply.replayed
    saga = h.world.saga(reply.checkout_id)
    (order,) = h.world.orders()
    assert reply.response.body == {
        "checkout_id": reply.checkout_id,
        "order_id": order.order_id,
        "status": "completed",
        "totals": {
            "currency": "EUR",
            "subtotal_minor": 2250,
            "discount_minor": 0,
            "shipping_minor": 0,
            "tax_minor": 0,
            "grand_total_minor": 2250,
        },
        "payment": {"payment_id": saga.payment_id, "status": "captured", "last4": "4242"},
    }
    assert (saga.stage, saga.status, saga.order_id) == (
        Stage.COMPLETED,
        "completed",
        order.order_id,
    )
    assert saga.payment_id == "pay_" + reply.checkout_id.removeprefix("chk_")
    assert [r.step for r in saga.history] == [
        "validate",
        "reserve",
        "order",
        "authorize",
        "capture",
        "finish",
    ]
    # The stored response is the one returned.
    record = h.world.key(SHOPPER.customer_id, "key-1")
    assert record is not None and record.response == reply.response
    # Paid, sold, captured once, the cart emptied and free.
    assert (order.status, order.paid_minor, order.payment_id) == ("paid", 2250, saga.payment_id)
    payment = h.world.payment(saga.payment_id or "")
    assert (payment.status, payment.captured_minor) == ("captured", 2250)
    assert payment.idempotency_key == f"{reply.checkout_id}:authorize"
    assert {r.status for r in h.world.reservations()} == {ReservationStatus.COMMITTED}
    assert h.world.available() == {A: (8, 8), B: (9, 9)}
    assert h.world.on_hand() == {A: 8, B: 9}
    cart = h.world.carts["crt_1"]
    assert (cart.lines, cart.last_order_id) == ({}, order.order_id)
    assert h.world.claim("crt_1") is None


def test_the_raw_card_is_never_stored_nor_put_in_an_event() -> None:
    h = ready()
    h.checkout()
    stored = repr(h.world.tables) + json.dumps([e.payload for e in h.world.outbox], default=str)
    stored += repr(h.world.calls)
    assert CARD.number not in stored and f"'{CARD.cvc}'" not in repr(h.world.tables)
    assert CARD.number not in repr(request())


def test_a_saved_address_is_read_with_the_rest_in_one_round_trip() -> None:
    h = ready()
    h.world.addresses[(SHOPPER.customer_id, "adr_1")] = Address(
        address_id="adr_1",
        customer_id=SHOPPER.customer_id,
        full_name="Ada L",
        line1="1 Main St",
        city="Paris",
        postal_code="75001",
        country="FR",
    )
    reply = h.checkout(request(address=None, address_id="adr_1"))
    assert reply.response.status == 201
    plan = h.world.saga(reply.checkout_id).plan
    assert plan is not None and (plan.shipping.address_id, plan.shipping.city) == ("adr_1", "Paris")
    assert h.world.calls[1] == (
        "hot.sync",
        ("keys.get", "claims.state", "catalog.offers", "stock.levels", "addresses.address"),
    )


def test_only_what_was_bought_leaves_the_cart() -> None:
    h = ready()

    def shopper_adds_more() -> None:  # while the payment runs
        cart = h.world.carts["crt_1"]
        cart.lines["sku_a"] = replace(cart.lines["sku_a"], quantity=3)
        cart.lines["sku_c"] = replace(cart.lines["sku_b"], sku="sku_c", quantity=4)

    h.world.on_call("payments.hold", shopper_adds_more)
    assert h.checkout().response.status == 201
    lines = h.world.carts["crt_1"].lines
    assert {sku: line.quantity for sku, line in lines.items()} == {"sku_a": 1, "sku_c": 4}


# -- refused before anything is held ---------------------------------------------------------------


def _validated(h: Harness) -> None:
    """Nothing held, no Redis unit taken, one commit: the key, the failed saga, the answer."""
    assert "redis.gate" not in h.world.names()
    assert h.world.commits() == [("hot.commit", ("checkout.failed",))]
    assert h.world.reservations() == [] and h.world.orders() == [] and h.world.payments() == []
    assert all(pg == redis == 10 for pg, redis in h.world.available().values())
    (saga,) = h.world.sagas()
    assert (saga.stage, saga.failure and saga.failure.step) == (Stage.FAILED, "validate")
    record = h.world.key(SHOPPER.customer_id, "key-1")
    assert record is not None and record.response is not None
    assert record.response.body["checkout_id"] == saga.checkout_id


@pytest.mark.parametrize(
    ("setup", "code", "reason"),
    [
        (lambda h: h.world.add_cart(lines=()), "invalid_cart", "empty"),
        (
            lambda h: h.world.add_cart(customer_id=OTHER.customer_id),
            "invalid_cart",
            "cart_not_found",
        ),
        (lambda h: h.world.stock("sku_a"), "invalid_cart", "cart_not_found"),  # no such cart
        (lambda h: h.world.add_cart(lines=(("sku_a", 1, None),)), "invalid_cart", "price_missing"),
    ],
    ids=["empty", "someone-elses", "unknown", "unpriced"],
)
def test_an_invalid_cart_is_422_at_validate(
    setup: Callable[[Harness], object], code: str, reason: str
) -> None:
    h = harness()
    setup(h)
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"], body.get("reason")) == (
        422,
        code,
        "validate",
        reason,
    )
    assert "payments.tokenize" not in h.world.names()
    _validated(h)


def test_a_cart_short_of_stock_is_409_at_validate() -> None:
    h = harness()
    h.world.stock("sku_a", on_hand=1)
    h.world.add_cart()
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"], body["skus"]) == (
        409,
        "insufficient_stock",
        "validate",
        ["sku_a"],
    )
    assert "redis.gate" not in h.world.names()
    assert h.world.commits() == [("hot.commit", ("checkout.failed",))]


def test_an_unknown_saved_address_is_422_at_validate() -> None:
    h = ready()
    reply = h.checkout(request(address=None, address_id="adr_x"))
    assert (reply.response.status, reply.response.body["code"]) == (422, "unknown_address")
    assert reply.response.body["step"] == "validate"
    _validated(h)


def test_an_unserved_country_is_422_at_validate() -> None:
    h = ready()
    reply = h.checkout(request(address=replace(ADDRESS, country="JP")))
    assert (reply.response.status, reply.response.body["code"]) == (422, "unserved_country")
    _validated(h)


def test_a_card_the_vault_refuses_is_422_at_validate() -> None:
    h = ready()
    h.world.fail("payments.tokenize", InvalidRequest("bad number", code="invalid_card"))
    reply = h.checkout()
    assert (reply.response.status, reply.response.body["code"]) == (422, "invalid_card")
    assert h.world.names() == [
        "carts.contents",
        "hot.sync",
        "payments.tokenize",
        "hot.sync",
        "hot.commit",
    ]
    _validated(h)


def test_the_customers_own_vault_token_pays() -> None:
    h = ready()
    h.world.owners["tok_ok_mine"] = SHOPPER.customer_id
    reply = h.checkout(request(payment=PaymentMethod(token="tok_ok_mine")))
    assert reply.response.status == 201
    saga = h.world.saga(reply.checkout_id)
    assert (saga.instrument_token, saga.card_last4) == ("tok_ok_mine", None)
    assert "payments.tokenize" not in h.world.names()


@pytest.mark.parametrize("token", ["tok_ok_theirs", "tok_ok_unknown"])
def test_another_customers_or_an_unknown_token_is_422_before_any_stock_is_held(
    token: str,
) -> None:
    h = ready()
    h.world.owners["tok_ok_theirs"] = OTHER.customer_id
    reply = h.checkout(request(payment=PaymentMethod(token=token)))
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"]) == (
        422,
        "unknown_instrument",
        "validate",
    )
    assert h.world.names() == [
        "carts.contents",
        "hot.sync",
        "payments.owns",
        "hot.sync",
        "hot.commit",
    ]
    _validated(h)


def test_a_cart_already_checked_out_is_422_naming_its_order() -> None:
    h = ready()
    first = h.checkout()
    (order,) = h.world.orders()
    again = h.checkout(key="key-2")
    body = again.response.body
    assert (again.response.status, body["code"], body["reason"], body["order_id"]) == (
        422,
        "invalid_cart",
        "already_checked_out",
        order.order_id,
    )
    assert again.checkout_id != first.checkout_id and len(h.world.orders()) == 1


def test_an_order_the_order_slice_refuses_holds_nothing() -> None:
    h = ready()
    with pytest.raises(InvalidRequest) as refused:
        h.checkout(principal=Principal(SHOPPER.customer_id, "mars"))
    assert refused.value.code == "unknown_region"
    # Refused while T1 was being built: the Redis units go back, nothing was written.
    assert h.world.names()[-2:] == ["redis.gate", "redis.give_back"]
    assert h.world.commits() == [] and h.world.sagas() == []
    assert h.world.available() == {A: (10, 10), B: (10, 10)}


def test_the_key_header_is_required_and_bounded() -> None:
    h = ready()
    for missing in (None, "", "   "):
        with pytest.raises(IdempotencyKeyMissing):
            h.checkout(key=missing)
    for bad in ("x" * 256, "clé", "a\tb"):
        with pytest.raises(IdempotencyKeyInvalid):
            h.checkout(key=bad)
    assert h.world.calls == []


def test_a_checkout_is_shown_to_its_customer_only() -> None:
    h = ready()
    reply = h.checkout()
    assert h.service.get(reply.checkout_id, SHOPPER.customer_id).stage is Stage.COMPLETED
    for checkout_id, customer_id in [
        (reply.checkout_id, OTHER.customer_id),
        ("chk_nope", SHOPPER.customer_id),
    ]:
        with pytest.raises(NotFound) as missing:
            h.service.get(checkout_id, customer_id)
        assert missing.value.code == "checkout_not_found"


# -- the stock gate and PostgreSQL's last word -----------------------------------------------------


def test_stock_taken_before_the_gate_is_409_at_reserve_in_one_commit() -> None:
    h = harness()
    h.world.stock("sku_b", on_hand=1)
    h.world.add_cart()
    # Another shopper's checkout takes the last unit between our reads and our gate.
    h.world.on_call("payments.tokenize", lambda: h.world.take("sku_b", 1))
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"], body["skus"]) == (
        409,
        "insufficient_stock",
        "reserve",
        ["sku_b"],
    )
    assert h.world.commits() == [("hot.commit", ("checkout.started", "checkout.failed"))]
    assert h.world.reservations() == [] and h.world.orders() == []
    assert h.world.available() == {A: (10, 10), B: (0, 0)}  # nothing of ours taken
    saga = h.world.only_saga()
    assert (saga.stage, saga.allocations) == (Stage.FAILED, ())


def _redis_drifts_up(h: Harness) -> None:
    """Right after our gate, PostgreSQL's units of sku_b in wh_eu_1 are gone but Redis still
    counts them (a drifted counter): T1's conditional update refuses the pick."""
    h.world.tables["levels"][B].reserved = 10


def test_a_hold_postgresql_refuses_rolls_t1_back_and_retries_elsewhere() -> None:
    h = harness()
    h.world.stock("sku_b")
    h.world.stock("sku_b", on_hand=5, warehouse_id="wh_eu_2")
    h.world.add_cart()
    h.world.on_done("redis.gate", lambda: _redis_drifts_up(h))
    reply = h.checkout()
    assert reply.response.status == 201
    names = h.world.names()
    first_t1 = names.index("redis.gate") + 1
    assert names[first_t1 : first_t1 + 5] == [
        "hot.sync",
        "hot.rollback",
        "redis.give_back",
        "redis.gate",
        "hot.sync",
    ]
    assert h.world.calls[first_t1 + 2] == ("redis.give_back", {A: 2, B: 1})
    assert h.world.calls[first_t1 + 3][2] == (("sku_a", WAREHOUSE, 2), ("sku_b", "wh_eu_2", 1))
    # Only the second attempt's holds exist; every counter is back in step.
    assert sorted((r.sku, r.warehouse_id) for r in h.world.reservations()) == [
        A,
        ("sku_b", "wh_eu_2"),
    ]
    assert next(c[1] for c in h.world.commits() if c[0] == "hot.commit") == T1_EVENTS
    assert h.world.on_hand() == {A: 8, B: 10, ("sku_b", "wh_eu_2"): 4}
    assert h.world.available()[A] == (8, 8) and h.world.available()[("sku_b", "wh_eu_2")] == (4, 4)


def test_a_hold_postgresql_refuses_with_no_stock_elsewhere_is_409_at_reserve() -> None:
    h = ready()
    h.world.on_done("redis.gate", lambda: _redis_drifts_up(h))
    reply = h.checkout()
    body = reply.response.body
    assert (reply.response.status, body["code"], body["step"], body["skus"]) == (
        409,
        "insufficient_stock",
        "reserve",
        ["sku_b"],
    )
    assert h.world.names().count("hot.rollback") == 1
    assert h.world.commits() == [("hot.commit", ("checkout.started", "checkout.failed"))]
    assert h.world.reservations() == [] and h.world.orders() == [] and h.world.payments() == []
    assert h.world.redis == {A: 10, B: 10}  # given back; reconcile repairs the drift
