"""One cart, many checkouts: T1 claims the cart, so a concurrent checkout with another key is
turned away (409 checkout_in_progress), and a later one finds the lines bought."""

from __future__ import annotations

import pytest

from tests.unit.checkout.fakes import (
    DECLINED_CARD,
    LEASE_S,
    OTHER,
    SHOPPER,
    WAREHOUSE,
    Crash,
    Harness,
    ready,
    request,
)
from transactional.checkout.model import CartInCheckout
from transactional.checkout.service import CheckoutReply

A = ("sku_a", WAREHOUSE)
B = ("sku_b", WAREHOUSE)


def _crash_after_t1(h: Harness, key: str) -> str:
    """A checkout of crt_1 whose process dies right after T1 (the cart claimed); its id."""
    h.world.fail("payments.hold", Crash("after T1"))
    with pytest.raises(Crash):
        h.checkout(key=key)
    (saga,) = [s for s in h.world.sagas() if s.idempotency_key == key]
    return saga.checkout_id


def test_a_cart_being_checked_out_turns_another_key_away_at_the_reads() -> None:
    h = ready()
    holder = _crash_after_t1(h, "key-1")
    assert h.world.claim("crt_1") == holder
    mark = len(h.world.calls)
    with pytest.raises(CartInCheckout) as busy:
        h.checkout(key="key-2")
    assert busy.value.code == "checkout_in_progress"
    assert busy.value.extra == {"cart_id": "crt_1", "checkout_id": holder}
    assert holder in busy.value.detail
    # Turned away before the vault, the gate or any write.
    assert h.world.since(mark) == ["carts.contents", "hot.sync"]
    assert len(h.world.sagas()) == 1 and h.world.key(SHOPPER.customer_id, "key-2") is None


def test_a_cart_claimed_between_the_reads_and_t1_rolls_t1_back_and_gives_redis_back() -> None:
    h = ready()
    holder: list[str] = []
    h.world.on_call("payments.tokenize", lambda: holder.append(_crash_after_t1(h, "key-other")))
    with pytest.raises(CartInCheckout) as busy:
        h.checkout(key="key-1")
    assert busy.value.extra == {"cart_id": "crt_1", "checkout_id": holder[0]}
    names = h.world.names()
    # T1's claim lost: the holder is read (one more round trip), then all is rolled back.
    assert names[-5:] == ["redis.gate", "hot.sync", "hot.sync", "hot.rollback", "redis.give_back"]
    # Only the holder's saga, order and holds exist; the key is free for a retry.
    assert [s.checkout_id for s in h.world.sagas()] == holder
    assert h.world.key(SHOPPER.customer_id, "key-1") is None
    assert h.world.available() == {A: (8, 8), B: (9, 9)}


def test_the_claim_is_released_once_the_bought_lines_left_the_cart() -> None:
    h = ready()
    reply = h.checkout()
    names = h.world.names()
    cleanup = names.index("carts.checked_out")
    assert h.world.calls[cleanup + 1] == ("hot.sync", ("claims.release",))
    assert h.world.claim("crt_1") is None
    # The next checkout of the cart finds its lines bought.
    again = h.checkout(key="key-2")
    assert (again.response.status, again.response.body["reason"]) == (422, "already_checked_out")
    assert again.response.body["order_id"] == h.world.saga(reply.checkout_id).order_id


def test_the_claim_is_released_with_a_decline_and_the_cart_can_be_bought_again() -> None:
    h = ready()
    declined = h.checkout(request(number=DECLINED_CARD))
    assert declined.response.status == 402
    assert h.world.claim("crt_1") is None
    assert set(h.world.carts["crt_1"].lines) == {"sku_a", "sku_b"}
    again = h.checkout(key="key-2")
    assert again.response.status == 201


def test_the_claim_is_released_when_recovery_rolls_the_checkout_back() -> None:
    h = ready()
    holder = _crash_after_t1(h, "key-1")
    h.clock.advance(LEASE_S + 1)
    assert h.recover() == 1
    assert h.world.saga(holder).status == "failed"
    assert h.world.claim("crt_1") is None
    assert h.checkout(key="key-2").response.status == 201


def test_a_refused_checkout_never_claims_the_cart() -> None:
    h = ready()
    h.world.take("sku_a", 9)
    assert h.checkout().response.status == 409
    assert h.world.tables["claims"] == {}


def test_a_strangers_cart_is_not_found_even_while_its_owner_checks_it_out() -> None:
    """A cart that is not the caller's is indistinguishable from an unknown one (422
    cart_not_found): whether its owner is checking it out, and under which checkout id, is
    none of the caller's business."""
    h = ready()
    _crash_after_t1(h, "key-1")  # the owner's checkout holds the cart
    reply = h.checkout(key="key-2", principal=OTHER)
    body = reply.response.body
    assert (reply.response.status, body["code"], body["reason"]) == (
        422,
        "invalid_cart",
        "cart_not_found",
    )


def test_a_checkout_that_read_the_cart_before_another_bought_it_is_refused_in_t1() -> None:
    h = ready()
    # Tab A's whole checkout runs after tab B read the cart (lines there), before B's T1.
    first: list[CheckoutReply] = []
    h.world.on_call("payments.tokenize", lambda: first.append(h.checkout(key="key-other")))
    late = h.checkout(key="key-1")
    (paid,) = first
    assert paid.response.status == 201
    body = late.response.body
    assert (late.response.status, body["reason"]) == (422, "already_checked_out")
    assert body["order_id"] == h.world.saga(paid.checkout_id).order_id
    assert len(h.world.orders()) == 1  # bought once, charged once
    assert h.world.claim("crt_1") is None
