"""The hot path's three commits, as the statements they queue and the events they emit.

:class:`~transactional.checkout.service.CheckoutService` queues a transaction, syncs once,
checks the conditional writes' results (rolling back if any did not hold) and then commits
with the events; the benchmark's DB-floor replay queues the very same statements. Pure
composition of the slices' repositories and event builders: no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.envelope import Envelope
from transactional.checkout.events import completed_event, failed_event, started_event
from transactional.checkout.model import (
    Checkout,
    IdempotencyRecord,
    Step,
    StoredResponse,
)
from transactional.checkout.ports import HotUnitOfWork
from transactional.inventory.events import committed_event, released_event, reserved_event
from transactional.inventory.model import Pick, Reservation, StockKey, StockLevel, StockMove
from transactional.ledger.bookings import order_sale
from transactional.ledger.commission import current_rates
from transactional.ledger.payments import capture_of_payment
from transactional.orders.events import paid_event, placed_event, settled_events
from transactional.orders.model import Order, PendingChange
from transactional.payments.model import Payment
from transactional.shared.deferred import Deferred

# Why a declined checkout's units go back on sale.
DECLINE_RELEASE_REASON = "payment_failed"


@dataclass(frozen=True)
class Placing:
    """T1's results, once synced."""

    key: Deferred[str | None]  # None: a live request with the key won
    claim: Deferred[str | None]  # None: another checkout holds the cart
    holds: list[tuple[Pick, Deferred[StockLevel | None]]]  # None: PostgreSQL refused

    def refused(self) -> list[StockKey]:
        """The picks PostgreSQL's conditional update refused."""
        return [pick.key for pick, hold in self.holds if hold.get() is None]

    def after(self) -> dict[StockKey, StockLevel]:
        """Each held stock row as it is now."""
        rows = {pick.key: hold.get() for pick, hold in self.holds}
        return {key: level for key, level in rows.items() if level is not None}


def queue_place(
    uow: HotUnitOfWork,
    record: IdempotencyRecord,
    checkout: Checkout,
    seen_order: str | None,
    picks: Sequence[Pick],
    reservations: Sequence[Reservation],
    order: Order,
    payment: Payment,
    now: datetime,
) -> Placing:
    """T1: the key, the cart's claim (only if nobody bought it since ``seen_order``), the
    stock holds and reservations, the order, the pending payment and the saga at
    ``ordered``."""
    uow.begin()
    key = uow.keys.claim(record)
    claim = uow.claims.claim(checkout.cart_id, checkout.checkout_id, seen_order, now)
    # Rows locked in (sku, warehouse) order: concurrent carts never deadlock.
    ordered = sorted(picks, key=lambda pick: pick.key)
    holds = [(p, uow.stock.hold(p.sku, p.warehouse_id, p.quantity)) for p in ordered]
    uow.stock.add_reservations(reservations)
    uow.orders.add(order)
    uow.payments.add(payment)
    uow.checkouts.add(checkout)
    return Placing(key, claim, holds)


def place_events(
    checkout: Checkout,
    reservations: Sequence[Reservation],
    after: dict[StockKey, StockLevel],
    order: Order,
) -> list[Envelope]:
    """T1's events: checkout.started, one stock.reserved per hold, order.placed."""
    return [
        started_event(checkout),
        *(reserved_event(r, after[r.key].available) for r in reservations),
        placed_event(order),
    ]


@dataclass(frozen=True)
class Completing:
    """T2's results, once synced."""

    saga: Deferred[int]  # 0: the lease is someone else's
    paid: Deferred[int]  # 0: the payment moved meanwhile
    sold: Deferred[list[StockMove]]  # fewer than the allocations: a hold was lost
    placed: Deferred[int]  # 0: the order moved meanwhile (a cancel began)

    def holds(self, allocations: int) -> bool:
        """Whether every conditional write of T2 took effect (the lease is checked apart)."""
        return bool(self.paid.get() and self.placed.get() and len(self.sold.get()) == allocations)


def queue_complete(
    uow: HotUnitOfWork,
    checkout: Checkout,
    owner: str,
    order: Order,
    payment: Payment,
    response: StoredResponse,
    now: datetime,
) -> Completing:
    """T2: the saga completed (fenced by the lease), the payment captured, the stock sold,
    the order paid and the answer stored."""
    uow.begin()
    # The key row first: a retry's T1 locks it (its upsert) before it holds stock, so taking
    # it after the stock here deadlocked a retry racing this T2.
    uow.keys.finish(checkout.customer_id, checkout.idempotency_key, checkout.checkout_id, response)
    saga = uow.checkouts.save(checkout, owner)
    paid = uow.payments.save_if(payment, ("pending",))
    sold = uow.stock.commit_checkout(checkout.checkout_id, order.order_id, now)
    placed = uow.orders.save_if(order, "placed")
    return Completing(saga, paid, sold, placed)


def queue_capture_booking(
    uow: HotUnitOfWork, checkout: Checkout, order: Order, payment: Payment, captured: int
) -> None:
    """T2's ledger booking, queued to go with the commit: the capture split per seller
    (categories from the plan, for the commission)."""
    plan = checkout.plan
    categories = {} if plan is None else {line.product_id: line.category_id for line in plan.lines}
    sale = order_sale(order, categories)
    uow.ledger.append(capture_of_payment(payment, captured, sale, current_rates()))


def complete_events(
    checkout: Checkout,
    order: Order,
    payment: Payment,
    authorized: Envelope,
    captured: Envelope,
    moves: Sequence[StockMove],
) -> list[Envelope]:
    """T2's events: payment.authorized and .captured, stock.committed per reservation,
    order.paid, checkout.completed."""
    assert order.paid_minor is not None
    return [
        authorized,
        captured,
        *(committed_event(move, order.order_id) for move in moves),
        paid_event(order, payment.payment_id, order.paid_minor, payment.method),
        completed_event(checkout),
    ]


@dataclass(frozen=True)
class Declining:
    """The decline commit's results, once synced."""

    saga: Deferred[int]
    recorded: Deferred[int]
    released: Deferred[list[StockMove]]
    cancelled: Deferred[int]

    def holds(self) -> bool:
        """Whether the payment and the order were still as T1 left them."""
        return bool(self.recorded.get() and self.cancelled.get())


def queue_decline(
    uow: HotUnitOfWork,
    checkout: Checkout,
    owner: str,
    order: Order,
    payment: Payment,
    response: StoredResponse,
    now: datetime,
) -> Declining:
    """The saga failed, the payment declined, the stock released, the order cancelled, the
    402 stored and the cart freed."""
    uow.begin()
    # Key and cart claim before the stock, in T1's order (see queue_complete).
    uow.keys.finish(checkout.customer_id, checkout.idempotency_key, checkout.checkout_id, response)
    uow.claims.release(checkout.cart_id, checkout.checkout_id)
    saga = uow.checkouts.save(checkout, owner)
    recorded = uow.payments.save_if(payment, ("pending",))
    released = uow.stock.release_checkout(checkout.checkout_id, DECLINE_RELEASE_REASON, now)
    cancelled = uow.orders.save_if(order, "placed")
    return Declining(saga, recorded, released, cancelled)


def decline_events(
    checkout: Checkout,
    order: Order,
    settled: PendingChange,
    declined: Envelope,
    moves: Sequence[StockMove],
    compensated: Sequence[Step],
    now: datetime,
) -> list[Envelope]:
    """payment.failed, stock.released per reservation, order.cancelled, checkout.failed."""
    return [
        declined,
        *(released_event(move, DECLINE_RELEASE_REASON) for move in moves),
        *settled_events(order, settled, now, 0),
        failed_event(checkout, compensated),
    ]
