"""The hot path books the capture in T2 itself: with its commit, never without it."""

from __future__ import annotations

import pytest

from tests.unit.checkout.fakes import DECLINED_CARD, ready, request
from transactional.ledger.model import LedgerTransaction, platform_revenue, processor_clearing
from transactional.shared.errors import StoreUnavailable


def test_t2_books_the_capture_split_in_its_own_commit() -> None:
    h = ready()
    reply = h.checkout()

    (order,) = h.world.orders()
    bookings: list[LedgerTransaction] = list(h.world.tables["ledger"].values())
    (capture,) = bookings
    assert (capture.kind, capture.order_id) == ("capture", order.order_id)
    assert capture.reference == "pay_" + reply.checkout_id.removeprefix("chk_")
    assert capture.totals() == {order.currency: 0}
    assert capture.on(processor_clearing(h.world.payment(capture.reference).gateway)) == (
        order.totals.grand_total
    )
    assert capture.on(platform_revenue()) < 0


def test_a_declined_checkout_books_nothing() -> None:
    h = ready()
    h.checkout(request(number=DECLINED_CARD))
    assert ([p.status for p in h.world.payments()], h.world.tables["ledger"]) == (["declined"], {})


def test_a_t2_that_does_not_commit_books_nothing() -> None:
    h = ready()
    h.world.fail("hot.commit", StoreUnavailable("the database went away"), nth=2)
    with pytest.raises(StoreUnavailable):
        h.checkout()
    assert h.world.tables["ledger"] == {}
