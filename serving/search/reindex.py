"""Full rebuilds from PostgreSQL (the catalog and stock levels) into a new index version."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, text

from serving.search.indexer import micros
from serving.search.model import ProductDoc
from serving.search.ports import SearchIndex

_PRODUCTS = text(
    """
    SELECT p.product_id, p.seller_id, s.region, p.version, p.title, p.description, p.brand,
           p.category_id, p.status, p.currency, p.attributes, p.images, p.created_at,
           (SELECT json_agg(json_build_object('sku', v.sku, 'prices', v.prices)
                            ORDER BY v.position)
              FROM product_variants v WHERE v.product_id = p.product_id) AS variants
      FROM products p JOIN sellers s ON s.seller_id = p.seller_id
     WHERE s.region = :region
     ORDER BY p.product_id
    """
)
_STOCK = text(
    """
    SELECT l.sku, l.warehouse_id, l.on_hand - l.reserved AS available, l.updated_at
      FROM stock_levels l
      JOIN product_variants v ON v.sku = l.sku
      JOIN products p ON p.product_id = v.product_id
      JOIN sellers s ON s.seller_id = p.seller_id
     WHERE s.region = :region
    """
)
_CATEGORIES = text("SELECT category_id, parent_id, name FROM categories")
_PRIME_VALUES = frozenset({"true", "yes", "1"})


def catalog_documents(engine: Engine, region: str) -> Iterator[ProductDoc]:
    """Every product of the region's sellers, with its stock, as PostgreSQL holds it now."""
    with engine.connect() as connection:
        categories = {
            row.category_id: (row.parent_id, row.name) for row in connection.execute(_CATEGORIES)
        }
        stock: dict[str, dict[str, list[int]]] = {}
        for row in connection.execute(_STOCK, {"region": region}):
            stock.setdefault(row.sku, {})[row.warehouse_id] = [
                max(0, int(row.available)),
                micros(row.updated_at),
            ]
        rows = connection.execution_options(stream_results=True, yield_per=2000).execute(
            _PRODUCTS, {"region": region}
        )
        for row in rows:
            variants = row.variants or []
            skus = [str(v["sku"]) for v in variants]
            prices = variants[0]["prices"] if variants else {}
            attributes = row.attributes or {}
            yield ProductDoc(
                product_id=row.product_id,
                region=row.region,
                seller_id=row.seller_id,
                version=int(row.version),
                title=row.title,
                description=row.description or "",
                brand=row.brand,
                category_id=row.category_id,
                category_path=_path(row.category_id, categories),
                status=row.status,
                currency=row.currency.strip(),
                price_minor=int(prices.get(row.currency.strip(), 0)),
                skus=skus,
                prime=str(attributes.get("prime", "")).lower() in _PRIME_VALUES,
                image_url=(row.images or [None])[0],
                created_us=micros(row.created_at),
                stock={sku: stock[sku] for sku in skus if sku in stock},
            )


def _path(category_id: str, categories: dict[str, tuple[str | None, str]]) -> list[str]:
    names: list[str] = []
    current: str | None = category_id
    while current is not None and current in categories and len(names) < 16:
        parent, name = categories[current]
        names.append(name)
        current = parent
    return names[::-1]


@dataclass(frozen=True)
class Reindexed:
    """What a rebuild did."""

    region: str
    version: str
    previous: str | None
    documents: int


def reindex(index: SearchIndex, engine: Engine, region: str, *, chunk: int = 1000) -> Reindexed:
    """Build a new version of the region from PostgreSQL and swap it in atomically.

    Popularity is not in PostgreSQL: it is carried over from the current version.
    """
    previous = index.current_version(region)
    count = 0

    def documents() -> Iterator[ProductDoc]:
        nonlocal count
        batch: list[ProductDoc] = []
        for doc in catalog_documents(engine, region):
            batch.append(doc)
            if len(batch) >= chunk:
                yield from _with_popularity(index, region, batch)
                count += len(batch)
                batch = []
        yield from _with_popularity(index, region, batch)
        count += len(batch)

    version = index.build_version(region, documents())
    index.activate(region, version)
    return Reindexed(region, version, previous, count)


def _with_popularity(
    index: SearchIndex, region: str, docs: Sequence[ProductDoc]
) -> list[ProductDoc]:
    if not docs:
        return []
    held = index.get(region, [d.product_id for d in docs])
    for doc in docs:
        old = held.get(doc.product_id)
        if old is not None:
            doc.popularity = old.popularity
    return list(docs)


def rollback(index: SearchIndex, region: str, to: str | None = None) -> tuple[str | None, str]:
    """Make ``to`` (default: the version before the current one) current; (from, to)."""
    current = index.current_version(region)
    if current is None:
        raise ValueError(f"region {region} has no index yet: run `souk search reindex`")
    names = [v.name for v in index.versions(region)]
    if to is None:
        older = [n for n in names if int(n[1:]) < int(current[1:])]
        if not older:
            raise ValueError(f"region {region}: no version older than {current} to roll back to")
        to = older[-1]
    elif to not in names:
        raise ValueError(f"region {region}: no version {to!r} (kept: {', '.join(names)})")
    index.activate(region, to)
    return current, to
