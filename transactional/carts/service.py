"""Cart use cases: open a cart, change its lines, price it, merge it at sign-in, empty it.

Carts live in Redis, events in the PostgreSQL outbox. Every write runs in a unit of work that
(1) takes a per-cart advisory lock in PostgreSQL, (2) applies the change to Redis atomically,
(3) writes the events to the outbox and commits; if the commit fails or anything raises before
it, the unit of work undoes the Redis change. See ``repository.SqlCartsUnitOfWork``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from schemas.carts import CartItemAdded, CartItemRemoved
from schemas.common import Channel, Money
from schemas.envelope import Envelope
from schemas.ids import new_id
from schemas.registry import REGISTRY
from transactional.carts.model import (
    Cart,
    CartCurrencyMismatch,
    CartNotFound,
    CartRepository,
    CartView,
    LineChange,
    Shelf,
    price_cart,
)
from transactional.shared.auth import Principal
from transactional.shared.errors import InvalidRequest
from transactional.shared.failpoints import failpoint
from transactional.shared.regions import REGION_CURRENCY, SUPPORTED_CURRENCIES
from transactional.shared.unit_of_work import UnitOfWork

RemovalReason = Literal["user", "checked_out", "merged"]


class CartsUnitOfWork(UnitOfWork, Protocol):
    """A PostgreSQL transaction (for the outbox) with the cart store attached."""

    @property
    def carts(self) -> CartRepository:
        """The cart store; its writes are undone unless the unit of work commits."""

    def lock(self, *keys: str) -> None:
        """Serialise writers of these keys until the transaction ends."""


@dataclass(frozen=True)
class Attribution:
    """Where an add came from, for conversion metrics (all optional)."""

    session_id: str | None = None
    recommendation_id: str | None = None
    search_id: str | None = None
    channel: Channel = "web"


def _cart_lock(cart_id: str) -> str:
    return f"cart|{cart_id}"


def _customer_lock(customer_id: str) -> str:
    return f"cart-customer|{customer_id}"


class CartService:
    """The Cart Service of the purchase path."""

    def __init__(
        self,
        uow: Callable[[], CartsUnitOfWork],
        carts: CartRepository,
        shelf: Shelf,
        *,
        region: str,
        customer_currency: Callable[[str], str | None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._carts = carts
        self._shelf = shelf
        self._region = region
        self._customer_currency = customer_currency
        self._clock = clock

    # -- queries -----------------------------------------------------------------------

    def view(self, cart_id: str, principal: Principal | None) -> CartView:
        """The cart priced now; CartNotFound if unknown, expired or someone else's."""
        return self._price(self._visible(self._carts.get(cart_id), cart_id, principal))

    def snapshot(self, cart_id: str, principal: Principal | None) -> CartView:
        """The cart as checkout sees it (same as :meth:`view`)."""
        return self.view(cart_id, principal)

    def contents(self, cart_id: str, principal: Principal | None) -> Cart:
        """The cart as stored (no prices read): CartNotFound if unknown, expired or
        someone else's. For callers that price it with offers they read themselves."""
        return self._visible(self._carts.get(cart_id), cart_id, principal)

    # -- commands ----------------------------------------------------------------------

    def create(
        self, principal: Principal | None, currency: str | None = None
    ) -> tuple[CartView, bool]:
        """Open a cart; a customer's existing active cart is returned instead (created=False).

        A currency asked for is checked before anything else, so guests and customers get the
        same 422 for an unsupported one; a customer whose active cart is in another currency
        gets CartCurrencyMismatch (409), never that cart in a currency they did not ask for.
        """
        customer_id = principal.customer_id if principal else None
        requested = None if currency is None else self._currency(currency)
        if customer_id is not None:
            existing = self._customer_cart(customer_id)
            if existing is not None:
                if requested is not None and existing.currency != requested:
                    raise CartCurrencyMismatch.of(existing.cart_id, existing.currency, requested)
                return self._price(existing), False
            currency = requested or self._customer_currency(customer_id)
        cart = Cart(
            cart_id=new_id("crt"),
            currency=self._currency(currency),
            created_at=self._clock(),
            customer_id=customer_id,
        )
        # No event: an empty cart means nothing to the business; its first item_added opens
        # it for analytics. The create is one atomic Redis script (get-or-create per customer).
        cart_id = self._carts.create(cart)
        if cart_id == cart.cart_id:
            return self._price(cart), True
        # A concurrent request opened the customer's cart first: the same currency rule holds.
        view = self.view(cart_id, principal)
        if requested is not None and view.currency != requested:
            raise CartCurrencyMismatch.of(view.cart_id, view.currency, requested)
        return view, False

    def add_item(
        self,
        cart_id: str,
        principal: Principal | None,
        sku: str,
        quantity: int,
        attribution: Attribution | None = None,
    ) -> CartView:
        """Add units of a SKU at its current price; emits ``cart.item_added``."""
        stored = self._visible(self._carts.get(cart_id), cart_id, principal)  # 404 first
        # One read for the SKU added and the cart's lines: the answer is priced from it too.
        looked = {sku, *stored.lines}
        shelf = self._shelf.look(looked)
        offer = shelf.offer(sku)
        with self._uow() as uow:
            uow.lock(_cart_lock(cart_id))
            cart = self._visible(uow.carts.get(cart_id), cart_id, principal)
            change = cart.add(offer, quantity, shelf.available(sku), self._clock())
            after = uow.carts.apply(cart, change)
            uow.emit(self._added(cart, change, after, attribution or Attribution()))
            self._commit(uow)
        if set(cart.lines) <= looked:
            return price_cart(cart, shelf.offers, shelf.availability)
        return self._price(cart)  # lines added meanwhile by another request

    def set_quantity(
        self, cart_id: str, principal: Principal | None, sku: str, quantity: int
    ) -> CartView:
        """Set a line's quantity (0 removes it); emits the matching added/removed event."""
        self._visible(self._carts.get(cart_id), cart_id, principal)
        shelf = self._shelf.look([sku]) if quantity > 0 else None
        offer = shelf.offers.get(sku) if shelf is not None else None
        available = shelf.available(sku) if shelf is not None else 0
        with self._uow() as uow:
            uow.lock(_cart_lock(cart_id))
            cart = self._visible(uow.carts.get(cart_id), cart_id, principal)
            change = cart.set_quantity(sku, quantity, offer, available)
            if change is not None:
                after = uow.carts.apply(cart, change)
                if change.delta > 0:
                    uow.emit(self._added(cart, change, after, Attribution()))
                else:
                    uow.emit(self._removed(cart, change, after, "user"))
                self._commit(uow)
        return self._price(cart)

    def remove_item(self, cart_id: str, principal: Principal | None, sku: str) -> CartView:
        """Remove a line; emits ``cart.item_removed``."""
        with self._uow() as uow:
            uow.lock(_cart_lock(cart_id))
            cart = self._visible(uow.carts.get(cart_id), cart_id, principal)
            change = cart.remove(sku)
            after = uow.carts.apply(cart, change)
            uow.emit(self._removed(cart, change, after, "user"))
            self._commit(uow)
        return self._price(cart)

    def merge(self, customer_id: str, guest_cart_id: str | None) -> str | None:
        """Fold a guest cart into the customer's cart at sign-in; returns the customer's cart id.

        Quantities add up (capped per line); lines without a price in the customer's cart
        currency are dropped. The guest cart is closed (marked merged in the same unit of work,
        deleted after the commit), so a retried sign-in finds nothing left to merge.
        Anything but a live guest cart (unknown, expired, someone's cart) is ignored.
        """
        guest = self._carts.get(guest_cart_id) if guest_cart_id else None
        if guest is None or not guest.is_guest or guest.merged_into is not None:
            existing = self._customer_cart(customer_id)
            return existing.cart_id if existing else None
        with self._uow() as uow:
            uow.lock(_customer_lock(customer_id))
            existing = self._customer_cart(customer_id)
            target_id = (
                existing.cart_id
                if existing
                else uow.carts.create(
                    Cart(
                        cart_id=new_id("crt"),
                        currency=self._currency(self._customer_currency(customer_id)),
                        created_at=self._clock(),
                        customer_id=customer_id,
                    )
                )
            )
            uow.lock(_cart_lock(guest.cart_id), _cart_lock(target_id))
            # Re-read both under the locks: the guest may have changed, or merged already.
            guest = uow.carts.get(guest.cart_id)
            target = uow.carts.get(target_id)
            if target is None:
                raise CartNotFound(f"the cart {target_id} expired during sign-in; sign in again")
            if guest is None or not guest.is_guest or guest.merged_into is not None:
                uow.commit()  # keeps a customer cart created above
                return target.cart_id
            now = self._clock()
            offers = self._shelf.look(guest.lines).offers
            changes, _dropped = target.absorb(guest, offers, now)
            for change in changes:
                after = uow.carts.apply(target, change)
                uow.emit(self._added(target, change, after, Attribution(session_id=guest.cart_id)))
            for line in guest.sorted_lines():
                uow.emit(self._removed(guest, guest.remove(line.sku), 0, "merged"))
            uow.carts.set_marker(guest, "merged_into", target.cart_id)
            self._commit(uow)
        self._carts.delete(guest.cart_id)  # best effort: the marker already closed it
        return target.cart_id

    def checked_out(
        self, cart_id: str, order_id: str, lines: Sequence[tuple[str, int]] | None = None
    ) -> None:
        """Take the units an order bought out of the cart; idempotent per order.

        ``lines`` are the (SKU, units) the checkout bought; whatever the shopper added while
        it ran stays in the cart. None empties the whole cart. Emits ``cart.item_removed``
        (reason ``checked_out``) per line changed, once: a repeat for the same order is a
        no-op even if the shopper has filled the cart again since.
        """
        with self._uow() as uow:
            uow.lock(_cart_lock(cart_id))
            cart = uow.carts.get(cart_id)
            if cart is None or cart.merged_into is not None or cart.last_order_id == order_id:
                return
            if lines is None:
                changes = cart.clear()
            else:
                bought: dict[str, int] = {}
                for sku, units in lines:
                    bought[sku] = bought.get(sku, 0) + units
                changes = cart.check_out(bought)
            for change in changes:
                after = uow.carts.apply(cart, change)
                uow.emit(self._removed(cart, change, after, "checked_out"))
            uow.carts.set_marker(cart, "last_order_id", order_id)
            self._commit(uow)

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _commit(uow: CartsUnitOfWork) -> None:
        # A crash here leaves the Redis change without its events (the accepted window).
        failpoint("carts.before_commit")
        uow.commit()

    def _visible(self, cart: Cart | None, cart_id: str, principal: Principal | None) -> Cart:
        customer_id = principal.customer_id if principal else None
        if cart is None or not cart.visible_to(customer_id):
            # One answer for unknown, expired and foreign carts: existence is not revealed.
            raise CartNotFound(f"no cart {cart_id}", cart_id=cart_id)
        return cart

    def _customer_cart(self, customer_id: str) -> Cart | None:
        cart_id = self._carts.customer_cart_id(customer_id)
        cart = self._carts.get(cart_id) if cart_id else None
        return cart if cart is not None and cart.customer_id == customer_id else None

    def _currency(self, requested: str | None) -> str:
        currency = requested or REGION_CURRENCY.get(self._region)
        if currency is None:
            raise InvalidRequest(
                f"region {self._region!r} has no default currency: send one",
                code="currency_required",
            )
        if currency not in SUPPORTED_CURRENCIES:
            raise InvalidRequest(
                f"unsupported currency {currency!r}; use one of "
                f"{', '.join(sorted(SUPPORTED_CURRENCIES))}",
                code="unsupported_currency",
                currency=currency,
            )
        return currency

    def _price(self, cart: Cart) -> CartView:
        skus: Sequence[str] = list(cart.lines)
        if not skus:
            return price_cart(cart, {}, {})
        shelf = self._shelf.look(skus)
        return price_cart(cart, shelf.offers, shelf.availability)

    def _added(
        self, cart: Cart, change: LineChange, after: int, attribution: Attribution
    ) -> Envelope:
        line = change.line
        return REGISTRY.new_event(
            "cart.item_added",
            CartItemAdded(
                cart_id=cart.cart_id,
                session_id=attribution.session_id or cart.cart_id,
                customer_id=cart.customer_id,
                sku=line.sku,
                product_id=line.product_id,
                seller_id=line.seller_id,
                quantity=change.delta,
                quantity_in_cart=after,
                unit_price=Money(amount_minor=line.unit_price_minor, currency=cart.currency),
                channel=attribution.channel,
                recommendation_id=attribution.recommendation_id,
                search_id=attribution.search_id,
            ),
            region=self._region,
        )

    def _removed(
        self, cart: Cart, change: LineChange, after: int, reason: RemovalReason
    ) -> Envelope:
        return REGISTRY.new_event(
            "cart.item_removed",
            CartItemRemoved(
                cart_id=cart.cart_id,
                session_id=cart.cart_id,
                customer_id=cart.customer_id,
                sku=change.line.sku,
                product_id=change.line.product_id,
                quantity=-change.delta,
                quantity_in_cart=after,
                reason=reason,
            ),
            region=self._region,
        )
