"""Stripe-style idempotency keys per (customer, key): the first final response is stored with
the saga's last commit and replayed for every retry."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.unit.checkout.fakes import (
    ADDRESS,
    CARD,
    KEY_TTL_S,
    OTHER,
    SHOPPER,
    WAREHOUSE,
    Crash,
    Harness,
    ready,
    request,
)
from transactional.checkout.model import (
    CheckoutRequest,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    PaymentMethod,
)

A = ("sku_a", WAREHOUSE)
B = ("sku_b", WAREHOUSE)


def _crash_after_t1(h: Harness, key: str = "key-1") -> str:
    """A checkout whose process dies right after T1; its id."""
    h.world.fail("payments.hold", Crash("after T1"))
    with pytest.raises(Crash):
        h.checkout(key=key)
    (saga,) = [s for s in h.world.sagas() if s.idempotency_key == key]
    return saga.checkout_id


def test_a_retry_replays_the_first_response_without_running_again() -> None:
    h = ready()
    first = h.checkout()
    mark = len(h.world.calls)
    again = h.checkout(key="  key-1  ")
    assert again.replayed and again.response == first.response
    assert again.checkout_id == first.checkout_id
    # Only the cart and the one round trip of reads: nothing held, charged or written.
    assert h.world.since(mark) == ["carts.contents", "hot.sync"]
    assert len(h.world.orders()) == 1 and len(h.world.sagas()) == 1


def test_failures_are_replayed_too_even_once_the_cause_is_gone() -> None:
    h = ready()
    h.world.take("sku_a", 9)
    first = h.checkout()
    h.world.stock("sku_a", on_hand=50)
    again = h.checkout()
    assert first.response.status == 409 and first.response.body["code"] == "insufficient_stock"
    assert again.replayed and again.response == first.response


@pytest.mark.parametrize(
    "other",
    [
        request(cart_id="crt_2"),
        request(number="4000056655665556"),
        request(address=replace(ADDRESS, line1="2 Main St")),
        request(payment=PaymentMethod(card=replace(CARD, cvc="999"))),
        request(payment=PaymentMethod(token="tok_ok_1")),
    ],
    ids=["cart", "card-number", "address", "cvc", "token"],
)
def test_the_same_key_with_another_body_is_refused(other: CheckoutRequest) -> None:
    h = ready()
    h.world.add_cart("crt_2")
    first = h.checkout()
    with pytest.raises(IdempotencyKeyReused) as reused:
        h.checkout(other)
    assert reused.value.extra == {"checkout_id": first.checkout_id}
    assert len(h.world.sagas()) == 1


def test_a_key_in_flight_is_409_until_its_saga_ends() -> None:
    h = ready()
    checkout_id = _crash_after_t1(h)
    mark = len(h.world.calls)
    with pytest.raises(IdempotencyKeyInUse) as in_use:
        h.checkout()
    assert in_use.value.extra == {"checkout_id": checkout_id}
    assert h.world.since(mark) == ["carts.contents", "hot.sync"]


def test_a_request_that_lost_the_race_for_its_key_in_t1_answers_from_the_winner() -> None:
    h = ready()
    winner: list[str] = []

    def same_key_completes_first() -> None:  # between our reads and our T1
        winner.append(h.checkout().checkout_id)

    h.world.on_call("payments.tokenize", same_key_completes_first)
    reply = h.checkout()
    assert reply.replayed and reply.checkout_id == winner[0]
    assert reply.response.status == 201
    # Our T1 rolled back and gave its Redis units back: one order, sold once.
    assert h.world.names().count("hot.rollback") == 1
    assert len(h.world.orders()) == 1 and len(h.world.sagas()) == 1
    assert h.world.available() == {A: (8, 8), B: (9, 9)}


def test_a_request_that_lost_the_race_to_one_still_running_is_409_in_use() -> None:
    h = ready()
    winner: list[str] = []

    def same_key_commits_t1_first() -> None:
        winner.append(_crash_after_t1(h))

    h.world.on_call("payments.tokenize", same_key_commits_t1_first)
    with pytest.raises(IdempotencyKeyInUse) as in_use:
        h.checkout()
    assert in_use.value.extra == {"checkout_id": winner[0]}
    assert len(h.world.sagas()) == 1 and len(h.world.orders()) == 1
    assert h.world.available() == {A: (8, 8), B: (9, 9)}  # only the winner's holds


def test_keys_are_scoped_per_customer() -> None:
    h = ready()
    h.world.add_cart("crt_2", customer_id=OTHER.customer_id)
    mine = h.checkout(key="shared")
    theirs = h.checkout(request(cart_id="crt_2"), key="shared", principal=OTHER)
    assert not theirs.replayed and theirs.checkout_id != mine.checkout_id
    assert (mine.response.status, theirs.response.status) == (201, 201)
    assert h.world.key(SHOPPER.customer_id, "shared") is not None
    assert h.world.key(OTHER.customer_id, "shared") is not None


def test_an_expired_key_is_purged_by_recovery_and_can_be_used_anew() -> None:
    h = ready()
    first = h.checkout()
    h.clock.advance(KEY_TTL_S + 1)
    assert h.recover() == 0
    assert h.world.tables["keys"] == {}
    h.world.add_cart()
    again = h.checkout()
    assert not again.replayed and again.checkout_id != first.checkout_id
    assert again.response.status == 201


def test_an_expired_key_not_yet_purged_is_taken_over_in_t1() -> None:
    h = ready()
    first = h.checkout()
    h.clock.advance(KEY_TTL_S + 1)
    h.world.add_cart()
    again = h.checkout()
    assert not again.replayed and again.checkout_id != first.checkout_id
    record = h.world.key(SHOPPER.customer_id, "key-1")
    assert record is not None and record.checkout_id == again.checkout_id
    assert record.response == again.response
