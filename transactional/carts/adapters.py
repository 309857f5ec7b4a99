"""Adapters of the cart's ports onto the other slices' services (wired in ``souk.services``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from transactional.carts.model import Offer
from transactional.catalog.service import CatalogService
from transactional.customers.service import CustomerService
from transactional.inventory.service import InventoryService
from transactional.shared.errors import NotFound


class CatalogPriceBook:
    """The catalog's ``offers(skus)`` as the cart's PriceBook."""

    def __init__(self, catalog: CatalogService) -> None:
        self._catalog = catalog

    def offers(self, skus: Sequence[str]) -> Mapping[str, Offer]:
        """The offer of each known SKU among ``skus``."""
        if not skus:
            return {}
        return {
            sku: Offer(
                sku=offer.sku,
                product_id=offer.product_id,
                seller_id=offer.seller_id,
                title=offer.title,
                status=offer.status,
                prices=dict(offer.prices),
            )
            for sku, offer in self._catalog.offers(list(skus)).items()
        }


class InventoryStock:
    """Inventory's ``availability(skus)`` as the cart's StockLevels."""

    def __init__(self, inventory: InventoryService) -> None:
        self._inventory = inventory

    def availability(self, skus: Sequence[str]) -> Mapping[str, int]:
        """Units available per SKU (absent = 0)."""
        return self._inventory.availability(list(skus)) if skus else {}


def customer_currency_of(customers: Callable[[], CustomerService]) -> Callable[[str], str | None]:
    """The customer's currency via ``CustomerService.get`` (looked up lazily: it is built later)."""

    def currency(customer_id: str) -> str | None:
        try:
            return customers().get(customer_id).currency
        except NotFound:
            return None

    return currency
