"""In-memory fakes of the cart slice's ports, for unit tests."""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tests.fakes import FakeUnitOfWork
from transactional.carts.model import Cart, CartNotFound, LineChange, Marker, Offer, ShelfView
from transactional.carts.service import CartService

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class FakeCarts:
    """Carts in a dict; copies in and out, like a real store."""

    def __init__(self) -> None:
        self.carts: dict[str, Cart] = {}
        self.index: dict[str, str] = {}
        self.writes = 0

    def get(self, cart_id: str) -> Cart | None:
        cart = self.carts.get(cart_id)
        return copy.deepcopy(cart) if cart else None

    def customer_cart_id(self, customer_id: str) -> str | None:
        return self.index.get(customer_id)

    def create(self, cart: Cart) -> str:
        if cart.customer_id is not None:
            current = self.index.get(cart.customer_id)
            if current is not None and current in self.carts:
                return current
            self.index[cart.customer_id] = cart.cart_id
        self.carts[cart.cart_id] = copy.deepcopy(cart)
        self.writes += 1
        return cart.cart_id

    def apply(self, cart: Cart, change: LineChange) -> int:
        stored = self.carts.get(cart.cart_id)
        if stored is None or stored.merged_into is not None:
            raise CartNotFound("gone")
        current = stored.lines.get(change.line.sku)
        units = (current.quantity if current else 0) + change.delta
        if units <= 0:
            stored.lines.pop(change.line.sku, None)
            units = 0
        else:
            stored.lines[change.line.sku] = replace(change.line, quantity=units)
        self.writes += 1
        return units

    def set_marker(self, cart: Cart, name: Marker, value: str) -> None:
        stored = self.carts.get(cart.cart_id)
        if stored is not None:
            setattr(stored, name, value or None)
            self.writes += 1

    def delete(self, cart_id: str) -> None:
        self.carts.pop(cart_id, None)


class FakeCartsUow(FakeUnitOfWork):
    """Like the real one: a unit of work left without commit puts the carts back."""

    def __init__(self, carts: FakeCarts) -> None:
        super().__init__()
        self.carts = carts
        self.locks: list[str] = []
        self.fail_commit = False
        self._saved: tuple[dict[str, Cart], dict[str, str]] | None = None

    def __enter__(self) -> Any:
        self._saved = (copy.deepcopy(self.carts.carts), dict(self.carts.index))
        return super().__enter__()

    def lock(self, *keys: str) -> None:
        self.locks.extend(sorted(set(keys)))

    def commit(self) -> None:
        if self.fail_commit:
            raise RuntimeError("the database went away")
        super().commit()
        self._saved = None

    def rollback(self) -> None:
        super().rollback()
        if self._saved is not None:
            self.carts.carts, self.carts.index = self._saved
            self._saved = None


class FakePrices:
    """A catalog of offers by SKU."""

    def __init__(self, *offers: Offer) -> None:
        self.offers_by_sku = {offer.sku: offer for offer in offers}

    def offers(self, skus: Sequence[str]) -> Mapping[str, Offer]:
        return {sku: self.offers_by_sku[sku] for sku in skus if sku in self.offers_by_sku}


class FakeStock:
    """Availability by SKU (absent = 0)."""

    def __init__(self, **units: int) -> None:
        self.units = dict(units)

    def availability(self, skus: Sequence[str]) -> Mapping[str, int]:
        return {sku: self.units[sku] for sku in skus if sku in self.units}


class FakeShelf:
    """The catalog's offers and inventory's availability, looked at together (counted)."""

    def __init__(self, prices: FakePrices, stock: FakeStock) -> None:
        self.prices, self.stock = prices, stock
        self.looks = 0

    def look(self, skus: Collection[str]) -> ShelfView:
        self.looks += 1
        wanted = list(skus)
        return ShelfView(self.prices.offers(wanted), self.stock.availability(wanted))


def offer(sku: str, status: str = "active", **prices: int) -> Offer:
    """An offer priced in the given currencies (EUR 1000 by default)."""
    return Offer(
        sku=sku,
        product_id=f"prd_{sku}",
        seller_id="sel_1",
        title=f"Product {sku}",
        status=status,
        prices=prices or {"EUR": 1000},
    )


class Harness:
    """A cart service over fakes, with handles on each fake."""

    def __init__(self, *offers: Offer, currencies: Mapping[str, str] | None = None, **stock: int):
        self.store = FakeCarts()
        self.uow = FakeCartsUow(self.store)
        self.prices = FakePrices(*offers)
        self.stock = FakeStock(**stock)
        known = dict(currencies or {})
        self.shelf = FakeShelf(self.prices, self.stock)
        self.service = CartService(
            lambda: self.uow,
            self.store,
            self.shelf,
            region="eu",
            customer_currency=known.get,
            clock=lambda: NOW,
        )
