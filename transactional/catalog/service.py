"""Catalog use cases: list products, read and browse them, price lookups, the taxonomy."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import msgspec

from schemas.catalog import ProductCreated, ProductPriceChanged, ProductUpdated, ProductVariant
from schemas.common import Money
from schemas.envelope import Envelope
from schemas.ids import uuid7
from schemas.registry import REGISTRY
from transactional.catalog.model import (
    MAX_BRAND_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_TITLE_LENGTH,
    CatalogRepository,
    Category,
    CategoryNode,
    NotProductOwner,
    PriceChange,
    Product,
    ProductQuery,
    SellerGate,
    SkuOffer,
    Variant,
    build_tree,
    category_path,
    check_attributes,
    check_images,
    check_text,
    check_variants,
    default_currency,
    descendants,
    new_category,
    product_id_for,
    reprice,
    shard_of,
)
from transactional.shared.errors import InvalidRequest, NotFound
from transactional.shared.regions import REGION_CURRENCY
from transactional.shared.unit_of_work import UnitOfWork

MAX_PAGE_SIZE = 100
_State = TypeVar("_State", ProductCreated, ProductUpdated)


class CatalogUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the catalog repository attached."""

    catalog: CatalogRepository


@dataclass(frozen=True)
class NewVariant:
    """A variant as the seller enters it."""

    sku: str
    prices: Mapping[str, int]
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NewProduct:
    """A product as the seller enters it."""

    title: str
    category_id: str
    variants: Sequence[NewVariant]
    description: str = ""
    brand: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    images: Sequence[str] = ()


@dataclass(frozen=True)
class ProductChanges:
    """A seller's edit: new descriptive fields and/or new prices per SKU and currency."""

    title: str | None = None
    description: str | None = None
    brand: str | None = None
    prices: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProductPage:
    """One page of a product listing and the total number of matches."""

    items: list[Product]
    page: int
    page_size: int
    total: int


class CatalogService:
    """The Product Service of the seed."""

    def __init__(
        self,
        uow: Callable[[], CatalogUnitOfWork],
        sellers: SellerGate,
        *,
        shards: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._sellers = sellers
        self._shards = shards
        self._clock = clock

    # -- products ------------------------------------------------------------------------

    def create_product(self, customer_id: str, entered: NewProduct) -> Product:
        """List a product for the caller's approved seller and emit ``product.created``."""
        seller = self._sellers.require_approved_seller(customer_id)
        now = self._clock()
        variants = check_variants(
            [Variant(v.sku.strip(), dict(v.prices), dict(v.attributes)) for v in entered.variants]
        )
        value = uuid7()
        product_id = product_id_for(value, self._shards)
        product = Product(
            product_id=product_id,
            shard=shard_of(product_id),
            seller_id=seller.seller_id,
            title=check_text("title", entered.title, max_length=MAX_TITLE_LENGTH),
            description=check_text(
                "description",
                entered.description,
                max_length=MAX_DESCRIPTION_LENGTH,
                required=False,
            ),
            brand=_brand(entered.brand),
            category_id=entered.category_id,
            attributes=check_attributes("product", entered.attributes),
            variants=variants,
            images=check_images(entered.images),
            currency=default_currency(variants, REGION_CURRENCY.get(seller.region)),
            status="active",
            version=1,
            created_at=now,
            updated_at=now,
        )
        with self._uow() as uow:
            categories = {c.category_id: c for c in uow.catalog.categories()}
            path = category_path(product.category_id, categories)
            if not path:
                raise InvalidRequest(
                    f"unknown category {product.category_id!r}: see GET /v1/categories",
                    code="unknown_category",
                )
            uow.catalog.add_product(product)
            uow.emit(
                REGISTRY.new_event(
                    "product.created",
                    _snapshot(ProductCreated, product, path),
                    region=seller.region,
                    occurred_at=now,
                )
            )
            uow.commit()
        return product

    def update_product(self, customer_id: str, product_id: str, changes: ProductChanges) -> Product:
        """Edit the caller's product; emits ``product.updated`` (+ ``product.price_changed``)."""
        seller = self._sellers.require_approved_seller(customer_id)
        now = self._clock()
        with self._uow() as uow:
            product = uow.catalog.get(product_id, for_update=True)
            if product is None:
                raise NotFound(f"no product {product_id}", code="product_not_found")
            if product.seller_id != seller.seller_id:
                raise NotProductOwner(f"product {product_id} belongs to another seller")
            changed = _apply_fields(product, changes)
            price_changes = reprice(product, changes.prices)
            if price_changes:
                changed.append("variants")
            if not changed:
                return product
            product.version += 1
            product.updated_at = now
            uow.catalog.update_product(product)
            path = category_path(
                product.category_id, {c.category_id: c for c in uow.catalog.categories()}
            )
            uow.emit(
                REGISTRY.new_event(
                    "product.updated",
                    msgspec.structs.replace(
                        _snapshot(ProductUpdated, product, path), changed_fields=changed
                    ),
                    region=seller.region,
                    occurred_at=now,
                ),
                *(_price_changed(product, change, seller.region, now) for change in price_changes),
            )
            uow.commit()
        return product

    def product(self, product_id: str) -> Product:
        """A product with its variants; NotFound if there is none."""
        with self._uow() as uow:
            product = uow.catalog.get(product_id)
        if product is None:
            raise NotFound(f"no product {product_id}", code="product_not_found")
        return product

    def products(
        self,
        *,
        category_id: str | None = None,
        seller_id: str | None = None,
        page: int = 1,
        page_size: int = 20,
    ) -> ProductPage:
        """Active products, newest first; a category includes everything below it."""
        if page < 1 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidRequest(
                f"page must be >= 1 and page_size 1..{MAX_PAGE_SIZE}", code="invalid_page"
            )
        with self._uow() as uow:
            category_ids: set[str] | None = None
            if category_id is not None:
                categories = uow.catalog.categories()
                if category_id not in {c.category_id for c in categories}:
                    raise InvalidRequest(
                        f"unknown category {category_id!r}: see GET /v1/categories",
                        code="unknown_category",
                    )
                category_ids = descendants(category_id, categories)
            items, total = uow.catalog.find(
                ProductQuery(
                    category_ids=category_ids,
                    seller_id=seller_id,
                    offset=(page - 1) * page_size,
                    limit=page_size,
                )
            )
        return ProductPage(items, page, page_size, total)

    def offers(self, skus: Collection[str]) -> dict[str, SkuOffer]:
        """The offer of each existing SKU (unknown SKUs are absent), in one query."""
        wanted = {sku for sku in skus if sku}
        if not wanted:
            return {}
        with self._uow() as uow:
            return uow.catalog.offers(wanted)

    # -- categories ----------------------------------------------------------------------

    def categories(self) -> list[CategoryNode]:
        """The taxonomy as a forest, siblings by name."""
        with self._uow() as uow:
            return build_tree(uow.catalog.categories())

    def add_category(self, name: str, parent_id: str | None = None) -> Category:
        """Extend the taxonomy (admins); CategoryExists if the parent has one of that name."""
        with self._uow() as uow:
            parent: Category | None = None
            if parent_id is not None:
                parent = next(
                    (c for c in uow.catalog.categories() if c.category_id == parent_id), None
                )
                if parent is None:
                    raise InvalidRequest(
                        f"unknown parent category {parent_id!r}", code="unknown_category"
                    )
            category = new_category(name, parent)
            uow.catalog.add_category(category)
            uow.commit()
        return category


def _brand(brand: str | None) -> str | None:
    if brand is None:
        return None
    return check_text("brand", brand, max_length=MAX_BRAND_LENGTH, required=False) or None


def _apply_fields(product: Product, changes: ProductChanges) -> list[str]:
    changed: list[str] = []
    if changes.title is not None:
        title = check_text("title", changes.title, max_length=MAX_TITLE_LENGTH)
        if title != product.title:
            product.title = title
            changed.append("title")
    if changes.description is not None:
        description = check_text(
            "description", changes.description, max_length=MAX_DESCRIPTION_LENGTH, required=False
        )
        if description != product.description:
            product.description = description
            changed.append("description")
    if changes.brand is not None:
        brand = _brand(changes.brand)
        if brand != product.brand:
            product.brand = brand
            changed.append("brand")
    return changed


def _snapshot(kind: type[_State], product: Product, path: Sequence[Category]) -> _State:
    """The full product state events carry (search indexes it without calling back)."""
    currency = product.currency
    return kind(
        product_id=product.product_id,
        seller_id=product.seller_id,
        product_version=product.version,
        title=product.title,
        description=product.description,
        category_id=product.category_id,
        category_path=[c.name for c in path],
        brand=product.brand,
        status=product.status,
        price=Money(amount_minor=product.variants[0].prices[currency], currency=currency),
        variants=[
            ProductVariant(
                sku=v.sku,
                price=Money(amount_minor=v.prices[currency], currency=currency),
                attributes=dict(v.attributes),
            )
            for v in product.variants
        ],
        attributes=dict(product.attributes),
        image_urls=list(product.images),
    )


def _price_changed(product: Product, change: PriceChange, region: str, at: datetime) -> Envelope:
    return REGISTRY.new_event(
        "product.price_changed",
        ProductPriceChanged(
            product_id=product.product_id,
            sku=change.sku,
            seller_id=product.seller_id,
            old_price=Money(amount_minor=change.old, currency=change.currency),
            new_price=Money(amount_minor=change.new, currency=change.currency),
            reason="seller_update",
        ),
        region=region,
        occurred_at=at,
    )
