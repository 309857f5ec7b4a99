"""What `make bench-serving` serves: a generated catalog and everything built from it.

One generated corpus (``serving.search.corpus.build_search_corpus``) feeds every part, so the
ids agree: the tantivy index (built once per (n, seed) and cached under
``SOUK_HOME/bench/``: re-runs hard-link it instead of rebuilding), the catalog tables in
PostgreSQL (``COPY``: autosuggest reads the titles, recommendations describe products and
filter them), stock counters in Redis (recommendations keep in-stock items only), past
searches in Redis (autosuggest), a promoted ALS model and FAISS index over the first
``rec_items`` products, and fraud signals in the Feast online store with a promoted fraud
model (hot path: Feast read + rules + the classifier).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis

from serving.search.corpus import ADJECTIVES, CATALOG, COLOURS, build_index
from serving.search.model import ProductDoc
from souk.settings import Settings

REGIONS = ("eu", "us", "in")
# Bump when the cached index's layout or the corpus changes: old caches are then ignored.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Timed:
    """A step's name and how long it took."""

    step: str
    seconds: float


def cache_dir(settings: Settings, products: int, seed: int) -> Path:
    """Where the search index of ``products`` generated products (``seed``) is cached."""
    return settings.state_dir / "bench" / f"search-f{CACHE_FORMAT}-n{products}-s{seed}"


def cached_search_index(cache: Path, products: int, seed: int) -> bool:
    """Build the index into ``cache`` unless a complete one is there; True if it was built."""
    if (cache / "complete").exists():
        return False
    shutil.rmtree(cache, ignore_errors=True)
    staging = cache.with_name(cache.name + f".building-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    index = build_index(staging, products, seed, REGIONS)
    index.close()
    (staging / "complete").write_text(f"{products} products, seed {seed}\n")
    os.rename(staging, cache)  # complete or absent
    return True


def link_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` by hard links (tantivy's segment files never change in
    place), falling back to copies across file systems; symlinks stay symlinks."""

    def link(src: str, dst: str) -> object:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
        return dst

    shutil.copytree(source, target, symlinks=True, copy_function=link, dirs_exist_ok=True)
    (target / "complete").unlink(missing_ok=True)


def corpus_docs(products: int, seed: int) -> list[ProductDoc]:
    """The same documents the cached index holds."""
    from serving.search.corpus import build_search_corpus

    return list(build_search_corpus(products, seed, REGIONS))


# --- PostgreSQL: the catalog ----------------------------------------------------------------


def _copy_rows(connection: psycopg.Connection[Any], statement: str, rows: Iterable[str]) -> None:
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        buffer = io.StringIO()
        for n, row in enumerate(rows, 1):
            buffer.write(row)
            if n % 20_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def _field(value: str) -> str:
    """A text value for COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")


def load_catalog(dsn: str, docs: Sequence[ProductDoc]) -> None:
    """Products, variants and stock levels of ``docs`` (active, one SKU each) by ``COPY``."""
    now = datetime.now(UTC).isoformat()
    with psycopg.connect(dsn) as connection:
        _copy_rows(
            connection,
            "COPY products (product_id, shard, seller_id, title, description, brand, "
            "category_id, attributes, currency, status, created_at, updated_at) FROM STDIN",
            (
                "\t".join(
                    (
                        d.product_id,
                        str(int(d.product_id.split("_")[1], 16)),
                        d.seller_id,
                        _field(d.title),
                        _field(d.description),
                        _field(d.brand or ""),
                        d.category_id,
                        "{}",
                        d.currency,
                        "active",
                        now,
                        now,
                    )
                )
                + "\n"
                for d in docs
            ),
        )
        _copy_rows(
            connection,
            "COPY product_variants (sku, product_id, position, prices) FROM STDIN",
            (
                f"{d.skus[0]}\t{d.product_id}\t0\t"
                f"{json.dumps({d.currency: d.price_minor}, separators=(',', ':'))}\n"
                for d in docs
            ),
        )
        _copy_rows(
            connection,
            "COPY stock_levels (sku, warehouse_id, on_hand) FROM STDIN",
            (
                f"{sku}\t{warehouse}\t{units[0]}\n"
                for d in docs
                for sku, by_warehouse in d.stock.items()
                for warehouse, units in by_warehouse.items()
            ),
        )
        connection.execute("ANALYZE products")
        connection.execute("ANALYZE product_variants")
        connection.execute("ANALYZE stock_levels")


# --- Redis: stock counters and past searches ------------------------------------------------


def load_stock_counters(client: redis.Redis, docs: Sequence[ProductDoc]) -> None:
    """The inventory's live counters for ``docs`` in every warehouse (0 where none is held),
    so recommendations read Redis, not PostgreSQL's fallback."""
    from transactional.inventory.counters import counter_key

    warehouses = [f"wh_{region}_1" for region in REGIONS]
    pipe = client.pipeline(transaction=False)
    for n, doc in enumerate(docs, 1):
        for sku, by_warehouse in doc.stock.items():
            for warehouse in warehouses:
                held = by_warehouse.get(warehouse)
                pipe.set(counter_key((sku, warehouse)), held[0] if held else 0)
        if n % 5_000 == 0:
            pipe.execute()
    pipe.execute()


def past_queries(count: int, seed: int) -> list[tuple[str, str, float]]:
    """``count`` distinct (region, query, count) searches, Zipf-like, from the corpus words."""
    rng = random.Random(seed)
    brands = sorted({b.lower() for brands, _, _ in CATALOG.values() for b in brands})
    nouns = sorted({n.lower() for _, nouns, _ in CATALOG.values() for n in nouns})
    extras = [a.lower() for a in ADJECTIVES] + list(COLOURS) + ["cheap", "best", "new", "sale"]
    seen: set[tuple[str, str]] = set()
    out: list[tuple[str, str, float]] = []
    attempts = 0
    while len(out) < count and attempts < count * 50:
        attempts += 1
        words = [rng.choice(nouns)]
        if rng.random() < 0.7:
            words.insert(0, rng.choice(brands))
        if rng.random() < 0.6:
            words.insert(rng.randrange(len(words) + 1), rng.choice(extras))
        if rng.random() < 0.3:
            words.append(rng.choice(extras))
        region = REGIONS[rng.randrange(len(REGIONS))]
        text = " ".join(words)
        if (region, text) in seen:
            continue
        seen.add((region, text))
        out.append((region, text, float(max(1, int(500 / (1 + rng.paretovariate(1.1)))))))
    return out


def load_past_queries(client: redis.Redis, queries: Sequence[tuple[str, str, float]]) -> None:
    """The searches into autosuggest's counts, through its own store (as its consumer does)."""
    from serving.suggest.ports import QuerySeen
    from serving.suggest.redis_store import RedisCountStore

    store = RedisCountStore(client)
    batch: list[QuerySeen] = []
    for n, (region, text, weight) in enumerate(queries):
        batch.append(QuerySeen(f"bench-q-{n}", region, text, weight))
        if len(batch) == 2_000:
            store.apply(batch)
            batch = []
    store.apply(batch)


# --- models: ALS + FAISS, fraud ------------------------------------------------------------


def customer_ids(users: int) -> list[str]:
    """The generated customers known to the ALS model and the feature store."""
    return [f"cus_bench_{i:07d}" for i in range(users)]


def promote_recommendations(
    settings: Settings, product_ids: Sequence[str], users: int, factors: int = 64
) -> tuple[str, str]:
    """A random ALS model over ``product_ids`` and its FAISS index, promoted in the bench's
    registry: (ALS version, item-vector version). Latency, not relevance, is measured."""
    from models.registry import ModelRegistry
    from serving.recommendations.bench import promote_models, synthetic_models

    model = synthetic_models(product_ids, customer_ids(users), factors=factors)
    versions = promote_models(ModelRegistry(settings=settings), model)
    return versions.als, versions.item_vectors


def load_fraud_signals(settings: Settings, redis_url: str, users: int, seed: int) -> None:
    """Every generated customer's fraud signals in the Feast online store (as the streaming
    job writes them), the views registered first."""
    from features.store import apply, feature_store, push_signals

    store = feature_store(settings, redis_url)
    apply(store)
    rng = random.Random(seed)
    stamp = datetime.now(UTC) - timedelta(seconds=30)
    rows = []
    for customer in customer_ids(users):
        rows.append(
            {
                "customer_id": customer,
                "orders_1m": 0,
                "orders_1h": rng.randint(0, 2),
                "orders_24h": rng.randint(0, 5),
                "amount_mean_minor": rng.uniform(2_000, 20_000),
                "amount_std_minor": rng.uniform(500, 5_000),
                "amount_zscore": rng.gauss(0, 1),
                "ship_region_mismatch": int(rng.random() < 0.05),
                "ip_region_mismatch": int(rng.random() < 0.05),
                "max_line_quantity": rng.randint(1, 3),
                "new_account_high_value": 0,
                "account_age_s": rng.randint(86_400, 400 * 86_400),
                "event_timestamp": stamp,
            }
        )
    for start in range(0, len(rows), 1_000):
        push_signals(store, "customer_fraud_signals", rows[start : start + 1_000])


FRAUD_FEATURE_REFS = (
    "customer_fraud_signals:orders_24h",
    "customer_fraud_signals:amount_zscore",
    "customer_fraud_signals:account_age_s",
)


def promote_fraud_model(settings: Settings, seed: int, rows: int = 4_000) -> str:
    """A small gradient-boosted classifier on synthetic orders (the order's own features and
    three Feast signals), registered and promoted: the scorer's model path is exercised."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    from models.fraud.job import KIND, register_fraud_model
    from models.fraud.training import TrainedFraudModel
    from models.registry import ModelRegistry

    rng = np.random.default_rng(seed)
    features = ["total_minor", "units", "line_count"] + [
        ref.replace(":", "__") for ref in FRAUD_FEATURE_REFS
    ]
    total = rng.lognormal(9, 1, rows)
    units = rng.integers(1, 6, rows).astype(float)
    lines = np.minimum(units, rng.integers(1, 4, rows)).astype(float)
    orders = rng.poisson(1.5, rows).astype(float)
    zscore = rng.normal(0, 1, rows)
    age = rng.uniform(0, 400 * 86_400, rows)
    matrix = np.column_stack([total, units, lines, orders, zscore, age])
    odds = -4 + 0.8 * (zscore > 2) + 1.5 * (age < 86_400) + 0.4 * orders + 0.3 * (total > 50_000)
    labels = (rng.random(rows) < 1 / (1 + np.exp(-odds))).astype(int)
    model = HistGradientBoostingClassifier(max_iter=50, random_state=seed)
    with threadpool_limits(1):
        model.fit(matrix, labels)
    trained = TrainedFraudModel(
        model=model,
        features=features,
        feature_refs=list(FRAUD_FEATURE_REFS),
        metrics={"synthetic": True},
        params={"bench": True},
    )
    registry = ModelRegistry(settings=settings)
    version = register_fraud_model(registry, trained)
    registry.promote(KIND, version.id)
    return version.id


def timed(steps: list[Timed], name: str, began: float) -> None:
    """Record how long step ``name`` took since ``began`` (perf_counter)."""
    steps.append(Timed(name, time.perf_counter() - began))
