"""In-memory fakes of the order slice's ports: repository, inventory and payments."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tests.fakes import FakeUnitOfWork
from transactional.orders.model import Order, OrderPage, Transition


class FakeOrderRepository:
    """Orders in a dict, deep-copied in and out like rows."""

    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.checkouts: dict[str, str] = {}
        self.moves: dict[str, list[Transition]] = {}

    def add(self, order: Order) -> bool:
        if order.checkout_id in self.checkouts:
            return False
        self.checkouts[order.checkout_id] = order.order_id
        self.orders[order.order_id] = copy.deepcopy(order)
        return True

    def by_checkout(self, checkout_id: str) -> Order | None:
        order_id = self.checkouts.get(checkout_id)
        return None if order_id is None else self.get(order_id)

    def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        order = self.orders.get(order_id)
        return None if order is None else copy.deepcopy(order)

    def save(self, order: Order) -> None:
        self.moves.setdefault(order.order_id, []).extend(order.history)
        stored = copy.deepcopy(order)
        stored.history = []
        self.orders[order.order_id] = stored

    def transitions(self, order_id: str) -> list[Transition]:
        return list(self.moves.get(order_id, []))

    def page_for(self, customer_id: str, page: int, page_size: int) -> OrderPage:
        mine = sorted(
            (o for o in self.orders.values() if o.customer_id == customer_id),
            key=lambda o: (o.placed_at, o.order_id),
            reverse=True,
        )
        start = (page - 1) * page_size
        return OrderPage(
            items=[copy.deepcopy(o) for o in mine[start : start + page_size]],
            total=len(mine),
            page=page,
            page_size=page_size,
        )

    def pending_due(self, before: datetime, now: datetime, limit: int) -> list[str]:
        due = sorted(
            (o.pending.retry_at or o.pending.since, o.order_id)
            for o in self.orders.values()
            if o.pending is not None
            and o.pending.since < before
            and (o.pending.retry_at is None or o.pending.retry_at <= now)
        )
        return [order_id for _, order_id in due[:limit]]


class FakeOrdersUnitOfWork(FakeUnitOfWork):
    """A fake transaction with the in-memory order repository."""

    def __init__(self) -> None:
        super().__init__()
        self.orders = FakeOrderRepository()


class FakeInventory:
    """Records release/restock calls (also in ``log``, shared with the payments fake)."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.log = [] if log is None else log
        self.fail: Exception | None = None

    def release(self, checkout_id: str, reason: str) -> int:
        self.calls.append(("release", checkout_id, reason))
        self.log.append("release")
        return 0

    def restock(self, order_id: str, reason: str) -> int:
        self.calls.append(("restock", order_id, reason))
        self.log.append("restock")
        if self.fail:
            raise self.fail
        return 0


@dataclass
class FakePaymentState:
    """What the fake payments answer."""

    refunded_minor: int


class FakePayments:
    """Records void/refund calls; a refund gives back ``captured[payment_id]``."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.captured: dict[str, int] = {}
        self.fail: Exception | None = None
        self.fail_void: Exception | None = None
        self.log = [] if log is None else log

    def void(self, payment_id: str) -> FakePaymentState:
        self.calls.append(("void", payment_id))
        self.log.append("void")
        failure = self.fail or self.fail_void
        if failure:
            raise failure
        return FakePaymentState(0)

    def refund(
        self, payment_id: str, amount_minor: int | None = None, *, reason: str = "cancellation"
    ) -> FakePaymentState:
        self.calls.append(("refund", payment_id, amount_minor, reason))
        self.log.append("refund")
        if self.fail:
            raise self.fail
        return FakePaymentState(self.captured.get(payment_id, 0))
