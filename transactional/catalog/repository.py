"""PostgreSQL adapter of the catalog repository, and the slice's unit of work."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any, Self

from sqlalchemy import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from transactional.catalog.model import (
    Category,
    CategoryExists,
    DuplicateSku,
    Product,
    ProductQuery,
    SkuOffer,
    Variant,
)
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_PRODUCT_COLUMNS = (
    "product_id, shard, seller_id, title, description, brand, category_id, attributes, images, "
    "currency, status, version, created_at, updated_at"
)
_UNIQUE_VIOLATION = "23505"


# Shared with the pipelined adapter (``pipelined.py``).
OFFERS = (
    "SELECT v.sku, v.product_id, p.seller_id, p.title, p.status, v.prices, p.category_id "
    "FROM product_variants v JOIN products p ON p.product_id = v.product_id "
    "WHERE v.sku = ANY(:skus)"
)


class SqlCatalogRepository:
    """Categories, products and SKUs in ``categories``, ``products``, ``product_variants``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # -- categories ------------------------------------------------------------------------

    def categories(self) -> list[Category]:
        """Every category."""
        rows = self._connection.execute(
            sql("SELECT category_id, name, slug, parent_id FROM categories")
        ).mappings()
        return [Category(**row) for row in rows]

    def add_category(self, category: Category) -> None:
        """Insert a category; CategoryExists if its id or sibling slug is taken."""
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    sql(
                        "INSERT INTO categories (category_id, name, slug, parent_id) "
                        "VALUES (:category_id, :name, :slug, :parent_id)"
                    ),
                    {
                        "category_id": category.category_id,
                        "name": category.name,
                        "slug": category.slug,
                        "parent_id": category.parent_id,
                    },
                )
        except IntegrityError as error:
            if _sqlstate(error) != _UNIQUE_VIOLATION:
                raise
            raise CategoryExists(
                f"category {category.name!r} already exists there",
                category_id=category.category_id,
            ) from None

    # -- products --------------------------------------------------------------------------

    def add_product(self, product: Product) -> None:
        """Insert a product with its variants; DuplicateSku if any SKU exists."""
        skus = [v.sku for v in product.variants]
        taken = self._taken(skus)
        if taken:
            raise DuplicateSku(f"SKU already listed: {', '.join(taken)}", skus=taken)
        try:
            with self._connection.begin_nested():
                self._connection.execute(
                    sql(
                        f"INSERT INTO products ({_PRODUCT_COLUMNS}) VALUES (:product_id, :shard, "
                        ":seller_id, :title, :description, :brand, :category_id, "
                        "CAST(:attributes AS jsonb), CAST(:images AS jsonb), :currency, :status, "
                        ":version, :created_at, :updated_at)"
                    ),
                    {
                        "product_id": product.product_id,
                        "shard": product.shard,
                        "seller_id": product.seller_id,
                        "title": product.title,
                        "description": product.description,
                        "brand": product.brand,
                        "category_id": product.category_id,
                        "attributes": json.dumps(product.attributes),
                        "images": json.dumps(product.images),
                        "currency": product.currency,
                        "status": product.status,
                        "version": product.version,
                        "created_at": product.created_at,
                        "updated_at": product.updated_at,
                    },
                )
                self._connection.execute(
                    sql(
                        "INSERT INTO product_variants (sku, product_id, position, attributes, "
                        "prices) VALUES (:sku, :product_id, :position, "
                        "CAST(:attributes AS jsonb), CAST(:prices AS jsonb))"
                    ),
                    [
                        {
                            "sku": v.sku,
                            "product_id": product.product_id,
                            "position": position,
                            "attributes": json.dumps(v.attributes),
                            "prices": json.dumps(v.prices),
                        }
                        for position, v in enumerate(product.variants)
                    ],
                )
        except IntegrityError as error:
            # A concurrent listing took a SKU between the check above and the insert.
            if _sqlstate(error) != _UNIQUE_VIOLATION:
                raise
            taken = self._taken(skus) or skus
            raise DuplicateSku(f"SKU already listed: {', '.join(taken)}", skus=taken) from None

    def get(self, product_id: str, *, for_update: bool = False) -> Product | None:
        """A product with its variants, or None; ``for_update`` locks it for a change."""
        lock = " FOR UPDATE" if for_update else ""
        row = (
            self._connection.execute(
                sql(f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE product_id = :id{lock}"),
                {"id": product_id},
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return _product(row, self._variants([product_id])[product_id])

    def update_product(self, product: Product) -> None:
        """Persist a changed product (descriptive fields, version, variant prices)."""
        self._connection.execute(
            sql(
                "UPDATE products SET title = :title, description = :description, brand = :brand, "
                "status = :status, version = :version, updated_at = :updated_at "
                "WHERE product_id = :product_id"
            ),
            {
                "title": product.title,
                "description": product.description,
                "brand": product.brand,
                "status": product.status,
                "version": product.version,
                "updated_at": product.updated_at,
                "product_id": product.product_id,
            },
        )
        self._connection.execute(
            sql(
                "UPDATE product_variants SET prices = CAST(:prices AS jsonb) "
                "WHERE sku = :sku AND product_id = :product_id"
            ),
            [
                {"prices": json.dumps(v.prices), "sku": v.sku, "product_id": product.product_id}
                for v in product.variants
            ],
        )

    def find(self, query: ProductQuery) -> tuple[list[Product], int]:
        """Active products matching the query, newest first, and how many match."""
        where = ["status = 'active'"]
        params: dict[str, Any] = {"limit": query.limit, "offset": query.offset}
        if query.category_ids is not None:
            where.append("category_id = ANY(:category_ids)")
            params["category_ids"] = sorted(query.category_ids)
        if query.seller_id is not None:
            where.append("seller_id = :seller_id")
            params["seller_id"] = query.seller_id
        condition = " AND ".join(where)
        rows = (
            self._connection.execute(
                sql(
                    f"SELECT {_PRODUCT_COLUMNS} FROM products WHERE {condition} "
                    "ORDER BY created_at DESC, product_id DESC LIMIT :limit OFFSET :offset"
                ),
                params,
            )
            .mappings()
            .all()
        )
        total = self._connection.execute(
            sql(f"SELECT count(*) FROM products WHERE {condition}"), params
        ).scalar_one()
        variants = self._variants([row["product_id"] for row in rows])
        return [_product(row, variants[row["product_id"]]) for row in rows], int(total)

    def offers(self, skus: Collection[str]) -> dict[str, SkuOffer]:
        """The offer of each existing SKU among ``skus``, in one query."""
        rows = self._connection.execute(
            sql(OFFERS),
            {"skus": list(skus)},
        ).mappings()
        return {
            row["sku"]: SkuOffer(
                sku=row["sku"],
                product_id=row["product_id"],
                seller_id=row["seller_id"],
                title=row["title"],
                status=row["status"],
                prices={str(c): int(a) for c, a in row["prices"].items()},
                category_id=row["category_id"],
            )
            for row in rows
        }

    # -- internals -------------------------------------------------------------------------

    def _taken(self, skus: Sequence[str]) -> list[str]:
        rows = self._connection.execute(
            sql("SELECT sku FROM product_variants WHERE sku = ANY(:skus) ORDER BY sku"),
            {"skus": list(skus)},
        ).scalars()
        return [str(sku) for sku in rows]

    def _variants(self, product_ids: Sequence[str]) -> dict[str, list[Variant]]:
        variants: dict[str, list[Variant]] = defaultdict(list)
        if not product_ids:
            return variants
        rows = self._connection.execute(
            sql(
                "SELECT product_id, sku, attributes, prices FROM product_variants "
                "WHERE product_id = ANY(:ids) ORDER BY product_id, position"
            ),
            {"ids": list(product_ids)},
        ).mappings()
        for row in rows:
            variants[row["product_id"]].append(
                Variant(
                    sku=row["sku"],
                    prices={str(c): int(a) for c, a in row["prices"].items()},
                    attributes={str(k): str(v) for k, v in row["attributes"].items()},
                )
            )
        return variants


def _sqlstate(error: IntegrityError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _product(row: RowMapping, variants: list[Variant]) -> Product:
    return Product(
        product_id=row["product_id"],
        shard=row["shard"],
        seller_id=row["seller_id"],
        title=row["title"],
        description=row["description"],
        brand=row["brand"],
        category_id=row["category_id"],
        attributes=dict(row["attributes"]),
        variants=variants,
        images=list(row["images"]),
        currency=row["currency"].strip(),
        status=row["status"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SqlCatalogUnitOfWork(SqlUnitOfWork):
    """A transaction with ``catalog`` attached."""

    catalog: SqlCatalogRepository

    def __enter__(self) -> Self:
        super().__enter__()
        self.catalog = SqlCatalogRepository(self.connection)
        return self
