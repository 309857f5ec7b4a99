"""In-memory fakes of the checkout's ports, over one shared :class:`World`.

The world holds the database tables (sagas, keys, cart claims, stock rows, reservations,
orders, payments), the Redis stock counters, the cart store, the card processor and the
outbox, and a journal of every call made to them, in order.

Transactions behave like PostgreSQL's where the checkout relies on it: the pipelined unit
of work queues statements and answers them at ``sync()`` (a result read before that is a
bug and fails the test); writes of either unit of work stay inside their transaction, seen
by its own later statements, until ``commit()`` applies them at once; a rollback (or leaving
the ``with`` block) discards them, and emitted events reach the outbox only on commit.

The other slices (carts, inventory, orders, payments) are played by small models of their
services, which commit their own changes at once, like the real ones.

A crash is simulated by raising :class:`Crash` (a BaseException, so no ``except Exception``
catches it) from a call, before or after it took effect.
"""

from __future__ import annotations

import copy
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypeVar

from schemas.envelope import Envelope
from transactional.carts.model import Cart, CartNotFound, Line
from transactional.catalog.model import SkuOffer
from transactional.checkout.dto import render
from transactional.checkout.model import (
    Authorization,
    Card,
    CartClaim,
    Checkout,
    CheckoutRepository,
    CheckoutRequest,
    IdempotencyKeys,
    IdempotencyRecord,
    PaymentLookup,
    PaymentMethod,
    PaymentOutcomeUnknown,
    PaymentState,
    ShippingAddress,
    StoredResponse,
)
from transactional.checkout.ports import CartClaims
from transactional.checkout.service import CheckoutReply, CheckoutService
from transactional.customers.model import Address
from transactional.inventory.model import (
    Candidate,
    InsufficientStock,
    Pick,
    Reservation,
    ReservationReleased,
    ReservationStatus,
    StockKey,
    StockLevel,
    StockMove,
    StockRefused,
    allocate,
    normalise_lines,
)
from transactional.ledger.model import LedgerTransaction
from transactional.orders.model import Order, OrderStatus
from transactional.payments.model import (
    GatewayAuthorization,
    GatewayRefused,
    IllegalPaymentTransition,
    Payment,
    PaymentNotFound,
    PaymentVoidedMeanwhile,
)
from transactional.shared.auth import Principal
from transactional.shared.deferred import Deferred
from transactional.shared.errors import NotFound

T = TypeVar("T")

SHOPPER = Principal("cus_1", "eu")
OTHER = Principal("cus_2", "eu")
ADDRESS = ShippingAddress(
    full_name="Ada L", line1="1 Main St", city="Berlin", postal_code="10115", country="DE"
)
CARD = Card(number="4242424242424242", exp_month=12, exp_year=2040, cvc="123")
DECLINED_CARD = "4000000000000002"  # the processor declines it (card_declined)
TIMEOUT_CARD = "4000000000000259"  # authorized, but the first answer is lost
WAREHOUSE = "wh_eu_1"
LEASE_S = 30.0
KEY_TTL_S = 24 * 3600.0
RESERVATION_TTL_S = 900.0
REGIONS = ("eu", "us", "in")
_GATE_ATTEMPTS = 4  # as InventoryService.reserve_through
_CAPTURED = ("captured", "partially_refunded", "refunded")


class Crash(BaseException):
    """Stands in for the process dying (nothing below the raise runs)."""


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Claim:
    """A row of checkout_cart_claims: held while ``checkout_id`` is set."""

    cart_id: str
    checkout_id: str | None
    claimed_at: datetime
    last_order_id: str | None = None


@dataclass
class Charge:
    """The processor's record of one authorization (found by its idempotency key)."""

    reference: str
    token: str
    status: str  # authorized, declined, captured, voided, refunded
    amount_minor: int
    currency: str
    decline_code: str | None = None

    def answer(self, now: datetime) -> GatewayAuthorization:
        """What the processor answered the authorization."""
        return GatewayAuthorization(
            reference=self.reference,
            status="declined" if self.status == "declined" else "authorized",
            amount_minor=self.amount_minor,
            currency=self.currency,
            card_brand="visa",
            last4="4242",
            decline_code=self.decline_code,
            expires_at=now + timedelta(days=7),
        )


@dataclass
class _Trap:
    countdown: int
    action: Callable[[], object]


TABLES = ("checkouts", "keys", "claims", "levels", "reservations", "orders", "payments", "ledger")
_GONE = object()


class World:
    """Every collaborator's state, and the journal of calls made to them (in order)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.calls: list[tuple[Any, ...]] = []
        self.tables: dict[str, dict[Any, Any]] = {name: {} for name in TABLES}
        self.outbox: list[Envelope] = []
        self.carts: dict[str, Cart] = {}
        self.offers: dict[str, SkuOffer] = {}
        self.addresses: dict[tuple[str, str], Address] = {}
        self.redis: dict[StockKey, int] = {}
        self.processor: dict[str, Charge] = {}  # by the authorization's idempotency key
        self.owners: dict[str, str] = {}  # vault token -> customer
        self.broken: dict[str, BaseException] = {}  # fails on every call
        self._before: dict[str, list[_Trap]] = defaultdict(list)
        self._after: dict[str, list[_Trap]] = defaultdict(list)

    # -- the journal and its traps -------------------------------------------------------

    def on_call(self, name: str, action: Callable[[], object], *, nth: int = 1) -> None:
        """Run ``action`` right before the ``nth`` next call of ``name`` (once)."""
        self._before[name].append(_Trap(nth, action))

    def on_done(self, name: str, action: Callable[[], object], *, nth: int = 1) -> None:
        """Run ``action`` right after the ``nth`` next call of ``name`` took effect (once)."""
        self._after[name].append(_Trap(nth, action))

    def fail(self, name: str, error: BaseException, *, nth: int = 1) -> None:
        """The ``nth`` next call of ``name`` raises ``error`` before it does anything."""
        self.on_call(name, _raiser(error), nth=nth)

    def fail_after(self, name: str, error: BaseException, *, nth: int = 1) -> None:
        """The ``nth`` next call of ``name`` takes effect, then raises ``error`` (a lost
        answer, or a crash right after)."""
        self.on_done(name, _raiser(error), nth=nth)

    def call(self, name: str, *args: Any) -> None:
        """Journal a call; run the traps set on it."""
        self.calls.append((name, *args))
        _spring(self._before, name)
        error = self.broken.get(name)
        if error is not None:
            raise error

    def done(self, name: str) -> None:
        """The call took effect."""
        _spring(self._after, name)

    def names(self, *, hide: Collection[str] = ()) -> list[str]:
        """The names of the calls, in order (``hide``: leave these out)."""
        return [call[0] for call in self.calls if call[0] not in hide]

    def since(self, mark: int, *, hide: Collection[str] = ("saga.commit",)) -> list[str]:
        """The names of the calls made after the first ``mark`` ones."""
        return [call[0] for call in self.calls[mark:] if call[0] not in hide]

    def after_first(self, name: str, *, hide: Collection[str] = ("saga.commit",)) -> list[str]:
        """The names of the calls made after the first call of ``name``."""
        names = self.names()
        return [n for n in names[names.index(name) + 1 :] if n not in hide]

    def commits(self) -> list[tuple[Any, ...]]:
        """Every commit, in order: ("hot.commit", event types) or ("saga.commit", writes)."""
        return [call for call in self.calls if call[0] in ("hot.commit", "saga.commit")]

    def event_types(self) -> list[str]:
        """The types of the events in the outbox, in commit order."""
        return [envelope.event_type for envelope in self.outbox]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        """The payloads of the committed events of one type."""
        return [e.payload for e in self.outbox if e.event_type == event_type]

    # -- transactions ----------------------------------------------------------------------

    def apply(self, tx: Tx, events: Sequence[Envelope]) -> None:
        """Commit a transaction: its writes at once, then its events to the outbox."""
        for (table, key), value in tx.writes.items():
            if value is _GONE:
                self.tables[table].pop(key, None)
            else:
                self.tables[table][key] = value
        self.outbox.extend(events)

    # -- reading the tables (tests) ----------------------------------------------------------

    def saga(self, checkout_id: str) -> Checkout:
        checkout: Checkout = copy.deepcopy(self.tables["checkouts"][checkout_id])
        return checkout

    def sagas(self) -> list[Checkout]:
        return [copy.deepcopy(c) for c in self.tables["checkouts"].values()]

    def only_saga(self) -> Checkout:
        (checkout,) = self.sagas()
        return checkout

    def key(self, customer_id: str, key: str) -> IdempotencyRecord | None:
        record: IdempotencyRecord | None = self.tables["keys"].get((customer_id, key))
        return record

    def claim(self, cart_id: str) -> str | None:
        claim: Claim | None = self.tables["claims"].get(cart_id)
        return None if claim is None else claim.checkout_id

    def order(self, order_id: str) -> Order:
        order: Order = copy.deepcopy(self.tables["orders"][order_id])
        return order

    def orders(self) -> list[Order]:
        return [copy.deepcopy(o) for o in self.tables["orders"].values()]

    def payment(self, payment_id: str) -> Payment:
        payment: Payment = copy.deepcopy(self.tables["payments"][payment_id])
        return payment

    def payments(self) -> list[Payment]:
        return [copy.deepcopy(p) for p in self.tables["payments"].values()]

    def reservations(self, checkout_id: str | None = None) -> list[Reservation]:
        return [
            copy.deepcopy(r)
            for r in self.tables["reservations"].values()
            if checkout_id is None or r.checkout_id == checkout_id
        ]

    def available(self) -> dict[StockKey, tuple[int, int]]:
        """(PostgreSQL available, Redis counter) of every stock row."""
        return {
            key: (level.available, self.redis.get(key, 0))
            for key, level in sorted(self.tables["levels"].items())
        }

    def on_hand(self) -> dict[StockKey, int]:
        return {key: level.on_hand for key, level in sorted(self.tables["levels"].items())}

    # -- setting the world up -----------------------------------------------------------------

    def stock(
        self, sku: str, on_hand: int = 10, warehouse_id: str = WAREHOUSE, region: str = "eu"
    ) -> None:
        """A stock row, with its Redis counter in step."""
        self.tables["levels"][(sku, warehouse_id)] = StockLevel(
            sku, warehouse_id, region, on_hand, 0
        )
        self.redis[(sku, warehouse_id)] = on_hand

    def offer(self, sku: str, price_minor: int | None, currency: str = "EUR") -> None:
        self.offers[sku] = SkuOffer(
            sku=sku,
            product_id=f"prd_{sku}",
            seller_id="sel_1",
            title=sku.upper(),
            status="active",
            prices={} if price_minor is None else {currency: price_minor},
        )

    def add_cart(
        self,
        cart_id: str = "crt_1",
        customer_id: str | None = SHOPPER.customer_id,
        lines: Sequence[tuple[str, int, int | None]] = (("sku_a", 2, 1000), ("sku_b", 1, 250)),
        currency: str = "EUR",
    ) -> str:
        """A cart of (SKU, units, price) lines; each SKU offered and stocked (10 units) unless
        it already is. Filling a cart again keeps its marker of the last order that bought it,
        as the cart store does."""
        cart = Cart(cart_id=cart_id, currency=currency, created_at=self.clock())
        cart.customer_id = customer_id
        earlier = self.carts.get(cart_id)
        cart.last_order_id = None if earlier is None else earlier.last_order_id
        for index, (sku, quantity, price) in enumerate(lines):
            if sku not in self.offers:
                self.offer(sku, price, currency)
            if not any(key[0] == sku for key in self.tables["levels"]):
                self.stock(sku)
            cart.lines[sku] = Line(
                sku=sku,
                product_id=f"prd_{sku}",
                seller_id="sel_1",
                quantity=quantity,
                unit_price_minor=price or 0,
                added_at=self.clock() + timedelta(seconds=index),
            )
        self.carts[cart_id] = cart
        return cart_id

    # -- what other actors do (support, the reservation sweeper) -------------------------------

    def cancel_order(
        self, order_id: str, actor: str, reason: str, *, compensate: bool = True
    ) -> None:
        """OrderService.cancel: the intent committed, then the payment voided (or refunded)
        and the stock given back, then the order cancelled. ``compensate`` False leaves the
        cancel under way (begun, not settled)."""
        order = self.order(order_id)
        if order.status == "cancelled":
            return
        now = self.clock()
        if order.pending is None:
            order.begin("cancelled", reason, actor, None, now)
            self._save_order(order)
        if not compensate:
            return
        if order.payment_id is not None:
            if order.paid_minor is None:
                try:
                    self.void_payment(order.payment_id)
                except IllegalPaymentTransition as error:
                    if error.code != "payment_not_voidable":
                        raise
                    self.refund_payment(order.payment_id)
            else:
                self.refund_payment(order.payment_id)
        if order.status == "placed":
            self.release_stock(order.checkout_id, "order_cancelled")
        self.restock(order_id)
        order.settle(self.clock())
        self._save_order(order)

    def take(self, sku: str, units: int, warehouse_id: str = WAREHOUSE) -> None:
        """Another checkout holds units, in Redis and PostgreSQL alike."""
        self.tables["levels"][(sku, warehouse_id)].reserved += units
        self.redis[(sku, warehouse_id)] -= units

    def support_cancels(self, *, compensate: bool = True) -> str:
        """Support cancels the only order (``compensate`` False: the cancel is under way,
        its refund and restock not done yet); its id."""
        (order,) = self.orders()
        self.cancel_order(
            order.order_id, "support:agent_7", "fraud_suspected", compensate=compensate
        )
        return order.order_id

    def sweep(self, checkout_id: str) -> None:
        """The reservation sweeper releases the checkout's held (expired) units."""
        self.release_stock(checkout_id, "expired")

    # -- the inventory service's own transactions ---------------------------------------------

    def release_stock(self, checkout_id: str, reason: str) -> int:
        """Held → released, the units back in PostgreSQL and Redis; how many were."""
        released = 0
        for reservation in self.reservations(checkout_id):
            if reservation.release(reason, self.clock()):
                level = self.tables["levels"][reservation.key]
                level.reserved -= reservation.quantity
                self.redis[reservation.key] = (
                    self.redis.get(reservation.key, 0) + reservation.quantity
                )
                self.tables["reservations"][reservation.reservation_id] = reservation
                released += 1
        return released

    def commit_stock(self, checkout_id: str, order_id: str) -> None:
        """Held → sold to the order (InventoryService.commit)."""
        reservations = self.reservations(checkout_id)
        if not reservations:
            raise NotFound(
                f"no stock is reserved for checkout {checkout_id}", code="reservation_not_found"
            )
        live = [r for r in reservations if r.status is not ReservationStatus.RELEASED]
        if not live:
            raise ReservationReleased(
                f"the stock held for checkout {checkout_id} was released "
                f"({reservations[-1].release_reason}); reserve again",
                reason=reservations[-1].release_reason,
            )
        for reservation in live:
            if reservation.commit(order_id, self.clock()):
                level = self.tables["levels"][reservation.key]
                level.on_hand -= reservation.quantity
                level.reserved -= reservation.quantity
                self.tables["reservations"][reservation.reservation_id] = reservation

    def restock(self, order_id: str) -> int:
        """Units sold to the order back on the shelf, once; how many."""
        units = 0
        for reservation in self.reservations():
            if reservation.order_id == order_id and reservation.restock(self.clock()):
                self.tables["levels"][reservation.key].on_hand += reservation.quantity
                self.redis[reservation.key] = (
                    self.redis.get(reservation.key, 0) + reservation.quantity
                )
                self.tables["reservations"][reservation.reservation_id] = reservation
                units += reservation.quantity
        return units

    def _save_order(self, order: Order) -> None:
        order.history.clear()
        self.tables["orders"][order.order_id] = copy.deepcopy(order)

    # -- the processor, and the payment service's own transactions ----------------------------

    def authorize_at_processor(
        self, token: str, amount_minor: int, currency: str, key: str
    ) -> tuple[Charge, bool]:
        """The processor's authorization, idempotent per key; (charge, first time)."""
        charge = self.processor.get(key)
        if charge is not None:
            return charge, False
        declined = token.startswith("tok_declined") or token not in self.owners
        charge = Charge(
            reference=f"ch_{len(self.processor) + 1}",
            token=token,
            status="declined" if declined else "authorized",
            amount_minor=amount_minor,
            currency=currency,
            decline_code="card_declined" if declined else None,
        )
        self.processor[key] = charge
        return charge, True

    def _save_payment(self, payment: Payment) -> None:
        self.tables["payments"][payment.payment_id] = copy.deepcopy(payment)

    def resolve_payment(self, payment_id: str, *, captures: bool = True) -> Payment | None:
        """PaymentService._resolved: the stored payment, with what the processor did
        recorded (an answer that was lost, a capture whose answer was lost, a late hold of
        a payment given up on, released)."""
        stored = self.tables["payments"].get(payment_id)
        if stored is None:
            return None
        payment: Payment = copy.deepcopy(stored)
        charge = self.processor.get(payment.idempotency_key)
        now = self.clock()
        if charge is not None:
            if payment.status == "pending":
                payment.record_authorization(charge.answer(now), now)
            if captures and payment.status == "authorized" and charge.status in _CAPTURED:
                payment.record_capture(charge.amount_minor, now)
            if (
                payment.status in ("voided", "declined")
                and charge.status == "authorized"
                and payment.gateway_reference != charge.reference
            ):
                charge.status = "voided"  # a late hold of a payment given up on: released
                payment.gateway_reference = charge.reference
        self._save_payment(payment)
        return payment

    def void_payment(self, payment_id: str) -> None:
        """PaymentService.void (a payment never authorized is voided as it is)."""
        payment = self.resolve_payment(payment_id)
        if payment is None or payment.status in ("voided", "declined"):
            return
        if payment.status in _CAPTURED:
            raise _not_voidable(payment)
        if payment.status == "authorized":
            charge = self.processor[payment.idempotency_key]
            if charge.status in _CAPTURED:  # captured meanwhile, its answer lost
                payment.record_capture(charge.amount_minor, self.clock())
                self._save_payment(payment)
                raise _not_voidable(payment)
            charge.status = "voided"
        payment.record_void(self.clock())
        self._save_payment(payment)

    def refund_payment(self, payment_id: str) -> None:
        """PaymentService.refund of what is left."""
        stored = self.tables["payments"].get(payment_id)
        if stored is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        payment: Payment = copy.deepcopy(stored)
        if payment.status not in _CAPTURED:
            raise IllegalPaymentTransition(
                f"cannot refund payment {payment_id}: it is {payment.status}",
                code="payment_not_refundable",
                payment_status=payment.status,
            )
        if payment.refundable_minor == 0:
            return
        self.processor[payment.idempotency_key].status = "refunded"
        payment.record_refund(payment.refundable_minor, self.clock())
        self._save_payment(payment)


def _raiser(error: BaseException) -> Callable[[], None]:
    def action() -> None:
        raise error

    return action


def _spring(traps: dict[str, list[_Trap]], name: str) -> None:
    due: list[_Trap] = []
    for trap in list(traps.get(name, ())):
        trap.countdown -= 1
        if trap.countdown == 0:
            traps[name].remove(trap)
            due.append(trap)
    for trap in due:
        trap.action()


def _not_voidable(payment: Payment) -> IllegalPaymentTransition:
    return IllegalPaymentTransition(
        f"payment {payment.payment_id} is {payment.status}: refund it instead of voiding",
        code="payment_not_voidable",
        payment_status=payment.status,
    )


# -- transactions ----------------------------------------------------------------------------------


class Tx:
    """One transaction's view of the tables: its reads see its own writes, which reach the
    tables only when the world applies them (commit)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.writes: dict[tuple[str, Any], Any] = {}
        self.ops: list[str] = []

    def get(self, table: str, key: Any) -> Any:
        if (table, key) in self.writes:
            value = self.writes[(table, key)]
            return None if value is _GONE else copy.deepcopy(value)
        return copy.deepcopy(self.world.tables[table].get(key))

    def rows(self, table: str) -> list[Any]:
        merged = dict(self.world.tables[table])
        for (name, key), value in self.writes.items():
            if name != table:
                continue
            if value is _GONE:
                merged.pop(key, None)
            else:
                merged[key] = value
        return [copy.deepcopy(row) for row in merged.values()]

    def put(self, op: str, table: str, key: Any, value: Any) -> None:
        self.ops.append(op)
        self.writes[(table, key)] = copy.deepcopy(value)

    def delete(self, op: str, table: str, key: Any) -> None:
        self.ops.append(op)
        self.writes[(table, key)] = _GONE


class _Statement:
    """A queued statement of the pipelined unit of work; answered at sync()."""

    def __init__(self, name: str, run: Callable[[Tx], Any], *, autocommit: bool = False) -> None:
        self.name = name
        self.run = run
        self.autocommit = autocommit  # a write outside a transaction: its own commit
        self.answered = False
        self.value: Any = None


def _answer(statement: _Statement) -> Any:
    assert statement.answered, f"{statement.name}: result read before sync()"
    return statement.value


class FakeHotUnitOfWork:
    """The pipelined unit of work of the hot path (see the module docstring)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._open = False
        self._tx: Tx | None = None
        self._queue: list[_Statement] = []
        self._events: list[Envelope] = []
        self.checkouts = _HotCheckouts(self)
        self.keys = _HotKeys(self)
        self.claims = _HotClaims(self)
        self.catalog = _HotCatalog(self)
        self.addresses = _HotAddresses(self)
        self.stock = _HotStock(self)
        self.orders = _HotOrders(self)
        self.payments = _HotPayments(self)
        self.ledger = _HotLedger(self)

    def __enter__(self) -> Self:
        self._open = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()
        self._open = False

    def queue(self, name: str, run: Callable[[Tx], T], *, write: bool = False) -> Deferred[T]:
        assert self._open, f"{name}: the unit of work is not open"
        # A write outside begin() is a statement of its own, committed alone (autocommit).
        statement = _Statement(name, run, autocommit=write and self._tx is None)
        self._queue.append(statement)
        return Deferred(statement, _answer)

    def begin(self) -> None:
        if self._tx is None:
            self._tx = Tx(self.world)

    def sync(self) -> None:
        statements, self._queue = self._queue, []
        self.world.call("hot.sync", tuple(s.name for s in statements))
        self._run(statements)
        self.world.done("hot.sync")

    def _run(self, statements: Sequence[_Statement]) -> None:
        for statement in statements:
            # Outside a transaction each statement sees the committed state, and a write
            # commits on its own.
            tx = self._tx or Tx(self.world)
            statement.value = statement.run(tx)
            statement.answered = True
            if statement.autocommit:
                self.world.apply(tx, [])

    def emit(self, *envelopes: Envelope) -> None:
        self._events.extend(envelopes)

    def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("nothing to commit: call begin() first")
        statements, self._queue = self._queue, []
        self._run(statements)
        self.world.call("hot.commit", tuple(e.event_type for e in self._events))
        self.world.apply(self._tx, self._events)
        self._tx, self._events = None, []
        self.world.done("hot.commit")

    def rollback(self) -> None:
        if self._tx is not None:
            self.world.calls.append(("hot.rollback",))
        self._tx, self._events, self._queue = None, [], []


class _HotRepository:
    def __init__(self, uow: FakeHotUnitOfWork) -> None:
        self._uow = uow


class _HotCheckouts(_HotRepository):
    def add(self, checkout: Checkout) -> None:
        def run(tx: Tx) -> None:
            assert tx.get("checkouts", checkout.checkout_id) is None, "duplicate checkout"
            tx.put("checkouts.add", "checkouts", checkout.checkout_id, checkout)

        self._uow.queue("checkouts.add", run, write=True)

    def save(self, checkout: Checkout, owner: str) -> Deferred[int]:
        def run(tx: Tx) -> int:
            return _save_saga(tx, checkout, owner, "checkouts.save")

        return self._uow.queue("checkouts.save", run, write=True)

    def renew(self, checkout_id: str, owner: str, until: datetime) -> Deferred[int]:
        def run(tx: Tx) -> int:
            row: Checkout | None = tx.get("checkouts", checkout_id)
            if row is None or row.lease_owner != owner or row.status != "pending":
                return 0
            tx.put("checkouts.renew", "checkouts", checkout_id, replace(row, lease_until=until))
            return 1

        return self._uow.queue("checkouts.renew", run, write=True)


def _save_saga(tx: Tx, checkout: Checkout, owner: str, op: str) -> int:
    """The fenced UPDATE: only the lease holder writes a pending saga (lease owner and
    recovery attempts are not columns it writes)."""
    row: Checkout | None = tx.get("checkouts", checkout.checkout_id)
    if row is None or row.lease_owner != owner or row.status != "pending":
        return 0
    saved = replace(checkout, lease_owner=owner, attempts=row.attempts)
    tx.put(op, "checkouts", checkout.checkout_id, saved)
    return 1


class _HotKeys(_HotRepository):
    def get(self, customer_id: str, key: str) -> Deferred[IdempotencyRecord | None]:
        return self._uow.queue("keys.get", lambda tx: tx.get("keys", (customer_id, key)))

    def claim(self, record: IdempotencyRecord) -> Deferred[str | None]:
        def run(tx: Tx) -> str | None:
            return _claim_key(tx, record, "keys.claim")

        return self._uow.queue("keys.claim", run, write=True)

    def finish(
        self, customer_id: str, key: str, checkout_id: str, response: StoredResponse
    ) -> None:
        def run(tx: Tx) -> None:
            _finish_key(tx, customer_id, key, checkout_id, response, "keys.finish")

        self._uow.queue("keys.finish", run, write=True)


def _claim_key(tx: Tx, record: IdempotencyRecord, op: str) -> str | None:
    existing: IdempotencyRecord | None = tx.get("keys", (record.customer_id, record.key))
    if existing is not None and existing.expires_at > record.created_at:
        return None
    tx.put(op, "keys", (record.customer_id, record.key), record)
    return record.checkout_id


def _finish_key(
    tx: Tx, customer_id: str, key: str, checkout_id: str, response: StoredResponse, op: str
) -> None:
    record: IdempotencyRecord | None = tx.get("keys", (customer_id, key))
    if record is not None and record.checkout_id == checkout_id:
        # Stored as JSON, like the jsonb column.
        body = json.loads(json.dumps(response.body))
        finished = replace(record, response=replace(response, body=body))
        tx.put(op, "keys", (customer_id, key), finished)


class _HotClaims(_HotRepository):
    def state(self, cart_id: str) -> Deferred[CartClaim | None]:
        def run(tx: Tx) -> CartClaim | None:
            claim: Claim | None = tx.get("claims", cart_id)
            return None if claim is None else CartClaim(claim.checkout_id, claim.last_order_id)

        return self._uow.queue("claims.state", run)

    def claim(
        self, cart_id: str, checkout_id: str, seen_order: str | None, at: datetime
    ) -> Deferred[str | None]:
        def run(tx: Tx) -> str | None:
            # As the SQL: held by nobody, and no order bought it since the caller read it.
            row: Claim | None = tx.get("claims", cart_id)
            if row is not None and (row.checkout_id is not None or row.last_order_id != seen_order):
                return None
            last = seen_order if row is None else row.last_order_id
            tx.put("claims.claim", "claims", cart_id, Claim(cart_id, checkout_id, at, last))
            return checkout_id

        return self._uow.queue("claims.claim", run, write=True)

    def release(self, cart_id: str, checkout_id: str, bought: str | None = None) -> None:
        def run(tx: Tx) -> None:
            _release_claim(tx, cart_id, checkout_id, "claims.release", bought)

        self._uow.queue("claims.release", run, write=True)


def _release_claim(
    tx: Tx, cart_id: str, checkout_id: str, op: str, bought: str | None = None
) -> None:
    claim: Claim | None = tx.get("claims", cart_id)
    if claim is not None and claim.checkout_id == checkout_id:
        last = bought if bought is not None else claim.last_order_id
        tx.put(op, "claims", cart_id, replace(claim, checkout_id=None, last_order_id=last))


class _HotCatalog(_HotRepository):
    def offers(self, skus: Collection[str]) -> Deferred[dict[str, SkuOffer]]:
        offers = self._uow.world.offers

        def run(_tx: Tx) -> dict[str, SkuOffer]:
            return {sku: offers[sku] for sku in sorted(skus) if sku in offers}

        return self._uow.queue("catalog.offers", run)


class _HotAddresses(_HotRepository):
    def address(self, customer_id: str, address_id: str) -> Deferred[Address | None]:
        addresses = self._uow.world.addresses
        return self._uow.queue(
            "addresses.address", lambda _tx: addresses.get((customer_id, address_id))
        )


class _HotStock(_HotRepository):
    def levels(self, skus: Collection[str]) -> Deferred[list[StockLevel]]:
        def run(tx: Tx) -> list[StockLevel]:
            rows: list[StockLevel] = tx.rows("levels")
            return sorted((r for r in rows if r.sku in skus), key=lambda r: r.key)

        return self._uow.queue("stock.levels", run)

    def hold(self, sku: str, warehouse_id: str, quantity: int) -> Deferred[StockLevel | None]:
        def run(tx: Tx) -> StockLevel | None:
            level: StockLevel | None = tx.get("levels", (sku, warehouse_id))
            if level is None or level.available < quantity:
                return None  # the conditional update matched no row
            level.reserved += quantity
            tx.put("stock.hold", "levels", level.key, level)
            return level

        return self._uow.queue("stock.hold", run, write=True)

    def held(self, checkout_id: str) -> Deferred[int]:
        def run(tx: Tx) -> int:
            return len(_held(tx, checkout_id))

        return self._uow.queue("stock.held", run)

    def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        def run(tx: Tx) -> None:
            for r in reservations:
                tx.put("stock.add_reservations", "reservations", r.reservation_id, r)

        self._uow.queue("stock.add_reservations", run, write=True)

    def commit_checkout(
        self, checkout_id: str, order_id: str, now: datetime
    ) -> Deferred[list[StockMove]]:
        def run(tx: Tx) -> list[StockMove]:
            moves = []
            for r in _held(tx, checkout_id):
                r.commit(order_id, now)
                tx.put("stock.commit_checkout", "reservations", r.reservation_id, r)
                level: StockLevel = tx.get("levels", r.key)
                level.on_hand -= r.quantity
                level.reserved -= r.quantity
                tx.put("stock.commit_checkout", "levels", r.key, level)
                moves.append(_move(r, level.on_hand))
            return moves

        return self._uow.queue("stock.commit_checkout", run, write=True)

    def release_checkout(
        self, checkout_id: str, reason: str, now: datetime
    ) -> Deferred[list[StockMove]]:
        def run(tx: Tx) -> list[StockMove]:
            moves = []
            for r in _held(tx, checkout_id):
                r.release(reason, now)
                tx.put("stock.release_checkout", "reservations", r.reservation_id, r)
                level: StockLevel = tx.get("levels", r.key)
                level.reserved -= r.quantity
                tx.put("stock.release_checkout", "levels", r.key, level)
                moves.append(_move(r, level.available))
            return moves

        return self._uow.queue("stock.release_checkout", run, write=True)


def _held(tx: Tx, checkout_id: str) -> list[Reservation]:
    rows: list[Reservation] = tx.rows("reservations")
    return sorted(
        (r for r in rows if r.checkout_id == checkout_id and r.status is ReservationStatus.HELD),
        key=lambda r: r.key,
    )


def _move(reservation: Reservation, after: int) -> StockMove:
    return StockMove(
        reservation.reservation_id,
        reservation.sku,
        reservation.warehouse_id,
        reservation.region,
        reservation.quantity,
        after,
    )


class _HotOrders(_HotRepository):
    def add(self, order: Order) -> Deferred[int]:
        def run(tx: Tx) -> int:
            rows: list[Order] = tx.rows("orders")
            if any(o.checkout_id == order.checkout_id for o in rows):
                return 0
            tx.put("orders.add", "orders", order.order_id, replace(order, history=[]))
            return 1

        return self._uow.queue("orders.add", run, write=True)

    def save_if(self, order: Order, expected: OrderStatus) -> Deferred[int]:
        def run(tx: Tx) -> int:
            stored: Order | None = tx.get("orders", order.order_id)
            if stored is None or stored.status != expected or stored.pending is not None:
                return 0
            tx.put("orders.save_if", "orders", order.order_id, replace(order, history=[]))
            return 1

        return self._uow.queue("orders.save_if", run, write=True)

    def payable(self, order: Order) -> Deferred[bool]:
        def run(tx: Tx) -> bool:
            stored: Order | None = tx.get("orders", order.order_id)
            return stored is not None and stored.status == "placed" and stored.pending is None

        return self._uow.queue("orders.payable", run)


class _HotPayments(_HotRepository):
    def add(self, payment: Payment) -> Deferred[int]:
        def run(tx: Tx) -> int:
            if tx.get("payments", payment.payment_id) is not None:
                return 0
            tx.put("payments.add", "payments", payment.payment_id, payment)
            return 1

        return self._uow.queue("payments.add", run, write=True)

    def save_if(self, payment: Payment, expected: Collection[str]) -> Deferred[int]:
        def run(tx: Tx) -> int:
            stored: Payment | None = tx.get("payments", payment.payment_id)
            if stored is None or stored.status not in expected:
                return 0
            tx.put("payments.save_if", "payments", payment.payment_id, payment)
            return 1

        return self._uow.queue("payments.save_if", run, write=True)

    def status(self, payment_id: str) -> Deferred[str | None]:
        def run(tx: Tx) -> str | None:
            stored: Payment | None = tx.get("payments", payment_id)
            return None if stored is None else stored.status

        return self._uow.queue("payments.status", run)


class _HotLedger(_HotRepository):
    """Bookings in the world's ``ledger`` table, keyed by (kind, reference)."""

    def append(self, booking: LedgerTransaction) -> Deferred[int]:
        def run(tx: Tx) -> int:
            key = (booking.kind, booking.reference)
            if tx.get("ledger", key) is not None:
                return 0
            tx.put("ledger.append", "ledger", key, booking)
            return 1

        return self._uow.queue("ledger.append", run, write=True)


# -- the saga's unit of work -----------------------------------------------------------------------


class FakeCheckoutUnitOfWork:
    """The saga's unit of work over the same tables; writes apply on commit."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.tx = Tx(world)
        self._events: list[Envelope] = []
        self.checkouts: CheckoutRepository = _SagaCheckouts(self)
        self.idempotency: IdempotencyKeys = _SagaKeys(self)
        self.claims: CartClaims = _SagaClaims(self)

    def __enter__(self) -> Self:
        self.tx, self._events = Tx(self.world), []
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    def emit(self, *envelopes: Envelope) -> None:
        self._events.extend(envelopes)

    def commit(self) -> None:
        if self.tx.writes or self._events:  # an empty commit is not worth a journal line
            self.world.call("saga.commit", tuple(dict.fromkeys(self.tx.ops)))
            self.world.apply(self.tx, self._events)
            self.world.done("saga.commit")
        self.tx, self._events = Tx(self.world), []

    def rollback(self) -> None:
        self.tx, self._events = Tx(self.world), []


class _SagaCheckouts:
    def __init__(self, uow: FakeCheckoutUnitOfWork) -> None:
        self._uow = uow

    def add(self, checkout: Checkout) -> None:
        self._uow.tx.put("checkouts.add", "checkouts", checkout.checkout_id, checkout)

    def get(self, checkout_id: str) -> Checkout | None:
        checkout: Checkout | None = self._uow.tx.get("checkouts", checkout_id)
        return checkout

    def save(self, checkout: Checkout, owner: str) -> bool:
        return bool(_save_saga(self._uow.tx, checkout, owner, "checkouts.save"))

    def renew(self, checkout_id: str, owner: str, lease_until: datetime) -> bool:
        row: Checkout | None = self._uow.tx.get("checkouts", checkout_id)
        if row is None or row.lease_owner != owner or row.status != "pending":
            return False
        row.lease_until = lease_until
        self._uow.tx.put("checkouts.renew", "checkouts", checkout_id, row)
        return True

    def claim_stale(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[str]:
        rows: list[Checkout] = self._uow.tx.rows("checkouts")
        stale = sorted(
            (
                row
                for row in rows
                if row.status == "pending" and row.lease_until is not None and row.lease_until < now
            ),
            key=lambda row: row.lease_until or now,
        )[:limit]
        for row in stale:
            row.lease_owner, row.lease_until = owner, lease_until
            row.attempts += 1
            self._uow.tx.put("checkouts.claim_stale", "checkouts", row.checkout_id, row)
        return [row.checkout_id for row in stale]

    def hand_over(self, checkout_id: str, owner: str, at: datetime) -> None:
        row: Checkout | None = self._uow.tx.get("checkouts", checkout_id)
        if row is not None and row.lease_owner == owner and row.status == "pending":
            row.lease_until = at
            self._uow.tx.put("checkouts.hand_over", "checkouts", checkout_id, row)


class _SagaKeys:
    def __init__(self, uow: FakeCheckoutUnitOfWork) -> None:
        self._uow = uow

    def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        if _claim_key(self._uow.tx, record, "idempotency.claim") is not None:
            return None
        existing: IdempotencyRecord = self._uow.tx.get("keys", (record.customer_id, record.key))
        return existing

    def get(self, customer_id: str, key: str) -> IdempotencyRecord | None:
        record: IdempotencyRecord | None = self._uow.tx.get("keys", (customer_id, key))
        return record

    def finish(
        self, customer_id: str, key: str, checkout_id: str, response: StoredResponse
    ) -> None:
        _finish_key(self._uow.tx, customer_id, key, checkout_id, response, "idempotency.finish")

    def purge_expired(self, now: datetime) -> int:
        rows: list[IdempotencyRecord] = self._uow.tx.rows("keys")
        gone = [r for r in rows if r.expires_at <= now and r.response is not None]
        for r in gone:
            self._uow.tx.delete("idempotency.purge_expired", "keys", (r.customer_id, r.key))
        return len(gone)


class _SagaClaims:
    def __init__(self, uow: FakeCheckoutUnitOfWork) -> None:
        self._uow = uow

    def release(self, cart_id: str, checkout_id: str) -> None:
        _release_claim(self._uow.tx, cart_id, checkout_id, "claims.release")

    def settled(self, older_than: datetime, limit: int) -> list[tuple[str, str, str]]:
        claims: list[Claim] = sorted(self._uow.tx.rows("claims"), key=lambda c: c.claimed_at)
        left: list[tuple[str, str, str]] = []
        for claim in claims:
            if claim.checkout_id is None:  # free
                continue
            saga: Checkout | None = self._uow.tx.get("checkouts", claim.checkout_id)
            status = "failed" if saga is None else saga.status
            if claim.claimed_at < older_than and status != "pending":
                left.append((claim.cart_id, claim.checkout_id, status))
        return left[:limit]


# -- the other slices ------------------------------------------------------------------------------


class FakeCarts:
    """CartService.contents / checked_out over the world's carts."""

    def __init__(self, world: World) -> None:
        self.w = world

    def contents(self, cart_id: str, principal: Principal) -> Cart:
        self.w.call("carts.contents", cart_id)
        cart = self.w.carts.get(cart_id)
        if cart is None or not cart.visible_to(principal.customer_id):
            raise CartNotFound(f"no cart {cart_id}")
        return copy.deepcopy(cart)

    def checked_out(self, cart_id: str, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        self.w.call("carts.checked_out", cart_id, order_id, tuple(lines))
        cart = self.w.carts.get(cart_id)
        if cart is None or cart.last_order_id == order_id:
            return
        bought: dict[str, int] = {}
        for sku, units in lines:
            bought[sku] = bought.get(sku, 0) + units
        cart.check_out(bought)
        cart.last_order_id = order_id
        self.w.done("carts.checked_out")


class FakeStock:
    """InventoryService's part in the checkout: the Redis gate in front of PostgreSQL's
    conditional update, and the slow path's commit / release / restock."""

    def __init__(self, world: World) -> None:
        self.w = world
        self._ids = 0

    def reserve_through(
        self,
        checkout_id: str,
        lines: Sequence[tuple[str, int]],
        ship_region: str,
        hold: Callable[[list[Pick], dict[StockKey, StockLevel]], T],
        *,
        levels: Sequence[StockLevel] | None = None,
    ) -> T:
        wanted = normalise_lines(lines)
        short: Sequence[str] = sorted(wanted)
        for _ in range(_GATE_ATTEMPTS):
            if levels is None:  # a retry reads PostgreSQL again
                levels = [
                    copy.deepcopy(level)
                    for level in self.w.tables["levels"].values()
                    if level.sku in wanted
                ]
            current = {level.key: level for level in levels if level.region in REGIONS}
            levels = None
            candidates: dict[str, list[Candidate]] = defaultdict(list)
            for key, level in current.items():
                units = min(self.w.redis.get(key, 0), level.available)
                candidates[level.sku].append(Candidate(level.warehouse_id, level.region, units))
            picks = allocate(wanted, candidates, ship_region)  # InsufficientStock if short
            taken = tuple((p.sku, p.warehouse_id, p.quantity) for p in picks)
            self.w.call("redis.gate", checkout_id, taken)
            if any(self.w.redis.get(p.key, 0) < p.quantity for p in picks):
                short = sorted({p.sku for p in picks if self.w.redis.get(p.key, 0) < p.quantity})
                continue  # a concurrent gate took them first
            for pick in picks:
                self.w.redis[pick.key] -= pick.quantity
            self.w.done("redis.gate")
            held = False
            try:
                result = hold(picks, current)
                held = True
            except StockRefused as refused:
                short = sorted({sku for sku, _ in refused.keys})
                continue
            finally:
                if not held:
                    self.give_back({p.key: p.quantity for p in picks})
            return result
        raise InsufficientStock(short)

    def reservations_for(
        self,
        checkout_id: str,
        picks: Sequence[Pick],
        levels: Mapping[StockKey, StockLevel],
        now: datetime,
    ) -> list[Reservation]:
        reservations = []
        for pick in picks:
            self._ids += 1
            reservations.append(
                Reservation(
                    reservation_id=f"rsv_{self._ids}",
                    checkout_id=checkout_id,
                    sku=pick.sku,
                    warehouse_id=pick.warehouse_id,
                    region=levels[pick.key].region,
                    quantity=pick.quantity,
                    expires_at=now + timedelta(seconds=RESERVATION_TTL_S),
                    created_at=now,
                    updated_at=now,
                )
            )
        return reservations

    def give_back(self, units: Mapping[StockKey, int]) -> None:
        self.w.call("redis.give_back", dict(units))
        for key, quantity in units.items():
            self.w.redis[key] = self.w.redis.get(key, 0) + quantity

    def commit(self, checkout_id: str, order_id: str) -> None:
        self.w.call("stock.commit", checkout_id, order_id)
        self.w.commit_stock(checkout_id, order_id)
        self.w.done("stock.commit")

    def release(self, checkout_id: str, reason: str) -> None:
        self.w.call("stock.release", checkout_id, reason)
        self.w.release_stock(checkout_id, reason)
        self.w.done("stock.release")

    def restock(self, order_id: str, reason: str) -> None:
        self.w.call("stock.restock", order_id, reason)
        self.w.restock(order_id)
        self.w.done("stock.restock")


class FakeOrders:
    """OrderService's part in the checkout's slow path."""

    def __init__(self, world: World) -> None:
        self.w = world

    def order_of_checkout(self, checkout_id: str) -> str | None:
        self.w.call("orders.order_of_checkout", checkout_id)
        return next((o.order_id for o in self.w.orders() if o.checkout_id == checkout_id), None)

    def is_payable(self, order_id: str) -> bool:
        self.w.call("orders.is_payable", order_id)
        order = self.w.tables["orders"].get(order_id)
        return order is not None and order.status == "placed" and order.pending is None

    def mark_paid(self, order_id: str, payment_id: str, amount_minor: int, method: str) -> None:
        self.w.call("orders.mark_paid", order_id, payment_id, amount_minor)
        order = self.w.order(order_id)
        if order.mark_paid(payment_id, amount_minor, self.w.clock(), "system:payments"):
            self.w._save_order(order)
        self.w.done("orders.mark_paid")

    def cancel(self, order_id: str, reason: str) -> None:
        self.w.call("orders.cancel", order_id, reason)
        self.w.cancel_order(order_id, "system:checkout", reason)
        self.w.done("orders.cancel")


class FakePayments:
    """PaymentService's part in the checkout, over the world's processor.

    Tokens name how the processor treats the card: ``tok_declined_*`` is declined,
    ``tok_timeout_*`` is authorized but the first answer is lost; a token nobody owns is
    declined too.
    """

    def __init__(self, world: World) -> None:
        self.w = world

    @property
    def gateway(self) -> str:
        return "fake"

    def tokenize(self, card: Card, customer_id: str) -> str:
        self.w.call("payments.tokenize", card.holder)
        kind = {DECLINED_CARD: "declined", TIMEOUT_CARD: "timeout"}.get(card.number, "ok")
        token = f"tok_{kind}_{card.number[-4:]}_{customer_id}"
        self.w.owners[token] = customer_id
        self.w.done("payments.tokenize")
        return token

    def owns(self, token: str, customer_id: str) -> bool:
        self.w.call("payments.owns", token)
        return self.w.owners.get(token) == customer_id

    def hold(self, payment: Payment) -> None:
        """Authorize at the processor; the answer is applied to ``payment`` in memory."""
        self.w.call("payments.hold", payment.payment_id)
        charge, first = self.w.authorize_at_processor(
            payment.instrument_token,
            payment.amount_minor,
            payment.currency,
            payment.idempotency_key,
        )
        if first and payment.instrument_token.startswith("tok_timeout"):
            raise PaymentOutcomeUnknown("timeout")  # held, but the answer never arrived
        payment.record_authorization(charge.answer(self.w.clock()), self.w.clock())
        self.w.done("payments.hold")

    def collect(self, payment: Payment) -> int:
        """Capture at the processor; applied to ``payment`` in memory."""
        self.w.call("payments.collect", payment.payment_id)
        charge = self.w.processor[payment.idempotency_key]
        if charge.status == "authorized":
            charge.status = "captured"
        elif charge.status != "captured":
            raise GatewayRefused(f"charge {charge.reference} is {charge.status}")
        payment.record_capture(charge.amount_minor, self.w.clock())
        self.w.done("payments.collect")
        return charge.amount_minor

    def authorize(self, authorization: Authorization) -> None:
        """PaymentService.authorize: the authorization recorded (asked again if the
        processor never saw it; its answer otherwise)."""
        self.w.call("payments.authorize", authorization.payment_id)
        payment = self.w.resolve_payment(authorization.payment_id)
        assert payment is not None, "the hot path wrote the payment in T1"
        if payment.status == "pending":
            charge, first = self.w.authorize_at_processor(
                authorization.instrument_token,
                authorization.amount_minor,
                authorization.currency,
                authorization.idempotency_key,
            )
            if first and authorization.instrument_token.startswith("tok_timeout"):
                raise PaymentOutcomeUnknown("timeout")
            payment.record_authorization(charge.answer(self.w.clock()), self.w.clock())
            self.w._save_payment(payment)
        if payment.status == "declined":
            raise payment.declined()
        if payment.status == "voided":
            raise PaymentVoidedMeanwhile(
                f"payment {payment.payment_id} was voided while it was being authorised",
                payment_id=payment.payment_id,
                payment_status=payment.status,
            )
        self.w.done("payments.authorize")

    def capture(self, payment_id: str) -> None:
        self.w.call("payments.capture", payment_id)
        payment = self.w.resolve_payment(payment_id, captures=False)
        if payment is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        if payment.status in _CAPTURED:
            return
        if payment.status != "authorized":
            raise IllegalPaymentTransition(
                f"cannot capture payment {payment_id}: it is {payment.status}",
                code="payment_not_capturable",
                payment_status=payment.status,
            )
        charge = self.w.processor[payment.idempotency_key]
        if charge.status == "authorized":
            charge.status = "captured"
        elif charge.status != "captured":
            raise GatewayRefused(f"charge {charge.reference} is {charge.status}")
        payment.record_capture(charge.amount_minor, self.w.clock())
        self.w._save_payment(payment)
        self.w.done("payments.capture")

    def void(self, payment_id: str) -> None:
        self.w.call("payments.void", payment_id)
        self.w.void_payment(payment_id)
        self.w.done("payments.void")

    def refund(self, payment_id: str) -> None:
        self.w.call("payments.refund", payment_id)
        self.w.refund_payment(payment_id)
        self.w.done("payments.refund")

    def lookup(self, payment_id: str, idempotency_key: str) -> PaymentLookup:
        self.w.call("payments.lookup", payment_id)
        payment = self.w.resolve_payment(payment_id)
        if payment is None:
            return PaymentLookup(PaymentState.NONE)
        state = {
            "authorized": PaymentState.AUTHORIZED,
            "captured": PaymentState.CAPTURED,
            "partially_refunded": PaymentState.CAPTURED,
            "refunded": PaymentState.REFUNDED,
            "declined": PaymentState.DECLINED,
            "voided": PaymentState.VOIDED,
            "pending": PaymentState.PENDING,
        }[payment.status]
        return PaymentLookup(state, payment.decline_code)


# -- the service over the fakes --------------------------------------------------------------------


def request(cart_id: str = "crt_1", number: str = CARD.number, **changes: Any) -> CheckoutRequest:
    """A checkout of the cart to ADDRESS with a raw card (``changes`` replace fields)."""
    card = replace(CARD, number=number)
    base = CheckoutRequest(cart_id=cart_id, payment=PaymentMethod(card=card), address=ADDRESS)
    return replace(base, **changes)


@dataclass
class Harness:
    """The checkout service over fakes of one world."""

    service: CheckoutService
    world: World
    clock: Clock

    def checkout(
        self,
        req: CheckoutRequest | None = None,
        key: str | None = "key-1",
        principal: Principal = SHOPPER,
    ) -> CheckoutReply:
        return self.service.checkout(principal, req or request(), key)

    def recover(self) -> int:
        return self.service.recover()

    def recover_after_lease(self) -> list[str]:
        """Recover once the lease ran out (nothing before); the calls recovery made."""
        mark = len(self.world.calls)
        assert self.service.recover() == 0, "recovered while the lease was still held"
        self.clock.advance(LEASE_S + 1)
        assert self.service.recover() == 1
        return self.world.since(mark)

    def steal_lease(self, checkout_id: str) -> None:
        """Another driver holds the saga now (as recovery does once the lease ran out)."""
        self.world.tables["checkouts"][checkout_id].lease_owner = "lease-someone-else"


def harness(world: World | None = None) -> Harness:
    world = world or World()
    service = CheckoutService(
        lambda: FakeCheckoutUnitOfWork(world),
        lambda: FakeHotUnitOfWork(world),
        carts=FakeCarts(world),
        stock=FakeStock(world),
        orders=FakeOrders(world),
        payments=FakePayments(world),
        render=render,
        card_key=b"test-card-key",
        lease_s=LEASE_S,
        idempotency_ttl_s=KEY_TTL_S,
        regions=REGIONS,
        clock=world.clock,
    )
    return Harness(service, world, world.clock)


def ready() -> Harness:
    """A harness with the shopper's cart crt_1: 2 x sku_a at 10.00, 1 x sku_b at 2.50."""
    h = harness()
    h.world.add_cart()
    return h
