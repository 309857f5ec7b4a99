"""The cart domain: lines of SKUs, their arithmetic, limits, and the priced view. Pure Python.

A cart stores what the shopper chose (SKU, quantity, the price seen when adding); prices and
stock are never trusted from the cart: the view re-reads them from the catalog and inventory.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol

from transactional.shared.errors import Conflict, InvalidRequest, NotFound

MAX_LINE_QUANTITY = 99
MAX_LINES = 100  # distinct SKUs per cart: keeps views, merges and events bounded
PURCHASABLE_STATUS = "active"

UnavailableReason = Literal["unknown_sku", "not_for_sale", "price_unavailable"]
Marker = Literal["merged_into", "last_order_id"]


class CartNotFound(NotFound):
    """No such cart, or not the caller's (deliberately indistinguishable), or it expired."""

    code = "cart_not_found"


class LineNotFound(NotFound):
    """The cart has no line for this SKU."""

    code = "line_not_found"


class UnknownSku(InvalidRequest):
    """The catalog does not know the SKU."""

    code = "unknown_sku"


class NotForSale(InvalidRequest):
    """The SKU exists but its product is not on sale (draft or archived)."""

    code = "not_for_sale"


class PriceUnavailable(InvalidRequest):
    """The SKU has no price in the cart's currency."""

    code = "price_unavailable"


class InvalidQuantity(InvalidRequest):
    """A quantity out of range for the operation."""

    code = "invalid_quantity"


class QuantityLimitExceeded(Conflict):
    """The line would hold more than MAX_LINE_QUANTITY units."""

    code = "quantity_limit_exceeded"


class NotEnoughStock(Conflict):
    """The line would hold more units than inventory has available."""

    code = "insufficient_stock"


class CartFull(Conflict):
    """The cart already has MAX_LINES distinct SKUs."""

    code = "cart_full"


class CartCurrencyMismatch(Conflict):
    """The customer's active cart is in another currency than the one asked for."""

    code = "cart_currency_mismatch"

    @classmethod
    def of(cls, cart_id: str, currency: str, requested: str) -> CartCurrencyMismatch:
        """The refusal naming the active cart and its currency."""
        return cls(
            f"your active cart {cart_id} is in {currency}, not {requested}: "
            f"use that cart (ask again with {currency} or no currency)",
            cart_id=cart_id,
            currency=currency,
            requested_currency=requested,
        )


@dataclass(frozen=True)
class Offer:
    """What the cart needs to know about a SKU from the catalog."""

    sku: str
    product_id: str
    seller_id: str
    title: str
    status: str
    prices: Mapping[str, int]

    @property
    def purchasable(self) -> bool:
        """Whether the product is on sale."""
        return self.status == PURCHASABLE_STATUS

    def price_in(self, currency: str) -> int | None:
        """The unit price in ``currency`` (minor units), if the SKU is priced in it."""
        return self.prices.get(currency)


@dataclass(frozen=True)
class Line:
    """Units of one SKU in a cart, with the unit price the shopper saw when last adding it."""

    sku: str
    product_id: str
    seller_id: str
    quantity: int
    unit_price_minor: int
    added_at: datetime


@dataclass(frozen=True)
class LineChange:
    """One change of a line: ``delta`` units (negative = removed) leaving ``line`` behind.

    ``line`` is the line after the change; for a removed line it is the old line with
    quantity 0 (its product id is still needed by the event).
    """

    line: Line
    delta: int

    @property
    def removed(self) -> bool:
        """Whether the line is gone after the change."""
        return self.line.quantity == 0


@dataclass
class Cart:
    """A guest's or a customer's cart in one currency."""

    cart_id: str
    currency: str
    created_at: datetime
    customer_id: str | None = None
    lines: dict[str, Line] = field(default_factory=dict)
    merged_into: str | None = None  # set when a guest cart was folded into a customer's
    last_order_id: str | None = None  # the order whose checkout last emptied the cart

    @property
    def is_guest(self) -> bool:
        """Guest carts are reachable by whoever holds their id."""
        return self.customer_id is None

    def visible_to(self, customer_id: str | None) -> bool:
        """A guest cart is a capability (its id); a customer's cart is only its owner's."""
        if self.merged_into is not None:
            return False
        return self.is_guest or self.customer_id == customer_id

    def quantity_of(self, sku: str) -> int:
        """Units of ``sku`` in the cart (0 if none)."""
        line = self.lines.get(sku)
        return line.quantity if line else 0

    def sorted_lines(self) -> list[Line]:
        """Lines in the order they were first added."""
        return sorted(self.lines.values(), key=lambda line: (line.added_at, line.sku))

    def add(self, offer: Offer, quantity: int, available: int, now: datetime) -> LineChange:
        """Add ``quantity`` units of a SKU at its current price; checks limits and stock."""
        if quantity < 1:
            raise InvalidQuantity("add at least 1 unit", quantity=quantity, sku=offer.sku)
        price = self._price_of(offer)
        current = self.lines.get(offer.sku)
        if current is None and len(self.lines) >= MAX_LINES:
            raise CartFull(f"a cart holds at most {MAX_LINES} different SKUs", max=MAX_LINES)
        wanted = (current.quantity if current else 0) + quantity
        self._check_quantity(offer.sku, wanted, available, in_cart=self.quantity_of(offer.sku))
        line = Line(
            sku=offer.sku,
            product_id=offer.product_id,
            seller_id=offer.seller_id,
            quantity=wanted,
            unit_price_minor=price,
            added_at=current.added_at if current else now,
        )
        self.lines[offer.sku] = line
        return LineChange(line, quantity)

    def set_quantity(
        self, sku: str, quantity: int, offer: Offer | None, available: int
    ) -> LineChange | None:
        """Set a line's quantity (0 removes it); None if it already has that many units.

        Lowering never needs the catalog; raising re-checks price, limit and stock, and
        takes the current price as the one the shopper saw.
        """
        if quantity < 0:
            raise InvalidQuantity("a quantity cannot be negative", quantity=quantity, sku=sku)
        current = self.lines.get(sku)
        if current is None:
            raise LineNotFound(f"the cart has no line for SKU {sku}", sku=sku)
        if quantity == current.quantity:
            return None
        if quantity == 0:
            return self.remove(sku)
        if quantity < current.quantity:
            line = replace(current, quantity=quantity)
            self.lines[sku] = line
            return LineChange(line, quantity - current.quantity)
        if offer is None:
            raise UnknownSku(f"SKU {sku} is no longer in the catalog", sku=sku)
        price = self._price_of(offer)
        self._check_quantity(sku, quantity, available, in_cart=current.quantity)
        line = replace(
            current,
            quantity=quantity,
            unit_price_minor=price,
            product_id=offer.product_id,
            seller_id=offer.seller_id,
        )
        self.lines[sku] = line
        return LineChange(line, quantity - current.quantity)

    def remove(self, sku: str) -> LineChange:
        """Remove a line entirely."""
        current = self.lines.pop(sku, None)
        if current is None:
            raise LineNotFound(f"the cart has no line for SKU {sku}", sku=sku)
        return LineChange(replace(current, quantity=0), -current.quantity)

    def clear(self) -> list[LineChange]:
        """Remove every line."""
        return [self.remove(line.sku) for line in self.sorted_lines()]

    def check_out(self, bought: Mapping[str, int]) -> list[LineChange]:
        """Take out the units a checkout bought (SKU → units), nothing else.

        What the shopper added while the checkout ran stays: other SKUs, and units beyond
        the bought ones. A line lowered meanwhile goes with what is left of it.
        """
        changes: list[LineChange] = []
        for line in self.sorted_lines():
            units = bought.get(line.sku, 0)
            if units < 1:
                continue
            if units >= line.quantity:
                changes.append(self.remove(line.sku))
                continue
            left = replace(line, quantity=line.quantity - units)
            self.lines[line.sku] = left
            changes.append(LineChange(left, -units))
        return changes

    def absorb(
        self, guest: Cart, offers: Mapping[str, Offer], now: datetime
    ) -> tuple[list[LineChange], list[str]]:
        """Fold a guest cart's lines into this one: quantities add up, capped per line.

        Lines not for sale or without a price in this cart's currency are dropped (returned
        as SKUs). Stock is not checked here: the view flags short lines before checkout.
        """
        changes: list[LineChange] = []
        dropped: list[str] = []
        for guest_line in guest.sorted_lines():
            offer = offers.get(guest_line.sku)
            price = offer.price_in(self.currency) if offer and offer.purchasable else None
            current = self.lines.get(guest_line.sku)
            if offer is None or price is None or (current is None and len(self.lines) >= MAX_LINES):
                dropped.append(guest_line.sku)
                continue
            before = current.quantity if current else 0
            wanted = min(before + guest_line.quantity, MAX_LINE_QUANTITY)
            if wanted == before:
                continue
            # Same currency: keep the price the guest saw, so a change since is still flagged.
            seen = guest_line.unit_price_minor if guest.currency == self.currency else price
            line = Line(
                sku=guest_line.sku,
                product_id=offer.product_id,
                seller_id=offer.seller_id,
                quantity=wanted,
                unit_price_minor=current.unit_price_minor if current else seen,
                added_at=current.added_at if current else now,
            )
            self.lines[guest_line.sku] = line
            changes.append(LineChange(line, wanted - before))
        return changes, dropped

    def _price_of(self, offer: Offer) -> int:
        if not offer.purchasable:
            raise NotForSale(f"SKU {offer.sku} is not for sale", sku=offer.sku)
        price = offer.price_in(self.currency)
        if price is None:
            raise PriceUnavailable(
                f"SKU {offer.sku} has no price in {self.currency}",
                sku=offer.sku,
                currency=self.currency,
            )
        return price

    @staticmethod
    def _check_quantity(sku: str, wanted: int, available: int, *, in_cart: int) -> None:
        if wanted > MAX_LINE_QUANTITY:
            raise QuantityLimitExceeded(
                f"at most {MAX_LINE_QUANTITY} units of one SKU per cart",
                sku=sku,
                max=MAX_LINE_QUANTITY,
                in_cart=in_cart,
            )
        if wanted > available:
            raise NotEnoughStock(
                f"only {available} units of SKU {sku} are available",
                sku=sku,
                available=available,
                requested=wanted,
            )


# -- the priced view ---------------------------------------------------------------------


@dataclass(frozen=True)
class CartLine:
    """A line priced now: current unit price in the cart currency and current availability."""

    sku: str
    product_id: str
    seller_id: str
    title: str
    quantity: int
    unit_price_minor: int
    available: int
    added_unit_price_minor: int = 0  # what the shopper saw when adding

    @property
    def line_total_minor(self) -> int:
        """Quantity times the current unit price."""
        return self.quantity * self.unit_price_minor

    @property
    def price_changed(self) -> bool:
        """Whether the price moved since the shopper added the line."""
        return self.unit_price_minor != self.added_unit_price_minor

    @property
    def stock_short(self) -> bool:
        """Whether inventory has fewer units available than the line holds."""
        return self.available < self.quantity


@dataclass(frozen=True)
class UnavailableLine:
    """A line that cannot be bought now (unknown SKU, not on sale, no price in the currency)."""

    sku: str
    product_id: str
    quantity: int
    reason: UnavailableReason


@dataclass(frozen=True)
class CartView:
    """A cart as checkout and the storefront see it: priced now, with stock.

    ``lines`` are purchasable lines only; lines that cannot be bought are in ``unavailable``
    (a checkout should refuse while it is non-empty, or any line is ``stock_short``).
    """

    cart_id: str
    customer_id: str | None
    currency: str
    lines: list[CartLine]
    subtotal_minor: int
    unavailable: list[UnavailableLine] = field(default_factory=list)

    @property
    def item_count(self) -> int:
        """Units in the cart, purchasable or not."""
        return sum(line.quantity for line in self.lines) + sum(
            line.quantity for line in self.unavailable
        )

    @property
    def ready_for_checkout(self) -> bool:
        """Non-empty, every line purchasable and in stock."""
        return (
            bool(self.lines)
            and not self.unavailable
            and not any(line.stock_short for line in self.lines)
        )


def price_cart(
    cart: Cart, offers: Mapping[str, Offer], availability: Mapping[str, int]
) -> CartView:
    """The view of a cart with current prices in its currency and current availability."""
    lines: list[CartLine] = []
    unavailable: list[UnavailableLine] = []
    for line in cart.sorted_lines():
        offer = offers.get(line.sku)
        reason: UnavailableReason | None = None
        price = None
        if offer is None:
            reason = "unknown_sku"
        elif not offer.purchasable:
            reason = "not_for_sale"
        else:
            price = offer.price_in(cart.currency)
            if price is None:
                reason = "price_unavailable"
        if offer is None or price is None:
            unavailable.append(
                UnavailableLine(line.sku, line.product_id, line.quantity, reason or "unknown_sku")
            )
            continue
        lines.append(
            CartLine(
                sku=line.sku,
                product_id=offer.product_id,
                seller_id=offer.seller_id,
                title=offer.title,
                quantity=line.quantity,
                unit_price_minor=price,
                available=max(0, availability.get(line.sku, 0)),
                added_unit_price_minor=line.unit_price_minor,
            )
        )
    return CartView(
        cart_id=cart.cart_id,
        customer_id=cart.customer_id,
        currency=cart.currency,
        lines=lines,
        subtotal_minor=sum(line.line_total_minor for line in lines),
        unavailable=unavailable,
    )


# -- ports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShelfView:
    """What the catalog and inventory say of some SKUs right now."""

    offers: Mapping[str, Offer]  # unknown SKUs are absent
    availability: Mapping[str, int]  # units available across warehouses; absent = 0

    def offer(self, sku: str) -> Offer:
        """The SKU's offer; UnknownSku if the catalog has none."""
        offer = self.offers.get(sku)
        if offer is None:
            raise UnknownSku(f"no SKU {sku} in the catalog", sku=sku)
        return offer

    def available(self, sku: str) -> int:
        """Units of the SKU available to sell (0 if none)."""
        return self.availability.get(sku, 0)


class Shelf(Protocol):
    """Current offers (the catalog) and availability (inventory) of SKUs, read together."""

    def look(self, skus: Collection[str]) -> ShelfView:
        """Offers and availability of ``skus`` (one round trip where the store allows)."""


class CartRepository(Protocol):
    """Stores carts (Redis in production); every write refreshes the cart's time to live.

    Writes are atomic per call. Inside a unit of work they are undone if it does not commit.
    """

    def get(self, cart_id: str) -> Cart | None:
        """A cart with its lines, or None if unknown or expired."""

    def customer_cart_id(self, customer_id: str) -> str | None:
        """The id of the customer's active cart, if any."""

    def create(self, cart: Cart) -> str:
        """Store a new empty cart; for a customer who has an active cart already, store
        nothing and return that cart's id. Returns the id of the cart to use."""

    def apply(self, cart: Cart, change: LineChange) -> int:
        """Add ``change.delta`` units to a line (removing it at 0) and store the line's
        details; returns the units after. CartNotFound if the cart is gone."""

    def set_marker(self, cart: Cart, name: Marker, value: str) -> None:
        """Record a fact on the cart (which cart it merged into, which order emptied it)."""

    def delete(self, cart_id: str) -> None:
        """Remove a cart (and nothing else)."""
