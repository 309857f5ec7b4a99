"""What the checkout talks to, as ports: the other slices, the saga's unit of work, and the
hot path's pipelined one.

The hot path writes rows of several slices in one transaction (T1 places, T2 completes);
each repository of :class:`HotUnitOfWork` queues statements and returns :class:`Deferred`
results that are read after :meth:`HotUnitOfWork.sync`. Adapters: ``adapters.py`` (the other
slices' services), ``pipelined.py`` and ``repository.py`` (PostgreSQL); the unit tests' fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

from schemas.envelope import Envelope
from transactional.carts.model import Cart
from transactional.catalog.model import SkuOffer
from transactional.checkout.model import (
    Authorization,
    Card,
    CartClaim,
    Checkout,
    CheckoutRepository,
    FraudVerdict,
    IdempotencyKeys,
    IdempotencyRecord,
    PaymentLookup,
    StoredResponse,
)
from transactional.customers.model import Address
from transactional.inventory.model import Pick, Reservation, StockKey, StockLevel, StockMove
from transactional.ledger.model import LedgerTransaction
from transactional.orders.model import Order, OrderStatus
from transactional.payments.model import Payment
from transactional.shared.deferred import Deferred
from transactional.shared.unit_of_work import UnitOfWork

if TYPE_CHECKING:  # a type only: the domain imports no token library
    from transactional.shared.auth import Principal

T = TypeVar("T")


class Carts(Protocol):
    """The cart slice."""

    def contents(self, cart_id: str, principal: Principal) -> Cart:
        """The caller's cart as stored (unpriced); NotFound if unknown or someone else's."""

    def checked_out(self, cart_id: str, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        """Take the bought (SKU, units) out of the cart, nothing else (idempotent per order)."""


class Stock(Protocol):
    """The inventory slice."""

    def reserve_through(
        self,
        checkout_id: str,
        lines: Sequence[tuple[str, int]],
        ship_region: str,
        hold: Callable[[list[Pick], dict[StockKey, StockLevel]], T],
        *,
        levels: Sequence[StockLevel] | None = None,
    ) -> T:
        """Gate the lines in Redis, then let ``hold`` make the picks durable (it raises
        StockRefused to retry); InsufficientStock (409) when the stock is not there."""

    def reservations_for(
        self,
        checkout_id: str,
        picks: Sequence[Pick],
        levels: Mapping[StockKey, StockLevel],
        now: datetime,
    ) -> list[Reservation]:
        """The held reservations that make ``picks`` durable."""

    def give_back(self, units: Mapping[StockKey, int]) -> None:
        """Return released units to the real-time counters."""

    def commit(self, checkout_id: str, order_id: str) -> None:
        """Turn the checkout's reservations into sales (idempotent)."""

    def release(self, checkout_id: str, reason: str) -> None:
        """Give the checkout's reserved units back (idempotent; no-op once committed)."""

    def restock(self, order_id: str, reason: str) -> None:
        """Put the units sold to the order back on sale (idempotent; no-op if none were)."""


class Orders(Protocol):
    """The order slice."""

    def order_of_checkout(self, checkout_id: str) -> str | None:
        """The id of the checkout's order, if one was placed."""

    def is_payable(self, order_id: str) -> bool:
        """Whether the order still awaits its payment (placed or on hold, no cancel begun)."""

    def hold(self, order_id: str, cause: str) -> None:
        """Put the order on hold for a fraud review (idempotent)."""

    def mark_paid(self, order_id: str, payment_id: str, amount_minor: int, method: str) -> None:
        """Record the captured payment on the order (idempotent)."""

    def cancel(self, order_id: str, reason: str) -> None:
        """Cancel the order (idempotent; a no-op if already cancelled)."""


class Payments(Protocol):
    """The payment slice; raises PaymentDeclined (402) or PaymentOutcomeUnknown."""

    @property
    def gateway(self) -> str:
        """The name of the processor adapter payments go through."""

    def gateway_for(self, method: str) -> str:
        """The name of the adapter a payment of ``method`` (card, upi) goes through."""

    def tokenize(self, card: Card, customer_id: str) -> str:
        """Vault a raw card as the customer's; its token (the only place a card number goes)."""

    def owns(self, token: str, customer_id: str) -> bool:
        """Whether a vault token is this customer's (unknown or another's: False)."""

    def hold(self, payment: Payment) -> None:
        """Authorise ``payment`` at the processor, its answer applied in memory only."""

    def collect(self, payment: Payment) -> int:
        """Capture ``payment`` at the processor, applied in memory only; the amount."""

    def authorize(self, authorization: Authorization) -> None:
        """Hold the amount on the instrument, recorded by the payment slice."""

    def capture(self, payment_id: str) -> None:
        """Collect the authorized amount."""

    def void(self, payment_id: str) -> None:
        """Drop an authorization (idempotent; no-op if nothing is held or it is unknown)."""

    def refund(self, payment_id: str) -> None:
        """Give a captured payment back in full."""

    def lookup(self, payment_id: str, idempotency_key: str) -> PaymentLookup:
        """The processor's view of a payment (by our id, else by the call's idempotency key)."""


class FraudScreen(Protocol):
    """The fraud scorer, asked once per checkout after validation, before anything is held."""

    def screen(self, checkout: Checkout, account_region: str) -> FraudVerdict:
        """The verdict on the validated ``checkout`` of an account homed in
        ``account_region`` (its plan, card id and client context are set)."""


class CartClaims(Protocol):
    """Which checkout holds a cart (the saga's unit of work)."""

    def release(self, cart_id: str, checkout_id: str) -> None:
        """Free the cart if ``checkout_id`` holds it."""

    def settled(self, older_than: datetime, limit: int) -> list[tuple[str, str, str]]:
        """(cart, checkout, saga status) of old claims whose saga is no longer pending."""


class CheckoutUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the saga, idempotency-key and cart-claim repositories attached."""

    checkouts: CheckoutRepository
    idempotency: IdempotencyKeys
    claims: CartClaims


class HotCheckouts(Protocol):
    """Sagas."""

    def add(self, checkout: Checkout) -> None:
        """Insert a new saga."""

    def save(self, checkout: Checkout, owner: str) -> Deferred[int]:
        """Write the saga if ``owner`` holds its lease: 1, else 0."""

    def renew(self, checkout_id: str, owner: str, until: datetime) -> Deferred[int]:
        """Extend ``owner``'s lease of the pending saga to ``until``: 1, or 0 if lost."""


class HotKeys(Protocol):
    """Idempotency keys."""

    def get(self, customer_id: str, key: str) -> Deferred[IdempotencyRecord | None]:
        """A customer's key, or None."""

    def claim(self, record: IdempotencyRecord) -> Deferred[str | None]:
        """Insert the key (or take over an expired one): its checkout id, or None if a live
        key is there."""

    def finish(
        self, customer_id: str, key: str, checkout_id: str, response: StoredResponse
    ) -> None:
        """Store the final response of the key's request."""


class HotClaims(Protocol):
    """Which checkout holds a cart, and the last order that bought it."""

    def state(self, cart_id: str) -> Deferred[CartClaim | None]:
        """The cart's claim row, if it ever had one."""

    def claim(
        self, cart_id: str, checkout_id: str, seen_order: str | None, at: datetime
    ) -> Deferred[str | None]:
        """Hold the cart if it is free and its last order is still ``seen_order`` (as the
        caller read the cart): the checkout's id if claimed, else None."""

    def release(self, cart_id: str, checkout_id: str, bought: str | None = None) -> None:
        """Free the cart if ``checkout_id`` holds it (``bought``: the order that bought its
        lines)."""


class HotCatalog(Protocol):
    """SKU offers."""

    def offers(self, skus: Collection[str]) -> Deferred[dict[str, SkuOffer]]:
        """The offer of each existing SKU among ``skus``."""


class HotAddresses(Protocol):
    """Saved addresses."""

    def address(self, customer_id: str, address_id: str) -> Deferred[Address | None]:
        """One of the customer's saved addresses, or None."""


class HotStock(Protocol):
    """Stock levels and reservations."""

    def levels(self, skus: Collection[str]) -> Deferred[list[StockLevel]]:
        """Stock rows of these SKUs in every warehouse."""

    def hold(self, sku: str, warehouse_id: str, quantity: int) -> Deferred[StockLevel | None]:
        """Reserve units if available: the row after, None if refused."""

    def held(self, checkout_id: str) -> Deferred[int]:
        """How many of the checkout's reservations are still held."""

    def add_reservations(self, reservations: Sequence[Reservation]) -> None:
        """Insert new held reservations of one checkout."""

    def commit_checkout(
        self, checkout_id: str, order_id: str, now: datetime
    ) -> Deferred[list[StockMove]]:
        """Sell the checkout's held units to the order."""

    def release_checkout(
        self, checkout_id: str, reason: str, now: datetime
    ) -> Deferred[list[StockMove]]:
        """Give the checkout's held units back."""


class HotOrders(Protocol):
    """Orders."""

    def add(self, order: Order) -> Deferred[int]:
        """Insert the order: 1, or 0 if its checkout has an order already."""

    def save_if(self, order: Order, expected: OrderStatus) -> Deferred[int]:
        """Write back the order if it is still ``expected`` with nothing pending: 1, else 0."""

    def payable(self, order: Order) -> Deferred[bool]:
        """Whether the order still awaits its payment."""


class HotPayments(Protocol):
    """Payments."""

    def add(self, payment: Payment) -> Deferred[int]:
        """Insert a new payment: 1, or 0 if taken."""

    def save_if(self, payment: Payment, expected: Collection[str]) -> Deferred[int]:
        """Write back the payment if its stored status is one of ``expected``: 1, else 0."""

    def status(self, payment_id: str) -> Deferred[str | None]:
        """The payment's stored status."""


class HotLedger(Protocol):
    """The double-entry journal."""

    def append(self, tx: LedgerTransaction) -> Deferred[int]:
        """Queue a booking: 1, or 0 if its (kind, reference) is booked already."""


class HotUnitOfWork(Protocol):
    """One transaction over every slice the hot path touches, in few round trips."""

    @property
    def checkouts(self) -> HotCheckouts:
        """The checkouts of this unit of work."""

    @property
    def keys(self) -> HotKeys:
        """The keys of this unit of work."""

    @property
    def claims(self) -> HotClaims:
        """The claims of this unit of work."""

    @property
    def catalog(self) -> HotCatalog:
        """The catalog of this unit of work."""

    @property
    def addresses(self) -> HotAddresses:
        """The addresses of this unit of work."""

    @property
    def stock(self) -> HotStock:
        """The stock of this unit of work."""

    @property
    def orders(self) -> HotOrders:
        """The orders of this unit of work."""

    @property
    def payments(self) -> HotPayments:
        """The payments of this unit of work."""

    @property
    def ledger(self) -> HotLedger:
        """The ledger of this unit of work."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def begin(self) -> None:
        """Open the transaction (reads without it run each in its own snapshot)."""

    def sync(self) -> None:
        """Send what is queued; every Deferred so far can be read afterwards."""

    def emit(self, *envelopes: Envelope) -> None:
        """Queue events for the outbox."""

    def commit(self) -> None:
        """Write the events and commit."""

    def rollback(self) -> None:
        """Discard the transaction."""
