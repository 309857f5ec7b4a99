"""Order use cases: place (once per checkout), pay, move through fulfilment, cancel, read."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, get_args

from schemas.common import PaymentMethod
from schemas.ids import new_id, uuid7
from transactional.orders.events import (
    SANDBOX_CARRIER,
    fulfilment_events,
    paid_event,
    placed_event,
    settled_events,
)
from transactional.orders.model import (
    CANCEL_REASONS,
    CancelReason,
    CheckoutInProgress,
    InventoryPort,
    Order,
    OrderNotFound,
    OrderPage,
    OrderRepository,
    OrderStatus,
    PaymentsPort,
    Transition,
    actor_kind,
    region_of,
)
from transactional.orders.placement import PlaceOrder, new_order
from transactional.shared.errors import Conflict, InvalidRequest, NotFound
from transactional.shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# The sweeper retries a failed cancel or return after 1 min, doubling up to an hour, and
# logs an ERROR (someone should look) from this many failed attempts on.
PENDING_RETRY_FIRST = timedelta(minutes=1)
PENDING_RETRY_MAX = timedelta(hours=1)
PENDING_ALERT_ATTEMPTS = 5
MAX_PAGE_SIZE = 100
ADMIN_TARGETS: frozenset[OrderStatus] = frozenset(
    {"packed", "shipped", "delivered", "returned", "cancelled"}
)
_PAYMENT_METHODS: frozenset[str] = frozenset(get_args(PaymentMethod))
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class OrdersUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the order repository attached."""

    orders: OrderRepository


class OrderService:
    """The Order Service of the seed: orders sharded by region and order id."""

    def __init__(
        self,
        uow: Callable[[], OrdersUnitOfWork],
        *,
        inventory: InventoryPort,
        payments: PaymentsPort,
        regions: Collection[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._inventory = inventory
        self._payments = payments
        self._regions = frozenset(regions)
        self._clock = clock

    def place(self, command: PlaceOrder) -> Order:
        """Create the order and emit ``order.placed``; a repeated checkout returns its order."""
        order = new_order(command, self._regions, self._clock())
        with self._uow() as uow:
            existing = uow.orders.by_checkout(command.checkout_id)
            if existing is None:
                if uow.orders.add(order):
                    uow.orders.save(order)
                    uow.emit(placed_event(order))
                    uow.commit()
                    order.history.clear()
                    return order
                # Lost the race for this checkout: the winner has committed by now.
                existing = uow.orders.by_checkout(command.checkout_id)
            if existing is None:
                raise Conflict(f"checkout {command.checkout_id} is being placed; retry")
        if existing.customer_id != command.customer_id:
            raise Conflict(
                f"checkout {command.checkout_id} was placed by another customer",
                code="checkout_already_placed",
            )
        return existing

    def mark_paid(
        self, order_id: str, payment_id: str, amount_minor: int, method: PaymentMethod
    ) -> Order:
        """Record the captured payment and emit ``order.paid``; idempotent per payment."""
        if method not in _PAYMENT_METHODS:
            raise InvalidRequest(f"unknown payment method {method!r}", code="invalid_method")
        if not payment_id:
            raise InvalidRequest("payment_id is required", code="invalid_id")
        with self._uow() as uow:
            order = self._locked(uow, order_id)
            if order.mark_paid(payment_id, amount_minor, self._clock(), "system:payments"):
                uow.orders.save(order)
                uow.emit(paid_event(order, payment_id, amount_minor, method))
                uow.commit()
        order.history.clear()
        return order

    def cancel(
        self,
        order_id: str,
        actor: str,
        reason: CancelReason,
        customer_id: str | None = None,
        *,
        note: str | None = None,
    ) -> Order:
        """Cancel a placed or paid order: payment voided or refunded, then stock back.

        ``customer_id`` restricts it to that customer's order (others look not found). A
        customer cannot cancel a placed order: its checkout still pays for it or cancels it
        (CheckoutInProgress, 409). If a refund or restock fails the error propagates and the
        cancel stays pending (the order cannot be packed); calling again, or
        :meth:`finish_pending_cancellations`, completes it.
        """
        if reason not in CANCEL_REASONS:
            raise InvalidRequest(
                f"unknown cancel reason {reason!r}; use one of {', '.join(CANCEL_REASONS)}",
                code="invalid_cancel_reason",
            )
        kind = actor_kind(actor)
        order = self._begin(
            order_id, "cancelled", reason, actor, note, customer_id, by_customer=kind == "customer"
        )
        return self._settle(order)

    def finish_pending_cancellations(self, older_than_s: float = 60.0, limit: int = 100) -> int:
        """Complete cancels and returns left pending by a failure; returns how many finished.

        For a periodic background task: only intents older than ``older_than_s`` are taken,
        so live requests finish their own. Every step is idempotent, so a race is harmless.
        One that fails again is retried later and later (exponential backoff up to an hour),
        so stuck ones do not starve newer ones.
        """
        now = self._clock()
        before = now - timedelta(seconds=older_than_s)
        with self._uow() as uow:
            due = uow.orders.pending_due(before, now, limit)
        finished = 0
        for order_id in due:
            try:
                with self._uow() as uow:
                    order = uow.orders.get(order_id)
                if order is not None:
                    self._settle(order)
                    finished += 1
            except Exception:
                self._postpone(order_id)
        return finished

    def _postpone(self, order_id: str) -> None:
        """Count a failed compensation and back off its next try; ERROR once it keeps failing."""
        attempts = 0
        try:
            with self._uow() as uow:
                order = uow.orders.get(order_id, for_update=True)
                if order is not None and order.pending is not None:
                    attempts = order.pending.attempts + 1
                    delay = min(PENDING_RETRY_FIRST * 2 ** (attempts - 1), PENDING_RETRY_MAX)
                    order.pending = replace(
                        order.pending, attempts=attempts, retry_at=self._clock() + delay
                    )
                    uow.orders.save(order)
                    uow.commit()
        except Exception:  # the store may be what failed: the next sweep tries again
            log.warning("order %s: could not record the failed attempt", order_id)
        if attempts >= PENDING_ALERT_ATTEMPTS:
            log.exception(
                "order %s: pending cancel/return failed %d times; needs a look",
                order_id,
                attempts,
            )
        else:
            log.warning(
                "order %s: pending cancel/return not finished (attempt %d); will retry",
                order_id,
                attempts,
                exc_info=True,
            )

    def transition(
        self, order_id: str, to: OrderStatus, cause: str, actor: str, *, note: str | None = None
    ) -> Order:
        """Move an order on (packed/shipped/delivered/returned, or cancelled with a reason).

        ``cause`` is free text, except for ``cancelled`` where it must be a cancel reason;
        ``note`` is free text for the cancelled and returned events.
        """
        if to not in ADMIN_TARGETS:
            raise InvalidRequest(
                f"an order can be moved to {', '.join(sorted(ADMIN_TARGETS))}, not {to!r}",
                code="invalid_status",
            )
        if not cause.strip():
            raise InvalidRequest("say why: the cause is required", code="missing_cause")
        if to == "cancelled":
            if cause not in CANCEL_REASONS:
                raise InvalidRequest(
                    f"to cancel, the cause must be one of {', '.join(CANCEL_REASONS)}",
                    code="invalid_cancel_reason",
                )
            return self.cancel(order_id, actor, cause, note=note)
        actor_kind(actor)
        if to == "returned":
            return self._settle(self._begin(order_id, "returned", cause, actor, note))
        with self._uow() as uow:
            order = self._locked(uow, order_id)
            order.require(to)
            if order.status == to:
                return order
            at = self._clock()
            order.transition(to, at, cause, actor)
            if to == "shipped":
                for group in order.groups:
                    group.shipment_id = new_id("shp")
                    group.carrier = SANDBOX_CARRIER
                    group.tracking_number = f"SBX{uuid7().hex[:16].upper()}"
            uow.orders.save(order)
            uow.emit(*fulfilment_events(order, to, at, 0, note or cause))
            uow.commit()
        order.history.clear()
        return order

    def record_returned(self, order_id: str, refunded_minor: int, actor: str, note: str) -> Order:
        """Every unit of a delivered order came back through returns (RMA), each refunded and
        restocked there: the order becomes returned with no compensation of its own (emits
        ``order.returned``); idempotent."""
        actor_kind(actor)
        with self._uow() as uow:
            order = self._locked(uow, order_id)
            if order.status == "returned":
                return order
            at = self._clock()
            order.transition("returned", at, note, actor)
            order.refunded_minor = max(order.refunded_minor, refunded_minor)
            uow.orders.save(order)
            uow.emit(*fulfilment_events(order, "returned", at, refunded_minor, note))
            uow.commit()
        order.history.clear()
        return order

    def record_refunded(self, order_id: str, refunded_minor: int) -> Order:
        """Part of the order was refunded through returns (the payment's ``payment.refunded``
        says so): the order shows what was refunded so far; monotone, so idempotent."""
        with self._uow() as uow:
            order = self._locked(uow, order_id)
            if refunded_minor <= order.refunded_minor:
                return order
            order.refunded_minor = refunded_minor
            uow.orders.save(order)
            uow.commit()
        order.history.clear()
        return order

    def hold(self, order_id: str, actor: str, cause: str) -> Order:
        """Put a placed order on hold for a fraud review (idempotent; its checkout does it
        once the payment is authorized). No event: the fraud alert says it."""
        with self._uow() as uow:
            order = self._locked(uow, order_id)
            if order.status == "on_hold":
                return order
            order.transition("on_hold", self._clock(), cause, actor)
            uow.orders.save(order)
            uow.commit()
        order.history.clear()
        return order

    def get(self, order_id: str, customer_id: str | None = None) -> Order:
        """An order; with ``customer_id``, only if it is that customer's (else not found)."""
        with self._uow() as uow:
            return self._find(uow, order_id, customer_id)

    def by_checkout(self, checkout_id: str) -> Order | None:
        """The order placed from a checkout, or None (lets a crashed saga find its order)."""
        with self._uow() as uow:
            return uow.orders.by_checkout(checkout_id)

    def transitions(self, order_id: str, customer_id: str | None = None) -> list[Transition]:
        """The order's recorded transitions, oldest first."""
        with self._uow() as uow:
            self._find(uow, order_id, customer_id)
            return uow.orders.transitions(order_id)

    def list_for(self, customer_id: str, page: int = 1, page_size: int = 20) -> OrderPage:
        """A customer's orders, newest first, with the total count."""
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidRequest(
                f"page must be >= 1 and page_size between 1 and {MAX_PAGE_SIZE}",
                code="invalid_page",
            )
        with self._uow() as uow:
            return uow.orders.page_for(customer_id, page, page_size)

    def _begin(
        self,
        order_id: str,
        to: OrderStatus,
        cause: str,
        actor: str,
        note: str | None,
        customer_id: str | None = None,
        *,
        by_customer: bool = False,
    ) -> Order:
        """Commit the intent to cancel or return, in a short transaction of its own."""
        with self._uow() as uow:
            order = self._locked(uow, order_id, customer_id)
            if by_customer and order.status in ("placed", "on_hold") and order.pending is None:
                raise CheckoutInProgress(
                    f"order {order_id} is still being paid for by its checkout (or reviewed); "
                    "cancel it once it is paid",
                    order_status=order.status,
                    checkout_id=order.checkout_id,
                )
            if order.begin(to, cause, actor, note, self._clock()):
                uow.orders.save(order)
                uow.commit()
        return order

    def _settle(self, order: Order) -> Order:
        """Compensate a begun cancel or return with no transaction open, then make the move."""
        pending = order.pending
        if pending is None:  # final already (this or an earlier caller settled it)
            order.history.clear()
            return order
        refunded = self._compensate(order, pending.to)
        with self._uow() as uow:
            order = self._locked(uow, order.order_id)
            # A concurrent caller may have settled it meanwhile: then there is nothing to do.
            if order.pending is not None and order.pending.to == pending.to:
                at = self._clock()
                order.refunded_minor = refunded
                settled = order.settle(at)
                uow.orders.save(order)
                uow.emit(*settled_events(order, settled, at, refunded))
                uow.commit()
        order.history.clear()
        return order

    def _compensate(self, order: Order, to: OrderStatus) -> int:
        """Take the money back, then give the stock back; each step is idempotent.

        Money first: if the refund fails, no unit has been put back on sale yet.
        Returns the amount refunded on the order's payment so far.
        """
        stock_reason = "order_cancelled" if to == "cancelled" else "return_restock"
        refund_reason: Literal["cancellation", "return"] = (
            "cancellation" if to == "cancelled" else "return"
        )
        refunded = 0
        if order.payment_id is not None:
            if order.paid_minor is None:
                refunded = self._void(order.payment_id, refund_reason)
            else:
                payment = self._payments.refund(order.payment_id, None, reason=refund_reason)
                refunded = payment.refunded_minor
        if order.status == "placed":
            self._inventory.release(order.checkout_id, stock_reason)
        self._inventory.restock(order.order_id, stock_reason)
        return refunded

    def _void(self, payment_id: str, reason: Literal["cancellation", "return"]) -> int:
        """Void an unpaid order's authorisation; refund it if it was captured meanwhile."""
        try:
            self._payments.void(payment_id)
            return 0
        except NotFound:  # named by the checkout but never authorised: nothing is held
            return 0
        except Conflict as error:
            if error.code != "payment_not_voidable":
                raise
        return self._payments.refund(payment_id, None, reason=reason).refunded_minor

    @staticmethod
    def _locked(uow: OrdersUnitOfWork, order_id: str, customer_id: str | None = None) -> Order:
        region_of(order_id)
        order = uow.orders.get(order_id, for_update=True)
        if order is None or (customer_id is not None and order.customer_id != customer_id):
            raise OrderNotFound(f"no order {order_id!r}")
        return order

    @staticmethod
    def _find(uow: OrdersUnitOfWork, order_id: str, customer_id: str | None) -> Order:
        region_of(order_id)
        order = uow.orders.get(order_id)
        if order is None or (customer_id is not None and order.customer_id != customer_id):
            raise OrderNotFound(f"no order {order_id!r}")
        return order
