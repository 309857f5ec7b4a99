"""The scheduled model jobs on real Delta tables: train_als → item_embeddings, registered.

Gold tables are written straight into a private lake (the Spark jobs that build them have
tests of their own); the catalog's bronze events give the products' text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from jobs.lake.store import table_store
from models import jobs as model_jobs
from models.recommenders.artifact import FactorModel
from models.registry import ModelRegistry
from models.vector_index import load_index
from schemas.envelope import Envelope
from schemas.examples import EXAMPLES
from schemas.registry import REGISTRY
from souk.settings import Settings
from tests.integration.lake.conftest import write_bronze
from tests.integration.models.test_recommenders import (
    PLANTED_USER,
    baskets_with_planted_pairs,
    taste_data,
)

pytestmark = pytest.mark.integration

#: Per taste group, words its products' titles share (the text side of the vectors).
THEMES = ["trail running", "espresso coffee", "yoga mat", "guitar string", "baby stroller",
          "garden hose", "gaming mouse", "watercolor paint"]  # fmt: skip


def catalog_events(products: list[str], group_of: dict[str, int]) -> list[Envelope]:
    """A product.created per product, titled after its taste group's theme."""
    base = dict(EXAMPLES["product.created"])
    when = datetime(2026, 9, 1, tzinfo=UTC)
    events = []
    for i, product in enumerate(products):
        group = group_of.get(product)
        theme = THEMES[group] if group is not None else "assorted item"
        payload = {
            **base,
            "product_id": product,
            "title": f"{theme.title()} model {i}",
            "description": f"A {theme} for everyday use.",
            "category_path": [theme],
        }
        events.append(
            REGISTRY.new_event(
                "product.created", payload, region="eu", occurred_at=when + timedelta(seconds=i)
            )
        )
    return events


def test_train_als_then_item_embeddings_register_promote_and_index(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path / "home")  # type: ignore[call-arg]
    shop = taste_data(users=600, items=240, groups=8, group_size=25)
    store = table_store(settings)
    store.overwrite("gold/user_item_interactions", pa.Table.from_pandas(shop.interactions))
    group = sorted(shop.groups[0])
    co_purchases, item_stats = baskets_with_planted_pairs([(group[0], group[1])])
    store.overwrite("gold/co_purchases", pa.Table.from_pandas(co_purchases))
    store.overwrite("gold/item_stats", pa.Table.from_pandas(item_stats))
    products = sorted(set(shop.interactions["product_id"]) | {"p-new-trail"})
    group_of = {p: g for g, members in enumerate(shop.groups) for p in members}
    group_of["p-new-trail"] = 0  # a cold-start product: text only, no interactions
    write_bronze(store, catalog_events(products, group_of), datetime.now(UTC))

    als_run = model_jobs.train_als(settings)
    vectors_run = model_jobs.item_embeddings(settings)

    registry = ModelRegistry(settings=settings)
    assert als_run.rows_in == len(shop.interactions)
    assert {"models/als", "models/item_knn", "models/fbt"} <= set(als_run.rows_out)
    als_version = registry.promoted("als")
    assert als_version is not None and als_version.metrics["precision@10"] > 0
    als = FactorModel.load(als_version.path)
    top = [item for item, _ in als.recommend(PLANTED_USER, 10, exclude=shop.seen(PLANTED_USER))]
    assert sum(item in shop.groups[0] for item in top) >= 8
    fbt = registry.promoted("fbt")
    assert fbt is not None
    # the evaluation: ALS clearly beats popularity, and its report exists
    figures = model_jobs.latest_figures(settings)
    metrics = figures["metrics"]
    assert metrics["als"]["precision@10"] > 2 * metrics["popularity"]["precision@10"]
    assert Path(figures["report"]).is_file()
    # item vectors: every product (the cold-start one too) in a FAISS index of the version
    assert vectors_run.rows_out["models/item_vectors"] == len(products)
    vectors = registry.promoted("item_vectors")
    assert vectors is not None and vectors.params["als_version"] == als_version.id
    index = load_index(vectors.path)
    assert len(index) == len(products)
    assert figures["faiss"]["recall@10 vs exact"] >= 0.9
    similar = [item for item, _ in index.similar("p-new-trail", 10)]
    assert sum(item in shop.groups[0] for item in similar) >= 6
