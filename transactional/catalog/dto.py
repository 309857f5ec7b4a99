"""Request and response bodies of the catalog API (msgspec structs at the edge).

Shapes and sizes are checked here (400); meaning — currencies, positive prices, known
categories — by the domain (422), so the client learns which rule it broke.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from transactional.catalog.model import Category, CategoryNode, Product

Text = Annotated[str, msgspec.Meta(max_length=1000)]
Url = Annotated[str, msgspec.Meta(max_length=4000)]
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Attributes = Annotated[dict[str, str], msgspec.Meta(max_length=100)]
Prices = Annotated[dict[str, int], msgspec.Meta(min_length=1, max_length=10)]


class VariantIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One SKU of a new product: its attributes and a list price per currency (minor units)."""

    sku: Key
    prices: Prices
    attributes: Attributes = {}


class CreateProduct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/products."""

    title: Text
    category_id: Key
    variants: Annotated[list[VariantIn], msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=50_000)] = ""
    brand: Text | None = None
    attributes: Attributes = {}
    images: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=4000)]], msgspec.Meta(max_length=50)
    ] = []


class UpdateProduct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH /v1/products/{id}: any of title, description, brand, and prices per SKU."""

    title: Text | None = None
    description: Annotated[str, msgspec.Meta(max_length=50_000)] | None = None
    brand: Text | None = None
    prices: Annotated[dict[str, Prices], msgspec.Meta(max_length=200)] = {}


class VariantOut(msgspec.Struct, kw_only=True):
    """A SKU with its attributes and list prices."""

    sku: str
    attributes: dict[str, str]
    prices: dict[str, int]


class ProductOut(msgspec.Struct, kw_only=True):
    """A product as the storefront shows it."""

    product_id: str
    shard: int
    seller_id: str
    title: str
    description: str
    brand: str | None
    category_id: str
    attributes: dict[str, str]
    variants: list[VariantOut]
    images: list[str]
    currency: str
    status: str
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        """The response body of a domain product."""
        return cls(
            product_id=product.product_id,
            shard=product.shard,
            seller_id=product.seller_id,
            title=product.title,
            description=product.description,
            brand=product.brand,
            category_id=product.category_id,
            attributes=product.attributes,
            variants=[
                VariantOut(sku=v.sku, attributes=v.attributes, prices=v.prices)
                for v in product.variants
            ],
            images=product.images,
            currency=product.currency,
            status=product.status,
            version=product.version,
            created_at=product.created_at,
            updated_at=product.updated_at,
        )


class ProductPageOut(msgspec.Struct, kw_only=True):
    """A page of products with where it is in the whole listing."""

    items: list[ProductOut]
    page: int
    page_size: int
    total: int
    pages: int
    has_next: bool


class NewCategoryIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/admin/categories: a root when ``parent_id`` is null."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    parent_id: Key | None = None


class CategoryOut(msgspec.Struct, kw_only=True):
    """A category without its subtree."""

    category_id: str
    name: str
    slug: str
    parent_id: str | None

    @classmethod
    def of(cls, category: Category) -> CategoryOut:
        """The response body of a domain category."""
        return cls(
            category_id=category.category_id,
            name=category.name,
            slug=category.slug,
            parent_id=category.parent_id,
        )


class CategoryTreeOut(msgspec.Struct, kw_only=True):
    """A category with its children, recursively."""

    category_id: str
    name: str
    slug: str
    children: list[CategoryTreeOut]

    @classmethod
    def of(cls, node: CategoryNode) -> CategoryTreeOut:
        """The response body of a category subtree."""
        return cls(
            category_id=node.category.category_id,
            name=node.category.name,
            slug=node.category.slug,
            children=[cls.of(child) for child in node.children],
        )
