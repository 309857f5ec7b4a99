"""In-memory fakes of the checkout saga's ports; every call lands in one shared journal."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes import FakeUnitOfWork
from transactional.checkout.dto import render
from transactional.checkout.model import (
    Allocation,
    Authorization,
    Card,
    CartItem,
    CartSnapshot,
    Checkout,
    IdempotencyRecord,
    OrderRequest,
    PaymentLookup,
    PaymentOutcomeUnknown,
    PaymentState,
    PlacedOrder,
    ShippingAddress,
    StoredResponse,
    Totals,
)
from transactional.checkout.service import CheckoutService
from transactional.inventory.model import InsufficientStock
from transactional.shared.auth import Principal
from transactional.shared.errors import Conflict, NotFound, PaymentDeclined

SHOPPER = Principal("cus_1", "eu")
ADDRESS = ShippingAddress(
    full_name="Ada L", line1="1 Main St", city="Berlin", postal_code="10115", country="DE"
)
CARD = Card(number="4242424242424242", exp_month=12, exp_year=2040, cvc="123")
SHIPPING_MINOR = 499


class Crash(BaseException):
    """Stands in for the process dying at a failpoint (nothing below it runs)."""


class Clock:
    """A settable clock."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    """Every collaborator's state, and the journal of calls made to them (in order)."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail: dict[str, BaseException] = field(default_factory=dict)
    crash_after: set[str] = field(default_factory=set)
    carts: dict[str, CartSnapshot] = field(default_factory=dict)
    addresses: dict[tuple[str, str], ShippingAddress] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)
    held: dict[str, list[Allocation]] = field(default_factory=dict)
    committed: set[str] = field(default_factory=set)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, str] = field(default_factory=dict)  # payment_id -> state
    gateway: dict[str, PaymentLookup] = field(default_factory=dict)  # by idempotency key
    emptied: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # cart -> bought
    owners: dict[str, str] = field(default_factory=dict)  # vault token -> customer
    restocked: set[str] = field(default_factory=set)  # orders whose sold units went back
    hooks: dict[str, Callable[[], None]] = field(default_factory=dict)  # run before a call
    broken: dict[str, BaseException] = field(default_factory=dict)  # fails every time

    def call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        hook = self.hooks.pop(name, None)
        if hook is not None:
            hook()
        error = self.fail.pop(name, None) or self.broken.get(name)
        if error is not None:
            raise error

    def after(self, name: str) -> None:
        """Die right after ``name`` took effect, if asked to."""
        if name in self.crash_after:
            self.crash_after.discard(name)
            raise Crash(name)

    def names(self) -> list[str]:
        """The names of the calls, in order."""
        return [call[0] for call in self.calls]

    def add_cart(
        self,
        cart_id: str = "crt_1",
        customer_id: str | None = SHOPPER.customer_id,
        lines: Sequence[tuple[str, int, int | None]] = (("sku_a", 2, 1000), ("sku_b", 1, 250)),
        currency: str = "EUR",
    ) -> str:
        items = tuple(
            CartItem(
                sku=sku,
                product_id=f"prd_{sku}",
                seller_id="sel_1",
                title=sku.upper(),
                quantity=quantity,
                unit_price_minor=price,
                available=self.stock.get(sku, 0),
            )
            for sku, quantity, price in lines
        )
        self.carts[cart_id] = CartSnapshot(
            cart_id=cart_id,
            customer_id=customer_id,
            currency=currency,
            lines=items,
            subtotal_minor=sum(i.quantity * (i.unit_price_minor or 0) for i in items),
        )
        for sku, _, _ in lines:
            self.stock.setdefault(sku, 10)
        return cart_id


class FakeCarts:
    def __init__(self, world: World) -> None:
        self.w = world

    def snapshot(self, cart_id: str, principal: Principal) -> CartSnapshot:
        self.w.call("snapshot", cart_id)
        cart = self.w.carts.get(cart_id)
        if cart is None or cart.customer_id not in (None, principal.customer_id):
            raise NotFound(f"no cart {cart_id}", code="cart_not_found")
        lines = tuple(replace(i, available=self.w.stock.get(i.sku, 0)) for i in cart.lines)
        return replace(cart, lines=lines)

    def checked_out(self, cart_id: str, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        self.w.call("checked_out", cart_id, order_id)
        self.w.emptied[cart_id] = list(lines)


class FakeAddresses:
    def __init__(self, world: World) -> None:
        self.w = world

    def address(self, customer_id: str, address_id: str) -> ShippingAddress | None:
        self.w.call("address", address_id)
        return self.w.addresses.get((customer_id, address_id))


class FakeStock:
    def __init__(self, world: World) -> None:
        self.w = world

    def reserve(
        self, checkout_id: str, lines: Sequence[tuple[str, int]], ship_region: str
    ) -> list[Allocation]:
        self.w.call("reserve", checkout_id, ship_region)
        if checkout_id in self.w.held:
            return self.w.held[checkout_id]
        short = [sku for sku, qty in lines if self.w.stock.get(sku, 0) < qty]
        if short:
            raise InsufficientStock(short)
        allocations = []
        for index, (sku, qty) in enumerate(lines):
            self.w.stock[sku] -= qty
            allocations.append(Allocation(f"res_{checkout_id}_{index}", sku, "wh_eu_1", qty))
        self.w.held[checkout_id] = allocations
        self.w.after("reserve")
        return allocations

    def commit(self, checkout_id: str, order_id: str) -> None:
        self.w.call("commit", checkout_id, order_id)
        self.w.committed.add(checkout_id)

    def release(self, checkout_id: str, reason: str) -> None:
        self.w.call("release", checkout_id, reason)
        if checkout_id in self.w.committed:
            return
        for allocation in self.w.held.pop(checkout_id, []):
            self.w.stock[allocation.sku] += allocation.quantity

    def restock(self, order_id: str, reason: str) -> None:
        self.w.call("restock", order_id, reason)
        checkout_id = self.w.orders[order_id]["checkout_id"]
        if checkout_id in self.w.committed and order_id not in self.w.restocked:
            self.w.restocked.add(order_id)
            for allocation in self.w.held.get(checkout_id, []):
                self.w.stock[allocation.sku] += allocation.quantity


class FakeOrders:
    def __init__(self, world: World) -> None:
        self.w = world

    def place(self, request: OrderRequest) -> PlacedOrder:
        self.w.call("place", request.checkout_id)
        order_id = f"ord_{request.checkout_id}"
        subtotal = request.plan.subtotal_minor
        totals = Totals(
            currency=request.plan.currency,
            subtotal_minor=subtotal,
            discount_minor=0,
            shipping_minor=SHIPPING_MINOR,
            tax_minor=0,
            grand_total_minor=subtotal + SHIPPING_MINOR,
        )
        self.w.orders.setdefault(
            order_id,
            {
                "status": "placed",
                "checkout_id": request.checkout_id,
                "payment_id": request.payment_id,
            },
        )
        self.w.after("place")
        return PlacedOrder(order_id, totals)

    def order_of_checkout(self, checkout_id: str) -> str | None:
        self.w.call("order_of_checkout", checkout_id)
        return next(
            (oid for oid, o in self.w.orders.items() if o["checkout_id"] == checkout_id), None
        )

    def is_payable(self, order_id: str) -> bool:
        self.w.call("is_payable", order_id)
        return bool(self.w.orders[order_id]["status"] == "placed")

    def mark_paid(self, order_id: str, payment_id: str, amount_minor: int, method: str) -> None:
        self.w.call("mark_paid", order_id, payment_id, amount_minor)
        if self.w.orders[order_id]["status"] == "cancelled":
            raise Conflict(f"order {order_id} is cancelled", code="illegal_transition")
        self.w.orders[order_id]["status"] = "paid"

    def cancel(self, order_id: str, reason: str) -> None:
        self.w.call("cancel", order_id, reason)
        self.w.orders[order_id]["status"] = "cancelled"


DECLINED_CARD = "4000000000000002"
TIMEOUT_CARD = "4000000000000259"
_TOKENS = {DECLINED_CARD: "tok_declined", TIMEOUT_CARD: "tok_timeout"}


class FakePayments:
    """Authorize declines and times out like the sandbox's test cards."""

    def __init__(self, world: World) -> None:
        self.w = world

    def tokenize(self, card: Card, customer_id: str) -> str:
        self.w.call("tokenize", card.holder)
        token = _TOKENS.get(card.number, "tok_ok")
        self.w.owners[token] = customer_id
        return token

    def owns(self, token: str, customer_id: str) -> bool:
        self.w.call("owns", token)
        return self.w.owners.get(token) == customer_id

    def authorize(self, authorization: Authorization) -> None:
        self.w.call("authorize", authorization.payment_id, authorization.idempotency_key)
        key = authorization.idempotency_key
        if authorization.instrument_token == "tok_declined":
            self.w.gateway[key] = PaymentLookup(PaymentState.DECLINED, "card_declined")
            self.w.payments[authorization.payment_id] = "declined"
            self.w.after("authorize")
            raise PaymentDeclined("declined", code="card_declined", decline_code="card_declined")
        first = key not in self.w.gateway
        self.w.gateway.setdefault(key, PaymentLookup(PaymentState.AUTHORIZED))
        if first and authorization.instrument_token == "tok_timeout":
            raise PaymentOutcomeUnknown("timeout")  # held, but the answer never arrived
        self.w.payments.setdefault(authorization.payment_id, "authorized")
        self.w.after("authorize")

    def capture(self, payment_id: str) -> None:
        self.w.call("capture", payment_id)
        self.w.payments[payment_id] = "captured"

    def void(self, payment_id: str) -> None:
        self.w.call("void", payment_id)
        state = self.w.payments.get(payment_id)
        if state == "captured":
            raise Conflict("refund it instead", code="payment_not_voidable")
        if state in ("authorized", "pending"):
            self.w.payments[payment_id] = "voided"

    def refund(self, payment_id: str) -> None:
        self.w.call("refund", payment_id)
        self.w.payments[payment_id] = "refunded"

    def lookup(self, payment_id: str, idempotency_key: str) -> PaymentLookup:
        self.w.call("lookup", payment_id)
        state = self.w.payments.get(payment_id)
        if state is not None:
            return PaymentLookup(PaymentState(state))
        return self.w.gateway.get(idempotency_key, PaymentLookup(PaymentState.NONE))


class FakeCheckoutRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Checkout] = {}

    def add(self, checkout: Checkout) -> None:
        self.rows[checkout.checkout_id] = copy.deepcopy(checkout)

    def get(self, checkout_id: str) -> Checkout | None:
        row = self.rows.get(checkout_id)
        return copy.deepcopy(row)

    def save(self, checkout: Checkout, owner: str) -> bool:
        row = self.rows[checkout.checkout_id]
        if row.lease_owner != owner or row.status != "pending":
            return False
        saved = copy.deepcopy(checkout)
        saved.lease_owner = owner
        saved.attempts = row.attempts  # counted by claims only
        self.rows[checkout.checkout_id] = saved
        return True

    def renew(self, checkout_id: str, owner: str, lease_until: datetime) -> bool:
        row = self.rows[checkout_id]
        if row.lease_owner != owner or row.status != "pending":
            return False
        row.lease_until = lease_until
        return True

    def claim_stale(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[str]:
        stale = sorted(
            (
                row
                for row in self.rows.values()
                if row.status == "pending" and row.lease_until is not None and row.lease_until < now
            ),
            key=lambda row: row.lease_until or now,
        )[:limit]
        for row in stale:
            row.lease_owner, row.lease_until = owner, lease_until
            row.attempts += 1
        return [row.checkout_id for row in stale]

    def hand_over(self, checkout_id: str, owner: str, at: datetime) -> None:
        row = self.rows[checkout_id]
        if row.lease_owner == owner and row.status == "pending":
            row.lease_until = at


class FakeIdempotencyKeys:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], IdempotencyRecord] = {}

    def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        existing = self.rows.get((record.customer_id, record.key))
        if existing is not None and existing.expires_at > record.created_at:
            return existing
        self.rows[(record.customer_id, record.key)] = record
        return None

    def get(self, customer_id: str, key: str) -> IdempotencyRecord | None:
        return self.rows.get((customer_id, key))

    def finish(
        self, customer_id: str, key: str, checkout_id: str, response: StoredResponse
    ) -> None:
        record = self.rows[(customer_id, key)]
        if record.checkout_id == checkout_id:
            self.rows[(customer_id, key)] = replace(record, response=response)

    def purge_expired(self, now: datetime) -> int:
        gone = [k for k, r in self.rows.items() if r.expires_at <= now and r.response is not None]
        for k in gone:
            del self.rows[k]
        return len(gone)


class FakeCheckoutUnitOfWork(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.checkouts = FakeCheckoutRepository()
        self.idempotency = FakeIdempotencyKeys()


@dataclass
class Harness:
    """A service over fakes, with its world, store and clock."""

    service: CheckoutService
    world: World
    uow: FakeCheckoutUnitOfWork
    clock: Clock

    def steal_lease(self, checkout_id: str) -> None:
        """Another driver takes the saga over (as recovery does once a lease lapsed)."""
        self.uow.checkouts.rows[checkout_id].lease_owner = "lease-someone-else"

    def saga(self, checkout_id: str) -> Checkout:
        checkout = self.uow.checkouts.get(checkout_id)
        assert checkout is not None
        return checkout

    def only_saga(self) -> Checkout:
        (checkout,) = self.uow.checkouts.rows.values()
        return copy.deepcopy(checkout)


LEASE_S = 30.0


def harness(world: World | None = None, clock: Clock | None = None) -> Harness:
    world = world or World()
    clock = clock or Clock()
    uow = FakeCheckoutUnitOfWork()
    render_: Callable[..., StoredResponse] = render
    service = CheckoutService(
        lambda: uow,
        carts=FakeCarts(world),
        addresses=FakeAddresses(world),
        stock=FakeStock(world),
        orders=FakeOrders(world),
        payments=FakePayments(world),
        render=render_,
        card_key=b"test-card-key",
        lease_s=LEASE_S,
        idempotency_ttl_s=24 * 3600,
        clock=clock,
    )
    return Harness(service, world, uow, clock)
