"""Adapters of the SkuDirectory and SellerAccounts ports over the catalog and seller services.

Typed structurally: the inventory slice depends on the shape of ``CatalogService.offers`` and
``SellerService.approved_seller_of``, never on their modules, so either slice can change
everything else (or be deployed elsewhere) without touching inventory.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol


class _Offer(Protocol):
    @property
    def seller_id(self) -> str: ...


class _Catalog(Protocol):
    def offers(self, skus: Any) -> Mapping[str, _Offer]: ...


class _Sellers(Protocol):
    def approved_seller_of(self, customer_id: str) -> Any: ...


class CatalogSkus:
    """SKU → seller from ``CatalogService.offers``; knows no SKU while the catalog is absent."""

    def __init__(self, catalog: Callable[[], _Catalog | None]) -> None:
        self._catalog = catalog  # looked up per call: the catalog may be wired after us

    def sellers_of(self, skus: Collection[str]) -> dict[str, str]:
        """Seller id of each known SKU; unknown SKUs are absent."""
        catalog = self._catalog()
        if catalog is None or not skus:
            return {}
        return {sku: offer.seller_id for sku, offer in catalog.offers(list(skus)).items()}


class SellerDirectory:
    """Customer → approved seller id from ``SellerService.approved_seller_of``."""

    def __init__(self, sellers: Callable[[], _Sellers | None]) -> None:
        self._sellers = sellers

    def seller_of(self, customer_id: str) -> str | None:
        """The approved seller id of a customer, or None."""
        sellers = self._sellers()
        if sellers is None:
            return None
        seller = sellers.approved_seller_of(customer_id)
        if seller is None:
            return None
        # The contract does not fix the return type: accept a seller object or its id.
        return str(getattr(seller, "seller_id", seller))


class StaticSkus:
    """A fixed SKU → seller map (tests, tools, and stacks without a catalog)."""

    def __init__(self, sellers: Mapping[str, str] | None = None) -> None:
        self.sellers: dict[str, str] = dict(sellers or {})

    def sellers_of(self, skus: Collection[str]) -> dict[str, str]:
        """Seller id of each known SKU; unknown SKUs are absent."""
        return {sku: self.sellers[sku] for sku in skus if sku in self.sellers}


class StaticSellers:
    """A fixed customer → seller map (tests and tools)."""

    def __init__(self, sellers: Mapping[str, str] | None = None) -> None:
        self.sellers: dict[str, str] = dict(sellers or {})

    def seller_of(self, customer_id: str) -> str | None:
        """The seller id of a customer, or None."""
        return self.sellers.get(customer_id)
