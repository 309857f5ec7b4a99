"""In-memory fakes of the returns slice's ports: repository, orders, stock and refunds."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from tests.fakes import FakeUnitOfWork
from transactional.returns.model import (
    Funds,
    RefundPlan,
    Return,
    ReturnedStock,
    ReturnWindows,
    SentRefund,
    SoldLine,
    SoldOrder,
)
from transactional.returns.service import ReturnService
from transactional.shared.errors import InvalidRequest, NotFound, StoreUnavailable

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class FakeReturnRepository:
    """Returns in a dict, deep-copied in and out like rows."""

    def __init__(self) -> None:
        self.rows: dict[str, Return] = {}

    def lock_order(self, order_id: str) -> None:
        pass

    def add(self, ret: Return) -> None:
        assert ret.return_id not in self.rows
        self.rows[ret.return_id] = copy.deepcopy(ret)

    def get(self, return_id: str, *, for_update: bool = False) -> Return | None:
        ret = self.rows.get(return_id)
        return None if ret is None else copy.deepcopy(ret)

    def save(self, ret: Return) -> None:
        self.rows[ret.return_id] = copy.deepcopy(ret)

    def of_order(self, order_id: str) -> list[Return]:
        return [copy.deepcopy(r) for r in self.rows.values() if r.order_id == order_id]

    def of_customer(self, customer_id: str, limit: int, offset: int) -> tuple[list[Return], int]:
        mine = [r for r in self.rows.values() if r.customer_id == customer_id]
        mine.sort(key=lambda r: (r.requested_at, r.return_id), reverse=True)
        return [copy.deepcopy(r) for r in mine[offset : offset + limit]], len(mine)

    def unfinished(self, before: datetime, limit: int, *, unplanned: bool) -> list[str]:
        return [
            r.return_id
            for r in self.rows.values()
            if r.status == "received"
            and (
                not r.stock_moved or r.refund is not None or (unplanned and r.refund_error is None)
            )
            and r.updated_at < before
        ][:limit]


class FakeReturnsUnitOfWork(FakeUnitOfWork):
    """A fake transaction with the shared return repository."""

    def __init__(self, returns: FakeReturnRepository) -> None:
        super().__init__()
        self.returns = returns


def sold_order(
    *,
    lines: Sequence[tuple[str, int, int]] = (("lin_1", 2, 1000), ("lin_2", 1, 500)),
    discount: int = 0,
    shipping: int = 499,
    tax: int = 0,
    status: str = "delivered",
    delivered_at: datetime | None = NOW - timedelta(days=2),
    customer_id: str = "cus_1",
    seller_id: str = "sel_1",
) -> SoldOrder:
    """A delivered order of ``lines`` (line id, quantity, unit price) paid by card."""
    return SoldOrder(
        order_id="ord_eu_1",
        region="eu",
        customer_id=customer_id,
        status=status,
        currency="EUR",
        lines=[
            SoldLine(lid, f"SKU-{lid}", f"prd_{lid}", seller_id, "wh_eu_1", qty, price)
            for lid, qty, price in lines
        ],
        discount_minor=discount,
        shipping_minor=shipping,
        tax_minor=tax,
        payment_id="pay_1",
        payment_method="card",
        delivered_at=delivered_at,
    )


@dataclass
class FakeOrders:
    """An order the returns read; ``closed`` records the moves to returned."""

    order: SoldOrder
    closed: list[tuple[str, int]] = field(default_factory=list)
    partly_refunded: int = 0

    def sold(self, order_id: str) -> SoldOrder:
        if order_id != self.order.order_id:
            raise NotFound(f"no order {order_id}", code="order_not_found")
        return self.order

    def returned(self, order_id: str, refunded_minor: int, line_ids: Sequence[str]) -> None:
        self.closed.append((order_id, refunded_minor))
        self.order = replace(self.order, status="returned")

    def refunded(self, order_id: str, refunded_minor: int) -> None:
        self.partly_refunded = max(self.partly_refunded, refunded_minor)


class FakeCategories:
    def __init__(self, categories: dict[str, str | None] | None = None) -> None:
        self.categories = categories or {}

    def of(self, product_ids: Sequence[str]) -> dict[str, str | None]:
        return {pid: self.categories.get(pid) for pid in product_ids}


class FakeStock:
    """Records every stock move; idempotent per return like the inventory's."""

    def __init__(self) -> None:
        self.moves: dict[str, list[ReturnedStock]] = {}
        self.calls = 0

    def take_back(self, return_id: str, order_id: str, units: Sequence[ReturnedStock]) -> int:
        self.calls += 1
        if return_id in self.moves:
            return 0
        self.moves[return_id] = list(units)
        return sum(u.resellable + u.damaged for u in units)


class FakeDestinations:
    """A payment: captured amount, refunds by idempotency key (a repeat replays).

    ``fail_next`` raises once on the next send (after or before moving money).
    """

    def __init__(self, captured: int, method: str = "card") -> None:
        self.captured = captured
        self.method = method
        self.refunds: dict[str, int] = {}
        self.fail_next: Exception | None = None
        self.fail_after_moving = False

    @property
    def refunded(self) -> int:
        return sum(self.refunds.values())

    def funds(self, payment_id: str) -> Funds:
        return Funds(payment_id, self.method, "EUR", self.captured, self.refunded)

    def send(self, payment_id: str, plan: RefundPlan, *, return_id: str) -> SentRefund:
        key = plan.idempotency_key
        failure, self.fail_next = self.fail_next, None
        if failure is not None and not self.fail_after_moving:
            raise failure
        if key not in self.refunds:
            if plan.amount_minor > self.captured - self.refunded:
                raise InvalidRequest("over", code="refund_exceeds_captured")
            self.refunds[key] = plan.amount_minor
        if failure is not None:
            raise failure
        return SentRefund(key, plan.amount_minor)


class FakeSellers:
    def __init__(self, sellers: dict[str, str] | None = None) -> None:
        self.sellers = sellers or {}

    def seller_of(self, customer_id: str) -> str | None:
        return self.sellers.get(customer_id)


@dataclass
class World:
    """A return service over fakes, with handles on every fake."""

    service: ReturnService
    repo: FakeReturnRepository
    uows: list[FakeReturnsUnitOfWork]
    orders: FakeOrders
    stock: FakeStock
    money: FakeDestinations
    clock: list[datetime]

    def events(self) -> list[str]:
        return [e for uow in self.uows for e in uow.event_types()]


def world(
    order: SoldOrder | None = None,
    *,
    windows: ReturnWindows | None = None,
    categories: dict[str, str | None] | None = None,
    auto_refund: bool = True,
    captured: int | None = None,
    sellers: dict[str, str] | None = None,
) -> World:
    """A return service over fresh fakes."""
    sold = order or sold_order()
    repo = FakeReturnRepository()
    uows: list[FakeReturnsUnitOfWork] = []

    def uow() -> FakeReturnsUnitOfWork:
        made = FakeReturnsUnitOfWork(repo)
        uows.append(made)
        return made

    clock = [NOW]
    grand = sum(line.total_minor for line in sold.lines) - sold.discount_minor
    grand += sold.shipping_minor + sold.tax_minor
    orders = FakeOrders(sold)
    stock = FakeStock()
    money = FakeDestinations(grand if captured is None else captured)
    service = ReturnService(
        uow,
        orders=orders,
        categories=FakeCategories(categories),
        stock=stock,
        destinations=money,
        sellers=FakeSellers(sellers),
        windows=windows or ReturnWindows(30),
        auto_refund=auto_refund,
        clock=lambda: clock[0],
    )
    return World(service, repo, uows, orders, stock, money, clock)


def unavailable() -> StoreUnavailable:
    """What a gateway timeout looks like to the returns (retryable, not a refusal)."""
    return StoreUnavailable("the payment gateway timed out; retry")
