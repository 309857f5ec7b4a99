"""Adapters of the inventory's SkuDirectory and SellerAccounts ports over catalog and sellers."""

from __future__ import annotations

from collections.abc import Collection

from transactional.catalog.service import CatalogService
from transactional.sellers.service import SellerService


class CatalogSkus:
    """SKU → seller from ``CatalogService.offers``."""

    def __init__(self, catalog: CatalogService) -> None:
        self._catalog = catalog

    def sellers_of(self, skus: Collection[str]) -> dict[str, str]:
        """Seller id of each known SKU; unknown SKUs are absent."""
        if not skus:
            return {}
        return {sku: offer.seller_id for sku, offer in self._catalog.offers(list(skus)).items()}


class SellerDirectory:
    """Customer → approved seller id from ``SellerService.approved_seller_of``."""

    def __init__(self, sellers: SellerService) -> None:
        self._sellers = sellers

    def seller_of(self, customer_id: str) -> str | None:
        """The approved seller id of a customer, or None."""
        seller = self._sellers.approved_seller_of(customer_id)
        return None if seller is None else seller.seller_id
