"""Adapters of the cart's ports onto the other slices' services (wired in ``souk.services``).

Duck-typed on purpose: the cart depends on the contract in docs/purchase-path.md
(``CatalogService.offers``, ``InventoryService.availability``, ``CustomerService.get``), not on
those slices' modules, so it builds and tests while they are being written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from transactional.carts.model import Offer
from transactional.shared.errors import NotFound


class CatalogPriceBook:
    """The catalog's ``offers(skus)`` as the cart's PriceBook; no catalog → no SKU is known."""

    def __init__(self, catalog: Any | None) -> None:
        self._catalog = catalog

    def offers(self, skus: Sequence[str]) -> Mapping[str, Offer]:
        """The offer of each known SKU among ``skus``."""
        if self._catalog is None or not skus:
            return {}
        found: Mapping[str, Any] = self._catalog.offers(list(skus))
        return {
            sku: Offer(
                sku=str(offer.sku),
                product_id=str(offer.product_id),
                seller_id=str(offer.seller_id),
                title=str(offer.title),
                status=str(offer.status),
                prices={str(c): int(p) for c, p in dict(offer.prices).items()},
            )
            for sku, offer in found.items()
        }


class InventoryStock:
    """Inventory's ``availability(skus)`` as the cart's StockLevels; no inventory → nothing."""

    def __init__(self, inventory: Any | None) -> None:
        self._inventory = inventory

    def availability(self, skus: Sequence[str]) -> Mapping[str, int]:
        """Units available per SKU (absent = 0)."""
        if self._inventory is None or not skus:
            return {}
        found: Mapping[str, Any] = self._inventory.availability(list(skus))
        return {str(sku): int(units) for sku, units in found.items()}


def customer_currency_of(customers: Callable[[], Any | None]) -> Callable[[str], str | None]:
    """The customer's currency via ``CustomerService.get`` (looked up lazily: it is built later)."""

    def currency(customer_id: str) -> str | None:
        service = customers()
        if service is None:
            return None
        try:
            return str(service.get(customer_id).currency)
        except NotFound:
            return None

    return currency
