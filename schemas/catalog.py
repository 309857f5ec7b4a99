"""Catalog domain (aggregate ``product``): product lifecycle and list-price changes.

Consumers: search indexing (Elasticsearch upserts), recommendations, storefront caches.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.common import Id, Locale, Money, Timestamp, require_same_currency
from schemas.spec import EventSpec

__all__ = [
    "SPECS",
    "ProductCreated",
    "ProductPriceChanged",
    "ProductStatus",
    "ProductUpdated",
    "ProductVariant",
]

ProductStatus = Literal["draft", "active", "archived"]


class ProductVariant(msgspec.Struct, frozen=True, kw_only=True):
    """One sellable variation of a product (size/colour...), identified by its SKU."""

    sku: Id
    price: Money
    attributes: dict[str, str] = {}  # e.g. {"size": "M", "colour": "red"}


class _ProductState(msgspec.Struct, frozen=True, kw_only=True):
    # Full snapshot ("event-carried state transfer") so the search indexer can upsert a
    # document from one event without calling back into the Product Service.
    product_id: Id
    seller_id: Id
    # Monotonic per product: indexers drop snapshots older than what they already hold,
    # which makes redelivery and cross-partition reordering harmless.
    product_version: Annotated[int, msgspec.Meta(ge=1)]
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    description: str = ""
    category_id: Id
    category_path: list[str] = []  # root -> leaf names, for facets and breadcrumbs
    brand: str | None = None
    status: ProductStatus = "active"
    price: Money  # list price of the default variant
    variants: list[ProductVariant] = []
    attributes: dict[str, str] = {}
    image_urls: list[str] = []  # CDN URLs
    prime_eligible: bool = False
    locale: Locale = "en"

    def __post_init__(self) -> None:
        require_same_currency(self.price, *(variant.price for variant in self.variants))


class ProductCreated(_ProductState, frozen=True, kw_only=True):
    """product.created: a new product with its initial snapshot."""


class ProductUpdated(_ProductState, frozen=True, kw_only=True):
    """product.updated: the product's full new snapshot plus which fields changed."""

    changed_fields: list[str] = []


class ProductPriceChanged(msgspec.Struct, frozen=True, kw_only=True):
    """product.price_changed: a SKU's list price changed (seller, repricer or promotion)."""

    product_id: Id
    sku: Id
    seller_id: Id
    old_price: Money
    new_price: Money
    reason: Literal["seller_update", "repricing", "promotion", "correction"] = "seller_update"
    effective_at: Timestamp | None = None  # None = immediately

    def __post_init__(self) -> None:
        require_same_currency(self.old_price, self.new_price)


SPECS = (
    EventSpec("product.created", 1, "catalog", "product", ProductCreated, "product_id"),
    EventSpec("product.updated", 1, "catalog", "product", ProductUpdated, "product_id"),
    EventSpec("product.price_changed", 1, "catalog", "product", ProductPriceChanged, "product_id"),
)
