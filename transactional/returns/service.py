"""Return use cases: request, approve or reject, receive with inspection, refund.

Every state change commits with its event through the outbox. Receiving and refunding reach
other slices (stock, money), so, like an order's cancel, they go in steps: the state (or the
refund plan) is committed first, the other slice is called with no transaction open and
idempotently (per return, per refund plan), then the outcome is committed. A crash between
the steps leaves a received return with its stock move or refund unfinished; calling again,
or :meth:`ReturnService.finish_unfinished` (run by `souk serve`), completes it exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from schemas.ids import new_id
from transactional.returns.events import (
    approved_event,
    received_event,
    refund_issued_event,
    rejected_event,
    requested_event,
)
from transactional.returns.model import (
    AskedLine,
    Categories,
    Inspection,
    NotReturnsDesk,
    OrdersView,
    RefundDestinations,
    RefundExceedsCaptured,
    Return,
    ReturnedStock,
    ReturnNotFound,
    ReturnRepository,
    ReturnWindows,
    StockReturns,
    asked_units,
    new_return,
    plan_refund,
    refunded_before,
)
from transactional.shared.auth import Principal
from transactional.shared.errors import DomainError, InvalidRequest, NotFound
from transactional.shared.failpoints import failpoint
from transactional.shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
# Refusals of a payment destination that mean "more than is left of the capture".
_EXCEEDS = frozenset({"refund_exceeds_captured", "refund_exceeds_capture"})


class ReturnsUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the return repository attached."""

    returns: ReturnRepository


class SellerAccounts(Protocol):
    """The seller account a customer operates, if any."""

    def seller_of(self, customer_id: str) -> str | None:
        """The approved seller id of a customer, or None."""


@dataclass(frozen=True)
class ReturnPage:
    """One page of a customer's returns, newest first, with the total count."""

    items: list[Return]
    total: int
    page: int
    page_size: int


class ReturnService:
    """Returns (RMA) of delivered orders, refunded to the original payment method."""

    def __init__(
        self,
        uow: Callable[[], ReturnsUnitOfWork],
        *,
        orders: OrdersView,
        categories: Categories,
        stock: StockReturns,
        destinations: RefundDestinations,
        sellers: SellerAccounts,
        windows: ReturnWindows,
        auto_refund: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._orders = orders
        self._categories = categories
        self._stock = stock
        self._destinations = destinations
        self._sellers = sellers
        self._windows = windows
        self._auto_refund = auto_refund
        self._clock = clock

    @property
    def auto_refund(self) -> bool:
        """Whether receiving a return refunds it at once (else an admin does)."""
        return self._auto_refund

    # -- customers ------------------------------------------------------------------------

    def request(
        self,
        customer_id: str,
        order_id: str,
        lines: Sequence[AskedLine],
        comment: str | None = None,
    ) -> Return:
        """Ask to return units of one's own delivered order; emits ``return.requested``."""
        order = self._orders.sold(order_id)
        if order.customer_id != customer_id:  # another's order looks like no order
            raise NotFound(f"no order {order_id!r}", code="order_not_found")
        categories = self._categories.of(sorted({line.product_id for line in order.lines}))
        with self._uow() as uow:
            # Serialised per order: two requests cannot both claim the last unit.
            uow.returns.lock_order(order_id)
            ret = new_return(
                new_id("ret"),
                order,
                lines,
                customer_id=customer_id,
                categories=categories,
                windows=self._windows,
                already_asked=asked_units(uow.returns.of_order(order_id)),
                comment=comment,
                now=self._clock(),
            )
            uow.returns.add(ret)
            uow.emit(requested_event(ret))
            uow.commit()
        return ret

    def get(self, return_id: str, caller: Principal) -> Return:
        """A return its customer, an admin or the seller of one of its lines may see."""
        with self._uow() as uow:
            ret = uow.returns.get(return_id)
        if ret is None or not self._may_see(ret, caller):
            raise ReturnNotFound(f"no return {return_id!r}")
        return ret

    def mine(self, customer_id: str, page: int = 1, page_size: int = 20) -> ReturnPage:
        """A customer's returns, newest first."""
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidRequest(
                f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}",
                code="invalid_page",
            )
        with self._uow() as uow:
            items, total = uow.returns.of_customer(customer_id, page_size, (page - 1) * page_size)
        return ReturnPage(items, total, page, page_size)

    # -- the returns desk (sellers of every line, admins) ---------------------------------

    def approve(self, return_id: str, caller: Principal, note: str | None = None) -> Return:
        """requested -> approved; emits ``return.approved``."""
        return self._decide(return_id, caller, note, approve=True)

    def reject(self, return_id: str, caller: Principal, note: str | None = None) -> Return:
        """requested -> rejected; emits ``return.rejected`` (the units are free to ask again)."""
        return self._decide(return_id, caller, note, approve=False)

    def _decide(
        self, return_id: str, caller: Principal, note: str | None, *, approve: bool
    ) -> Return:
        actor = self._desk(return_id, caller)
        with self._uow() as uow:
            ret = self._locked(uow, return_id)
            now = self._clock()
            moved = ret.approve(actor, note, now) if approve else ret.reject(actor, note, now)
            if moved:
                uow.returns.save(ret)
                uow.emit(approved_event(ret) if approve else rejected_event(ret))
                uow.commit()
        return ret

    def receive(
        self, return_id: str, caller: Principal, inspections: Sequence[Inspection]
    ) -> Return:
        """approved -> received with each line's inspection (``return.received``); the units
        go back to stock or the damaged bucket, then, if automatic, the refund is issued."""
        self._desk(return_id, caller)
        with self._uow() as uow:
            ret = self._locked(uow, return_id)
            if ret.receive(inspections, self._clock()):
                uow.returns.save(ret)
                uow.emit(received_event(ret))
                uow.commit()
        ret = self._move_stock(ret)
        if self._auto_refund and ret.status == "received":
            return self._refund(ret, None)
        return ret

    def refund(self, return_id: str, caller: Principal, amount_minor: int | None = None) -> Return:
        """Issue (or finish) the refund of a received return (admins; ``amount_minor``
        overrides the computed amount). RefundExceedsCaptured, nothing booked, if it is more
        than is left of the capture."""
        caller.require_admin()
        with self._uow() as uow:
            ret = uow.returns.get(return_id)
        if ret is None:
            raise ReturnNotFound(f"no return {return_id!r}")
        ret = self._move_stock(ret)
        return self._refund(ret, amount_minor)

    def finish_unfinished(self, older_than_s: float = 60.0, limit: int = 100) -> int:
        """Complete stock moves and refunds a crash or a failure left behind; how many.

        For a periodic background task: only returns untouched for ``older_than_s`` are
        taken, so live requests finish their own. Every step is idempotent.
        """
        before = self._clock() - timedelta(seconds=older_than_s)
        with self._uow() as uow:
            due = uow.returns.unfinished(before, limit, unplanned=self._auto_refund)
        finished = 0
        for return_id in due:
            try:
                with self._uow() as uow:
                    ret = uow.returns.get(return_id)
                if ret is None:
                    continue
                ret = self._move_stock(ret)
                if ret.refund is not None or (self._auto_refund and ret.refund_error is None):
                    ret = self._refund(ret, None)
                finished += ret.status == "refunded" or ret.refund is None
            except Exception:
                log.warning("return %s: not finished; will retry", return_id, exc_info=True)
        return finished

    # -- steps ----------------------------------------------------------------------------

    def _move_stock(self, ret: Return) -> Return:
        """The received units back to stock (resellable) or the damaged bucket, once."""
        if ret.status not in ("received", "refunded") or ret.stock_moved:
            return ret
        units = [
            ReturnedStock(line.sku, line.warehouse_id, line.resellable, line.damaged)
            for line in ret.lines
            if line.received
        ]
        if units:
            self._stock.take_back(ret.return_id, ret.order_id, units)
        with self._uow() as uow:
            ret = self._locked(uow, ret.return_id)
            if not ret.stock_moved:
                ret.stock_moved = True
                uow.returns.save(ret)
                uow.commit()
        return ret

    def _refund(self, ret: Return, amount_override: int | None) -> Return:
        """Plan (committed), pay out (idempotent per plan), then settle with refund.issued."""
        if ret.status == "refunded":
            return ret
        if ret.payment_id is None:
            raise InvalidRequest(f"return {ret.return_id} has no payment to refund")
        if ret.refund is None:
            try:
                ret = self._plan(ret, amount_override)
            except DomainError as refused:
                self._note_refusal(ret.return_id, refused)
                raise
        elif amount_override is not None and amount_override != ret.refund.amount_minor:
            raise InvalidRequest(
                f"return {ret.return_id} is being refunded {ret.refund.amount_minor} already",
                code="refund_under_way",
            )
        plan = ret.refund
        assert plan is not None and ret.payment_id is not None
        failpoint("returns.after_plan")
        try:
            self._destinations.send(ret.payment_id, plan, return_id=ret.return_id)
        except DomainError as refused:
            # Refused for good (a timeout is no DomainError: it stays planned, retried later).
            self._abandon(ret.return_id, plan.refund_id, refused)
            if refused.code in _EXCEEDS:
                raise RefundExceedsCaptured(
                    f"return {ret.return_id}: {refused.detail}; nothing was booked",
                    amount=plan.amount_minor,
                ) from refused
            raise
        failpoint("returns.after_refund")
        with self._uow() as uow:
            uow.returns.lock_order(ret.order_id)
            ret = self._locked(uow, ret.return_id)
            if ret.refund is not None and ret.settle_refund(self._clock()):
                uow.returns.save(ret)
                uow.emit(refund_issued_event(ret))
                uow.commit()
            siblings = uow.returns.of_order(ret.order_id)
        self._close_order_if_all_back(ret, siblings)
        return ret

    def _plan(self, ret: Return, amount_override: int | None) -> Return:
        """Commit the refund's amount before any money moves; nothing if it is refused."""
        order = self._orders.sold(ret.order_id)
        assert ret.payment_id is not None
        funds = self._destinations.funds(ret.payment_id)
        with self._uow() as uow:
            uow.returns.lock_order(ret.order_id)
            ret = self._locked(uow, ret.return_id)
            if ret.refund is not None or ret.status == "refunded":
                return ret  # a concurrent call planned it
            siblings = [
                r for r in uow.returns.of_order(ret.order_id) if r.return_id != ret.return_id
            ]
            # Plans of other returns not paid out yet are not in the payment's refunds.
            in_flight = sum(
                r.refund.amount_minor for r in siblings if r.refund and r.refund_pending
            )
            plan = plan_refund(
                ret,
                order,
                refunded_before(siblings, ret.return_id),
                replace(funds, refunded_minor=funds.refunded_minor + in_flight),
                refund_id=new_id("rfd"),
                now=self._clock(),
                amount_override=amount_override,
            )
            ret.plan(plan)
            uow.returns.save(ret)
            uow.commit()
        return ret

    def _note_refusal(self, return_id: str, error: DomainError) -> None:
        """Remember why a refund was refused when planned (nothing was booked), so the
        housekeeping does not retry it; an admin's refund call tries again."""
        with self._uow() as uow:
            ret = self._locked(uow, return_id)
            if ret.status == "received" and ret.refund is None:
                ret.refund_error = f"{error.code}: {error.detail}"[:500]
                uow.returns.save(ret)
                uow.commit()

    def _abandon(self, return_id: str, refund_id: str, error: DomainError) -> None:
        """Drop a plan the destination refused (nothing moved): the return is received again."""
        with self._uow() as uow:
            ret = self._locked(uow, return_id)
            plan = ret.refund
            if ret.status == "received" and plan is not None and plan.refund_id == refund_id:
                ret.abandon_refund(f"{error.code}: {error.detail}"[:500], self._clock())
                uow.returns.save(ret)
                uow.commit()

    def _close_order_if_all_back(self, ret: Return, returns: Sequence[Return]) -> None:
        """Every unit of the order refunded through returns: the order becomes returned."""
        order = self._orders.sold(ret.order_id)
        refunded_units: dict[str, int] = {}
        refunded = 0
        for other in returns:
            if other.status != "refunded" or other.refund is None:
                continue
            refunded += other.refund.amount_minor
            for line_id, units in other.refund.units.items():
                refunded_units[line_id] = refunded_units.get(line_id, 0) + units
        if order.status == "delivered" and all(
            refunded_units.get(line.line_id, 0) >= line.quantity for line in order.lines
        ):
            self._orders.returned(order.order_id, refunded, [line.line_id for line in order.lines])
        elif refunded:
            self._orders.refunded(order.order_id, refunded)

    # -- helpers --------------------------------------------------------------------------

    def _desk(self, return_id: str, caller: Principal) -> str:
        """The actor string of a caller allowed to decide on or receive the return."""
        if caller.is_admin:
            return f"admin:{caller.customer_id}"
        seller = self._sellers.seller_of(caller.customer_id)
        with self._uow() as uow:
            ret = uow.returns.get(return_id)
        if ret is None or not self._may_see(ret, caller):
            raise ReturnNotFound(f"no return {return_id!r}")
        if seller is None or ret.seller_ids != {seller}:
            raise NotReturnsDesk(
                "only an admin, or the seller of every line of the return, may do this"
            )
        return f"seller:{seller}"

    def _may_see(self, ret: Return, caller: Principal) -> bool:
        if caller.is_admin or ret.customer_id == caller.customer_id:
            return True
        seller = self._sellers.seller_of(caller.customer_id)
        return seller is not None and seller in ret.seller_ids

    @staticmethod
    def _locked(uow: ReturnsUnitOfWork, return_id: str) -> Return:
        ret = uow.returns.get(return_id, for_update=True)
        if ret is None:
            raise ReturnNotFound(f"no return {return_id!r}")
        return ret
