"""The return service on fakes: the whole RMA, crash-like failures at the refund, the desk."""

from __future__ import annotations

import pytest

from tests.unit.returns.fakes import sold_order, unavailable, world
from transactional.returns.model import (
    AskedLine,
    Inspection,
    NotReturnsDesk,
    RefundExceedsCaptured,
    ReturnNotFound,
)
from transactional.shared.auth import ADMIN, Principal
from transactional.shared.errors import Forbidden, NotFound, StoreUnavailable

CUSTOMER = Principal("cus_1", "eu")
ADMIN_P = Principal("adm_1", "eu", frozenset({ADMIN}))
SELLER = Principal("cus_seller", "eu")


def test_request_approve_receive_refunds_restocks_and_announces_each_step() -> None:
    w = world()
    ret = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 2, "defective")], "broken")
    assert ret.status == "requested" and ret.requested_refund_minor == 2000
    w.service.approve(ret.return_id, ADMIN_P, "ok")
    done = w.service.receive(ret.return_id, ADMIN_P, [Inspection("lin_1", resellable=1, damaged=1)])
    assert done.status == "refunded" and done.stock_moved
    assert done.refund is not None and done.refund.amount_minor == 2000 + 499  # a defect
    assert w.money.refunds == {done.refund.idempotency_key: 2499}
    (moved,) = w.stock.moves[ret.return_id]
    assert (moved.resellable, moved.damaged) == (1, 1)
    assert w.events() == [
        "return.requested",
        "return.approved",
        "return.received",
        "refund.issued",
    ]
    assert w.orders.closed == []  # lin_2 is still with the customer
    assert w.orders.partly_refunded == 2499  # but the order shows what came back


def test_returning_everything_closes_the_order_as_returned() -> None:
    w = world()
    first = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 2)])
    second = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_2", 1)])
    for ret, lines in ((first, [Inspection("lin_1", 2)]), (second, [Inspection("lin_2", 1)])):
        w.service.approve(ret.return_id, ADMIN_P)
        w.service.receive(ret.return_id, ADMIN_P, lines)
    assert w.money.refunded == 2000 + 500 + 499 == w.money.captured
    assert w.orders.closed == [("ord_eu_1", 2999)]


def test_a_timeout_at_the_refund_keeps_the_plan_and_a_retry_pays_once() -> None:
    w = world(auto_refund=False)
    ret = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 1)])
    w.service.approve(ret.return_id, ADMIN_P)
    w.service.receive(ret.return_id, ADMIN_P, [Inspection("lin_1", 1)])
    # The money moves, then the answer is lost (a crash after the refund looks the same).
    w.money.fail_next, w.money.fail_after_moving = unavailable(), True
    with pytest.raises(StoreUnavailable):
        w.service.refund(ret.return_id, ADMIN_P)
    stuck = w.repo.get(ret.return_id)
    assert stuck is not None and stuck.status == "received" and stuck.refund is not None
    assert "refund.issued" not in w.events()
    w.clock[0] = w.clock[0].replace(hour=13)
    assert w.service.finish_unfinished(older_than_s=60) == 1
    done = w.repo.get(ret.return_id)
    assert done is not None and done.status == "refunded"
    assert w.money.refunded == 1000 and len(w.money.refunds) == 1
    assert w.events().count("refund.issued") == 1
    assert w.service.refund(ret.return_id, ADMIN_P).status == "refunded"  # a no-op now
    assert w.money.refunded == 1000


def test_a_refused_refund_books_nothing_and_leaves_the_return_received() -> None:
    w = world(captured=2999)
    ret = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 2)])
    w.service.approve(ret.return_id, ADMIN_P)
    w.money.refunds["cancel"] = 2500  # a cancel took most of it meanwhile
    with pytest.raises(RefundExceedsCaptured):
        w.service.receive(ret.return_id, ADMIN_P, [Inspection("lin_1", 2)])
    left = w.repo.get(ret.return_id)
    assert left is not None and left.status == "received" and left.refund is None
    assert left.stock_moved  # the units did come back
    assert w.money.refunded == 2500 and "refund.issued" not in w.events()


def test_a_destination_refusing_after_the_plan_abandons_it() -> None:
    w = world(auto_refund=False)
    ret = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 2)])
    w.service.approve(ret.return_id, ADMIN_P)
    w.service.receive(ret.return_id, ADMIN_P, [Inspection("lin_1", 2)])
    real_send = w.money.send

    def cancel_wins_the_race(*args, **kwargs):  # type: ignore[no-untyped-def]
        w.money.refunds["cancel"] = 1000  # after the plan was made, before the money moves
        return real_send(*args, **kwargs)

    w.money.send = cancel_wins_the_race  # type: ignore[method-assign]
    with pytest.raises(RefundExceedsCaptured):
        w.service.refund(ret.return_id, ADMIN_P)
    left = w.repo.get(ret.return_id)
    assert left is not None and left.status == "received" and left.refund is None
    assert left.refund_error and "refund_exceeds_captured" in left.refund_error
    assert w.money.refunded == 1000 and "refund.issued" not in w.events()


def test_an_admin_amount_over_the_capture_is_refused() -> None:
    w = world(auto_refund=False)
    ret = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 1)])
    w.service.approve(ret.return_id, ADMIN_P)
    w.service.receive(ret.return_id, ADMIN_P, [Inspection("lin_1", 1)])
    with pytest.raises(RefundExceedsCaptured):
        w.service.refund(ret.return_id, ADMIN_P, amount_minor=3000)
    assert w.money.refunds == {}
    with pytest.raises(Forbidden):
        w.service.refund(ret.return_id, CUSTOMER)
    assert w.service.refund(ret.return_id, ADMIN_P, amount_minor=800).status == "refunded"
    assert w.money.refunded == 800


def test_only_the_seller_of_every_line_or_an_admin_may_decide() -> None:
    w = world(sellers={"cus_seller": "sel_1", "cus_other": "sel_2"})
    ret = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 1)])
    with pytest.raises(NotReturnsDesk):
        w.service.approve(ret.return_id, CUSTOMER)
    with pytest.raises(ReturnNotFound):  # another seller does not even see it
        w.service.approve(ret.return_id, Principal("cus_other", "eu"))
    assert w.service.approve(ret.return_id, SELLER).decided_by == "seller:sel_1"
    assert w.service.get(ret.return_id, SELLER).return_id == ret.return_id
    with pytest.raises(ReturnNotFound):
        w.service.get(ret.return_id, Principal("cus_2", "eu"))


def test_another_customers_order_is_not_found_and_nothing_is_written() -> None:
    w = world()
    with pytest.raises(NotFound):
        w.service.request("cus_2", "ord_eu_1", [AskedLine("lin_1", 1)])
    assert w.repo.rows == {} and w.events() == []


def test_rejected_units_may_be_asked_back_again_but_not_twice_at_once() -> None:
    w = world(sold_order(lines=(("lin_1", 1, 1000),)))
    first = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 1)])
    with pytest.raises(Exception, match="not in a return already"):
        w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 1)])
    w.service.reject(first.return_id, ADMIN_P, "photos first")
    assert w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 1)]).status == "requested"
    page = w.service.mine("cus_1")
    assert page.total == 2 and {r.status for r in page.items} == {"requested", "rejected"}


def test_the_housekeeping_refunds_a_received_return_left_unplanned_but_not_a_refused_one() -> None:
    w = world()
    ret = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 1)])
    w.service.approve(ret.return_id, ADMIN_P)
    # Received (stock moved) by a process that died before it planned the refund.
    manual = world(auto_refund=False)
    manual.repo.rows = w.repo.rows
    manual.service._stock = w.stock  # type: ignore[attr-defined]  # the same shelf
    manual.service.receive(ret.return_id, ADMIN_P, [Inspection("lin_1", 1)])
    w.clock[0] = w.clock[0].replace(hour=13)
    assert w.service.finish_unfinished(older_than_s=60) == 1
    assert w.repo.rows[ret.return_id].status == "refunded" and w.money.refunded == 1000

    other = w.service.request("cus_1", "ord_eu_1", [AskedLine("lin_1", 1)])
    w.service.approve(other.return_id, ADMIN_P)
    w.money.refunds["cancel"] = w.money.captured - w.money.refunded  # nothing left
    with pytest.raises(RefundExceedsCaptured):
        w.service.receive(other.return_id, ADMIN_P, [Inspection("lin_1", 1)])
    refused = w.repo.rows[other.return_id]
    assert refused.refund_error and refused.refund_error.startswith("refund_exceeds_captured")
    w.clock[0] = w.clock[0].replace(hour=14)
    assert w.service.finish_unfinished(older_than_s=60) == 0  # not retried on its own
