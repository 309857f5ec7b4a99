"""Recommenders on data with a planted answer, the Spark trainer, and MovieLens-100k.

Synthetic shop (fixed seed): Zipf popularity over the catalogue plus taste groups; each
customer belongs to one group and draws 80% of the interactions from the group's products.
A model that learns taste must put a customer's own group first and beat the popularity
baseline clearly; baskets with planted product pairs must give those pairs back as
"frequently bought together". No servers: the Spark test uses the session's local Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.evaluation.movielens import PUBLISHED, run_movielens
from models.evaluation.report import train_and_evaluate, write_html_report
from models.evaluation.split import cut_at_fraction, time_split
from models.recommenders.als import train_implicit, train_spark
from models.recommenders.artifact import FactorModel, interaction_matrix
from models.recommenders.fbt import train_fbt
from models.recommenders.item_knn import train_item_knn
from models.recommenders.popularity import train_popularity

PLANTED_USER = "c-planted"
START = datetime(2026, 10, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TasteData:
    """Gold-style interactions and the product ids of each taste group."""

    interactions: pd.DataFrame
    groups: list[set[str]]

    def seen(self, user: str) -> set[str]:
        """The products ``user`` interacted with."""
        rows = self.interactions[self.interactions["customer_id"] == user]
        return set(rows["product_id"])


def taste_data(
    *,
    seed: int = 7,
    users: int = 1500,
    items: int = 400,
    groups: int = 8,
    group_size: int = 25,
    group_share: float = 0.8,
) -> TasteData:
    """Zipf popularity + taste groups (group products sit below the head of the catalogue)."""
    rng = np.random.default_rng(seed)
    product = np.array([f"p{i:04d}" for i in range(items)], dtype=object)
    popularity = 1.0 / np.arange(1, items + 1) ** 1.1
    within = 1.0 / np.arange(1, group_size + 1) ** 0.8  # some group products sell more
    within /= within.sum()
    first = 20  # the 20 best-sellers belong to no group
    counts = 4 + rng.geometric(1 / 12, users)
    user = np.repeat(np.arange(users), counts)
    group = user % groups
    own = rng.random(len(user)) < group_share
    in_group = first + group * group_size + rng.choice(group_size, len(user), p=within)
    anywhere = rng.choice(items, len(user), p=popularity / popularity.sum())
    events = pd.DataFrame(
        {
            "customer_id": [f"c{u:05d}" for u in user],
            "product_id": product[np.where(own, in_group, anywhere)],
            # view 1, cart 3, purchase 5: the gold job's weighting, without the decay
            "strength": rng.choice([1.0, 3.0, 5.0], len(user), p=[0.7, 0.2, 0.1]),
            "last_at": START + pd.to_timedelta(rng.integers(0, 60 * 86400, len(user)), unit="s"),
        }
    )
    # The planted customer: three purchases in group 0, nothing else.
    planted = pd.DataFrame(
        {
            "customer_id": PLANTED_USER,
            "product_id": product[[first + 3, first + 11, first + 17]],
            "strength": 5.0,
            "last_at": START,
        }
    )
    interactions = (
        pd.concat([events, planted], ignore_index=True)
        .groupby(["customer_id", "product_id"], as_index=False)
        .agg(
            strength=("strength", "sum"),
            last_at=("last_at", "max"),
            events=("strength", "size"),
        )
    )
    members = [
        set(product[first + g * group_size : first + (g + 1) * group_size]) for g in range(groups)
    ]
    return TasteData(interactions, members)


@pytest.fixture(scope="module")
def shop() -> TasteData:
    """The synthetic shop shared by this module's tests."""
    return taste_data()


def in_group(recommendations: list[tuple[str, float]], group: set[str]) -> int:
    """How many of the recommended products belong to ``group``."""
    return sum(1 for item, _ in recommendations if item in group)


def test_als_ranks_the_planted_users_taste_group_first(shop: TasteData) -> None:
    model = train_implicit(shop.interactions)
    assert model.user_factors.shape == (len(model.user_ids), 64)
    recommendations = model.recommend(PLANTED_USER, 10, exclude=shop.seen(PLANTED_USER))
    assert len(recommendations) == 10
    assert in_group(recommendations, shop.groups[0]) >= 9, recommendations
    assert not shop.seen(PLANTED_USER) & {item for item, _ in recommendations}


def test_als_beats_popularity_clearly_on_a_time_split(shop: TasteData, tmp_path: Path) -> None:
    split = time_split(shop.interactions, cut_at_fraction(shop.interactions, 0.2))
    summary = train_and_evaluate(
        {
            "als": train_implicit,
            "item_knn": train_item_knn,
            "popularity": train_popularity,
        },
        split,
        k=10,
        dataset="synthetic taste",
    )
    scores = summary["models"]
    print({name: {k: v for k, v in s.items() if "@" in k} for name, s in scores.items()})
    als, knn, popular = scores["als"], scores["item_knn"], scores["popularity"]
    assert als["precision@10"] >= 2 * popular["precision@10"]
    assert als["ndcg@10"] >= 2 * popular["ndcg@10"]
    assert knn["precision@10"] >= 2 * popular["precision@10"]
    assert als["coverage@10"] > popular["coverage@10"]
    report = write_html_report(summary, tmp_path / "report.html")
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 2 and "item_knn" in html


def test_item_knn_neighbours_are_the_taste_group(shop: TasteData) -> None:
    model = train_item_knn(shop.interactions, neighbours=30)
    for group in shop.groups:
        item = min(group)
        neighbours = model.similar_items(item, 10)
        assert in_group(neighbours, group) == 10, (item, neighbours)
    recommendations = model.recommend(PLANTED_USER, 10, exclude=shop.seen(PLANTED_USER))
    assert in_group(recommendations, shop.groups[0]) == 10
    basket = sorted(shop.groups[3])[:2]
    assert in_group(model.recommend_items(basket, 5), shop.groups[3]) == 5


def baskets_with_planted_pairs(
    pairs: list[tuple[str, str]], *, seed: int = 11, orders: int = 3000, planted_orders: int = 40
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(co_purchases, item_stats) as the gold job builds them, from random Zipf baskets in
    which every planted pair is bought together in ``planted_orders`` orders."""
    rng = np.random.default_rng(seed)
    catalogue = np.array([f"p{i:04d}" for i in range(300)], dtype=object)
    popularity = 1.0 / np.arange(1, 301)
    popularity /= popularity.sum()
    baskets = [set(rng.choice(catalogue, rng.integers(1, 5), p=popularity)) for _ in range(orders)]
    for a, b in pairs:
        for index in rng.choice(orders, planted_orders, replace=False):
            baskets[index] |= {a, b}
    together: dict[tuple[str, str], int] = {}
    holding: dict[str, int] = {}
    for basket in baskets:
        for product in basket:
            holding[product] = holding.get(product, 0) + 1
        for pair in combinations(sorted(basket), 2):
            together[pair] = together.get(pair, 0) + 1
    co_purchases = pd.DataFrame(
        [(a, b, n) for (a, b), n in together.items()], columns=["product_a", "product_b", "orders"]
    )
    item_stats = pd.DataFrame({"product_id": list(holding), "purchases": list(holding.values())})
    return co_purchases, item_stats


def test_fbt_returns_the_planted_partners() -> None:
    # Partners of mid- and low-popularity products; p0001 is a best-seller, which lift must
    # not let crowd out the real partner.
    pairs = [("p0040", "p0123"), ("p0077", "p0250"), ("p0001", "p0200"), ("p0150", "p0151")]
    co_purchases, item_stats = baskets_with_planted_pairs(pairs)
    model = train_fbt(co_purchases, item_stats, top_k=5, min_orders=3, total_orders=3000)
    for a, b in pairs:
        assert model.partners_of(a, 1)[0][0] == b, model.details(a, 3)
        assert model.partners_of(b, 1)[0][0] == a, model.details(b, 3)
        best = model.details(a, 1)[0]
        assert best["lift"] > 2 and best["orders"] >= 40  # well above chance (lift 1)
        assert best["confidence"] == pytest.approx(
            best["orders"] / float(item_stats.set_index("product_id").loc[a, "purchases"])
        )
    basket = model.for_basket(["p0040", "p0077"], 2)
    assert {item for item, _ in basket} == {"p0123", "p0250"}
    # Without item_stats and the order total (n_A from the pairs, N estimated) the planted
    # partners still come first.
    bare = train_fbt(co_purchases, top_k=5, min_orders=3)
    assert all(bare.partners_of(a, 1)[0][0] == b for a, b in pairs)


def test_spark_mllib_als_gives_the_same_artifact(spark: Any) -> None:
    small = taste_data(seed=5, users=600, items=150, groups=4, group_size=20)
    frame = spark.createDataFrame(small.interactions[["customer_id", "product_id", "strength"]])
    # MLlib scales regParam by each user's interaction count and uses confidence 1 + alpha·r:
    # these values put the planted group first for every seed and block count tried.
    model = train_spark(spark, frame, factors=16, iterations=8, regularization=1.0, alpha=10.0)
    assert isinstance(model, FactorModel)
    expected = interaction_matrix(small.interactions)
    assert model.user_ids.tolist() == expected.users.tolist()
    assert model.item_ids.tolist() == expected.items.tolist()
    assert model.user_factors.shape == (len(expected.users), 16)
    assert model.item_factors.shape == (len(expected.items), 16)
    assert model.user_factors.dtype == np.float32 and model.params["trainer"] == "spark-mllib"
    assert np.abs(model.user_factors).sum(axis=1).min() > 0  # every user got factors
    recommendations = model.recommend(PLANTED_USER, 10, exclude=small.seen(PLANTED_USER))
    assert in_group(recommendations, small.groups[0]) >= 8, recommendations


def test_movielens_als_reaches_the_published_sar_precision(tmp_path: Path) -> None:
    summary = run_movielens(k=10, seed=42, report_path=tmp_path / "movielens.html")
    ours = summary["models"]
    print({name: (s["precision@10"], s["ndcg@10"]) for name, s in ours.items()})
    assert summary["split"]["users"] == 943 and summary["split"]["items"] == 1682
    assert ours["als"]["precision@10"] >= PUBLISHED["SAR"]["precision@10"]
    assert ours["als"]["ndcg@10"] >= PUBLISHED["SAR"]["ndcg@10"]
    assert ours["als"]["precision@10"] > ours["popularity"]["precision@10"] + 0.1
    assert Path(summary["report"]).read_text().count("data:image/png;base64,") == 2


def test_cli_evaluates_the_lake_gold_table(
    shop: TasteData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import pyarrow as pa
    from typer.testing import CliRunner

    from jobs.lake import table_store
    from souk.models_cli import models_app
    from souk.settings import Settings, get_settings

    monkeypatch.setenv("SOUK_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        settings = Settings(_env_file=None, home=tmp_path)  # type: ignore[call-arg]
        gold = pa.Table.from_pandas(shop.interactions, preserve_index=False)
        table_store(settings).overwrite("gold/user_item_interactions", gold)
        result = CliRunner().invoke(models_app, ["evaluate", "--json"])
        assert result.exit_code == 0, result.output
        summary = json.loads(result.output)
        assert set(summary["models"]) == {"als", "item_knn", "popularity"}
        assert (
            summary["models"]["als"]["precision@10"]
            > summary["models"]["popularity"]["precision@10"]
        )
        assert Path(summary["report"]).is_file()
        assert Path(summary["report"]).parent == tmp_path / "reports"
    finally:
        get_settings.cache_clear()
