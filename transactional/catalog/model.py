"""The catalog domain: categories, products, their SKUs and prices. Pure Python, no I/O.

Product ids carry their shard: ``prd_<shard as 2 hex digits>_<uuid7 hex>``, the shard being a
stable hash of the uuid modulo the number of shards, so a sharded deployment routes a request
by the id's prefix alone.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol
from urllib.parse import urlsplit

from transactional.shared.errors import Conflict, Forbidden, InvalidRequest
from transactional.shared.regions import SUPPORTED_CURRENCIES

ProductStatus = Literal["draft", "active", "archived"]

MAX_SHARDS = 256  # two hex digits in the id
MAX_TITLE_LENGTH = 500
MAX_DESCRIPTION_LENGTH = 20_000
MAX_BRAND_LENGTH = 120
MAX_VARIANTS = 100
MAX_IMAGES = 20
# Bounds keep a product's event (its full snapshot) far below the outbox's message limit.
MAX_ATTRIBUTES = 50
MAX_VARIANT_ATTRIBUTES = 10
MAX_ATTRIBUTE_LENGTH = 200
MAX_URL_LENGTH = 2000
MAX_PRICE_MINOR = 10**12  # far above any real list price, far below BIGINT
MAX_CATEGORY_NAME_LENGTH = 80
MAX_CATEGORY_ID_LENGTH = 128

_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PRODUCT_ID = re.compile(r"^prd_([0-9a-f]{2})_([0-9a-f]{32})$")
_SLUG_SPLIT = re.compile(r"[^a-z0-9]+")


class DuplicateSku(Conflict):
    """A SKU is already listed (SKUs are globally unique)."""

    code = "duplicate_sku"


class CategoryExists(Conflict):
    """A category with this name already exists under the same parent."""

    code = "category_exists"


class NotProductOwner(Forbidden):
    """Only the seller who listed a product may change it."""

    code = "not_product_owner"


# -- shards ----------------------------------------------------------------------------------


def shard_for(value: uuid.UUID, shards: int) -> int:
    """The shard of a product uuid: a stable hash (same on every process and version)."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be 1..{MAX_SHARDS}, got {shards}")
    digest = hashlib.blake2b(value.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def product_id_for(value: uuid.UUID, shards: int) -> str:
    """The product id of a uuid: ``prd_<shard:02x>_<uuid hex>``."""
    return f"prd_{shard_for(value, shards):02x}_{value.hex}"


def shard_of(product_id: str) -> int:
    """The shard a product id routes to (its prefix); ValueError if it is not a product id."""
    match = _PRODUCT_ID.match(product_id)
    if match is None:
        raise ValueError(f"not a product id: {product_id!r}")
    return int(match.group(1), 16)


def is_product_id(value: str) -> bool:
    """Whether ``value`` has the shape of a product id."""
    return _PRODUCT_ID.match(value) is not None


# -- categories ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    """A node of the taxonomy; roots have no parent."""

    category_id: str
    name: str
    slug: str
    parent_id: str | None = None


@dataclass
class CategoryNode:
    """A category with its children, for the tree the storefront shows."""

    category: Category
    children: list[CategoryNode] = field(default_factory=list)


def slugify(name: str) -> str:
    """``"Home & Kitchen"`` → ``"home-kitchen"``."""
    return _SLUG_SPLIT.sub("-", name.lower()).strip("-")


def new_category(name: str, parent: Category | None) -> Category:
    """A category named ``name`` under ``parent``; its id extends the parent's (``cat_a_b``)."""
    cleaned = " ".join(name.split())
    slug = slugify(cleaned)
    if not slug or len(cleaned) > MAX_CATEGORY_NAME_LENGTH:
        raise InvalidRequest(
            f"a category name needs 1 to {MAX_CATEGORY_NAME_LENGTH} characters with a letter "
            "or digit",
            code="invalid_category_name",
        )
    stem = parent.category_id if parent is not None else "cat"
    category_id = f"{stem}_{slug.replace('-', '_')}"
    if len(category_id) > MAX_CATEGORY_ID_LENGTH:
        raise InvalidRequest("the category tree is too deep here", code="category_too_deep")
    return Category(category_id, cleaned, slug, parent.category_id if parent else None)


def build_tree(categories: Iterable[Category]) -> list[CategoryNode]:
    """The forest of categories, siblings by name; orphans (unknown parent) become roots."""
    nodes = {c.category_id: CategoryNode(c) for c in categories}
    roots: list[CategoryNode] = []
    for node in nodes.values():
        parent = nodes.get(node.category.parent_id) if node.category.parent_id else None
        (parent.children if parent is not None else roots).append(node)

    def order(level: list[CategoryNode]) -> list[CategoryNode]:
        level.sort(key=lambda n: (n.category.name.lower(), n.category.category_id))
        for node in level:
            order(node.children)
        return level

    return order(roots)


def category_path(category_id: str, categories: Mapping[str, Category]) -> list[Category]:
    """The categories from the root down to ``category_id`` (empty if it is unknown)."""
    path: list[Category] = []
    seen: set[str] = set()
    current = categories.get(category_id)
    while current is not None and current.category_id not in seen:
        seen.add(current.category_id)
        path.append(current)
        current = categories.get(current.parent_id) if current.parent_id else None
    return path[::-1]


def descendants(category_id: str, categories: Iterable[Category]) -> set[str]:
    """``category_id`` and every category below it."""
    children: dict[str, list[str]] = {}
    for category in categories:
        if category.parent_id is not None:
            children.setdefault(category.parent_id, []).append(category.category_id)
    found = {category_id}
    frontier = [category_id]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


# -- products --------------------------------------------------------------------------------


@dataclass
class Variant:
    """A sellable variation of a product, by SKU, with a list price per currency."""

    sku: str
    prices: dict[str, int]
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Product:
    """A seller's listing: descriptive fields, a category and one or more priced variants."""

    product_id: str
    shard: int
    seller_id: str
    title: str
    description: str
    brand: str | None
    category_id: str
    attributes: dict[str, str]
    variants: list[Variant]
    images: list[str]
    currency: str  # the quoted currency (events, listings): set once, at creation
    status: ProductStatus
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def currencies(self) -> list[str]:
        """The currencies the product is priced in (every variant has the same)."""
        return sorted(self.variants[0].prices) if self.variants else []

    def variant(self, sku: str) -> Variant | None:
        """One of this product's variants by SKU."""
        return next((v for v in self.variants if v.sku == sku), None)


@dataclass(frozen=True)
class SkuOffer:
    """What a cart or checkout needs to know about a SKU: whose it is, what it costs."""

    sku: str
    product_id: str
    seller_id: str
    title: str
    status: str
    prices: dict[str, int]
    category_id: str | None = None  # what the checkout's tax rules key on


@dataclass(frozen=True)
class PriceChange:
    """A SKU's list price in one currency moved from ``old`` to ``new`` (minor units)."""

    sku: str
    currency: str
    old: int
    new: int


def check_text(label: str, value: str, *, max_length: int, required: bool = True) -> str:
    """Trimmed text within ``max_length``; empty only when not ``required``."""
    cleaned = value.strip()
    if (required and not cleaned) or len(cleaned) > max_length:
        low = 1 if required else 0
        raise InvalidRequest(
            f"{label} must have {low} to {max_length} characters", code=f"invalid_{label}"
        )
    return cleaned


def check_attributes(
    label: str, attributes: Mapping[str, str], *, max_count: int = MAX_ATTRIBUTES
) -> dict[str, str]:
    """Up to ``max_count`` non-empty names with short values."""
    if len(attributes) > max_count:
        raise InvalidRequest(f"{label}: at most {max_count} attributes", code="invalid_attributes")
    cleaned: dict[str, str] = {}
    for name, value in attributes.items():
        key = name.strip()
        if not key or len(key) > MAX_ATTRIBUTE_LENGTH or len(value) > MAX_ATTRIBUTE_LENGTH:
            raise InvalidRequest(
                f"{label}: attribute names need 1 to {MAX_ATTRIBUTE_LENGTH} characters and "
                f"values at most {MAX_ATTRIBUTE_LENGTH}",
                code="invalid_attributes",
            )
        cleaned[key] = value.strip()
    return cleaned


def check_prices(sku: str, prices: Mapping[str, int]) -> dict[str, int]:
    """At least one price, each positive integer minor units in a supported currency."""
    if not prices:
        raise InvalidRequest(f"SKU {sku} has no price", code="price_required", sku=sku)
    for currency, amount in prices.items():
        if currency not in SUPPORTED_CURRENCIES:
            raise InvalidRequest(
                f"SKU {sku}: unsupported currency {currency!r}; use one of "
                f"{', '.join(sorted(SUPPORTED_CURRENCIES))}",
                code="unsupported_currency",
                sku=sku,
                currency=currency,
            )
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidRequest(
                f"SKU {sku}: prices are integer minor units", code="invalid_price", sku=sku
            )
        if not 0 < amount <= MAX_PRICE_MINOR:
            raise InvalidRequest(
                f"SKU {sku}: the {currency} price must be positive minor units, got {amount}",
                code="invalid_price",
                sku=sku,
                currency=currency,
            )
    return dict(prices)


def check_variants(variants: Sequence[Variant]) -> list[Variant]:
    """1..MAX_VARIANTS variants with well-formed distinct SKUs, priced in the same currencies."""
    if not variants:
        raise InvalidRequest("a product needs at least one variant", code="variants_required")
    if len(variants) > MAX_VARIANTS:
        raise InvalidRequest(f"at most {MAX_VARIANTS} variants", code="too_many_variants")
    seen: set[str] = set()
    cleaned: list[Variant] = []
    for variant in variants:
        if not _SKU.match(variant.sku):
            raise InvalidRequest(
                f"invalid SKU {variant.sku!r}: 1-64 letters, digits, '.', '_' or '-'",
                code="invalid_sku",
                sku=variant.sku,
            )
        if variant.sku in seen:
            raise DuplicateSku(
                f"SKU {variant.sku} appears twice in the product", skus=[variant.sku]
            )
        seen.add(variant.sku)
        cleaned.append(
            Variant(
                sku=variant.sku,
                prices=check_prices(variant.sku, variant.prices),
                attributes=check_attributes(
                    f"SKU {variant.sku}", variant.attributes, max_count=MAX_VARIANT_ATTRIBUTES
                ),
            )
        )
    # Every variant must be buyable wherever the product is shown.
    currencies = set(cleaned[0].prices)
    for variant in cleaned[1:]:
        if set(variant.prices) != currencies:
            raise InvalidRequest(
                f"SKU {variant.sku} is priced in {sorted(variant.prices)}, SKU "
                f"{cleaned[0].sku} in {sorted(currencies)}: price every variant in the same "
                "currencies",
                code="inconsistent_currencies",
                sku=variant.sku,
            )
    return cleaned


def check_images(images: Sequence[str]) -> list[str]:
    """Up to MAX_IMAGES absolute http(s) URLs."""
    if len(images) > MAX_IMAGES:
        raise InvalidRequest(f"at most {MAX_IMAGES} images", code="too_many_images")
    for url in images:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_LENGTH:
            raise InvalidRequest(
                f"image {url!r} is not an absolute http(s) URL", code="invalid_image_url"
            )
    return list(images)


def default_currency(variants: Sequence[Variant], preferred: str | None) -> str:
    """The currency to quote: the seller's region currency if priced in it, else the first."""
    currencies = list(variants[0].prices)
    return preferred if preferred in currencies else currencies[0]


def reprice(product: Product, prices: Mapping[str, Mapping[str, int]]) -> list[PriceChange]:
    """Set new list prices per SKU and currency; only currencies the product already uses."""
    changes: list[PriceChange] = []
    currencies = set(product.currencies)
    for sku, new_prices in prices.items():
        variant = product.variant(sku)
        if variant is None:
            raise InvalidRequest(
                f"SKU {sku} is not a variant of {product.product_id}",
                code="unknown_sku",
                sku=sku,
            )
        checked = check_prices(sku, new_prices)
        for currency, amount in checked.items():
            if currency not in currencies:
                raise InvalidRequest(
                    f"{product.product_id} is priced in {sorted(currencies)}, not {currency}",
                    code="inconsistent_currencies",
                    sku=sku,
                    currency=currency,
                )
            old = variant.prices[currency]
            if old != amount:
                changes.append(PriceChange(sku, currency, old, amount))
                variant.prices[currency] = amount
    return changes


# -- ports -----------------------------------------------------------------------------------


class SellerAccount(Protocol):
    """The seller facts the catalog needs."""

    @property
    def seller_id(self) -> str:
        """The seller's id."""

    @property
    def region(self) -> str:
        """The seller's home region (its events go there; its currency is the default)."""


class SellerGate(Protocol):
    """Answers whether a customer may sell (the seller slice's service)."""

    def require_approved_seller(self, customer_id: str) -> SellerAccount:
        """The customer's approved seller; a Forbidden error otherwise."""


@dataclass(frozen=True)
class ProductQuery:
    """Filters and page of a product listing."""

    category_ids: Collection[str] | None = None
    seller_id: str | None = None
    offset: int = 0
    limit: int = 20


class CatalogRepository(Protocol):
    """Stores categories, products and their variants."""

    def categories(self) -> list[Category]:
        """Every category."""

    def add_category(self, category: Category) -> None:
        """Insert a category; CategoryExists if its id or sibling slug is taken."""

    def add_product(self, product: Product) -> None:
        """Insert a product with its variants; DuplicateSku if any SKU exists."""

    def get(self, product_id: str, *, for_update: bool = False) -> Product | None:
        """A product with its variants, or None; ``for_update`` locks it for a change."""

    def update_product(self, product: Product) -> None:
        """Persist a changed product (descriptive fields, version, variant prices)."""

    def find(self, query: ProductQuery) -> tuple[list[Product], int]:
        """Active products matching the query, newest first, and how many match."""

    def offers(self, skus: Collection[str]) -> dict[str, SkuOffer]:
        """The offer of each existing SKU among ``skus``, in one query."""
