"""Ranking metrics on tiny cases computed by hand (the arithmetic is spelled out per case)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from models.evaluation.metrics import (
    average_precision_at_k,
    catalog_coverage,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from models.evaluation.split import per_user_split, time_split

# Hits at ranks 1 and 3; "f" is relevant but never recommended.
RECOMMENDED = ["a", "b", "c", "d", "e"]
RELEVANT = {"a", "c", "f"}
LOG2_3 = math.log2(3)


def test_precision_counts_hits_over_k() -> None:
    assert precision_at_k(RECOMMENDED, RELEVANT, 5) == pytest.approx(2 / 5)
    assert precision_at_k(RECOMMENDED, RELEVANT, 2) == pytest.approx(1 / 2)
    assert precision_at_k(RECOMMENDED, RELEVANT, 1) == pytest.approx(1.0)


def test_precision_divides_by_k_even_for_short_lists() -> None:
    assert precision_at_k(["x", "a"], {"a"}, 5) == pytest.approx(1 / 5)


def test_recall_counts_hits_over_relevant() -> None:
    assert recall_at_k(RECOMMENDED, RELEVANT, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RECOMMENDED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RECOMMENDED, set(), 5) == 0.0


def test_ndcg_discounts_by_log2_of_rank_plus_one() -> None:
    # DCG@5 = 1/log2(2) + 1/log2(4) = 1.5; IDCG@5 (3 relevant) = 1 + 1/log2(3) + 1/2.
    assert ndcg_at_k(RECOMMENDED, RELEVANT, 5) == pytest.approx(1.5 / (1.5 + 1 / LOG2_3))
    # DCG@2 = 1; IDCG@2 = 1 + 1/log2(3) (only two slots for three relevant items).
    assert ndcg_at_k(RECOMMENDED, RELEVANT, 2) == pytest.approx(1 / (1 + 1 / LOG2_3))
    # A lone hit at rank 2 of one relevant item: (1/log2 3) / 1.
    assert ndcg_at_k(["x", "a"], {"a"}, 5) == pytest.approx(1 / LOG2_3)


def test_ndcg_is_one_for_a_perfect_ranking() -> None:
    assert ndcg_at_k(["a", "c", "f", "z"], RELEVANT, 3) == pytest.approx(1.0)
    assert ndcg_at_k(["a", "c", "f", "z"], RELEVANT, 10) == pytest.approx(1.0)


def test_average_precision_averages_precision_at_each_hit() -> None:
    # P@1 = 1 at the first hit, P@3 = 2/3 at the second; divided by min(3 relevant, 5).
    assert average_precision_at_k(RECOMMENDED, RELEVANT, 5) == pytest.approx((1 + 2 / 3) / 3)
    # Only the hit at rank 1 is inside k = 2; divided by min(3, 2) = 2.
    assert average_precision_at_k(RECOMMENDED, RELEVANT, 2) == pytest.approx(1 / 2)
    assert average_precision_at_k(["x", "a"], {"a"}, 5) == pytest.approx(1 / 2)


def test_no_hits_score_zero() -> None:
    for metric in (precision_at_k, recall_at_k, ndcg_at_k, average_precision_at_k):
        assert metric(["x", "y"], {"a"}, 2) == 0.0
        assert metric([], {"a"}, 2) == 0.0


@pytest.mark.parametrize("metric", [precision_at_k, recall_at_k, ndcg_at_k, average_precision_at_k])
def test_k_must_be_positive(metric: object) -> None:
    with pytest.raises(ValueError, match="k must be positive"):
        metric(["a"], {"a"}, 0)  # type: ignore[operator]


def test_catalog_coverage_counts_distinct_items_in_the_top_k() -> None:
    lists = [["a", "b", "q"], ["b", "c"]]
    assert catalog_coverage(lists, 10, 2) == pytest.approx(3 / 10)  # a, b, c
    assert catalog_coverage(lists, 10, 1) == pytest.approx(2 / 10)  # a, b
    with pytest.raises(ValueError):
        catalog_coverage(lists, 0, 1)


def test_ranking_metrics_average_over_users_with_relevant_items() -> None:
    recommendations = {"u1": RECOMMENDED, "u3": ["a"]}
    # u2 has a relevant item but no recommendations (scores 0); u3 has nothing relevant (skipped).
    relevant = {"u1": RELEVANT, "u2": {"z"}, "u3": set()}
    result = ranking_metrics(recommendations, relevant, 5, catalog_size=20)
    assert result["users"] == 2
    assert result["precision@5"] == pytest.approx((2 / 5) / 2)
    assert result["recall@5"] == pytest.approx((2 / 3) / 2)
    assert result["ndcg@5"] == pytest.approx((1.5 / (1.5 + 1 / LOG2_3)) / 2)
    assert result["map@5"] == pytest.approx(((1 + 2 / 3) / 3) / 2)
    assert result["coverage@5"] == pytest.approx(5 / 20)  # u1's five items; u3 not evaluated


def test_ranking_metrics_of_nobody_are_zero() -> None:
    result = ranking_metrics({}, {}, 10)
    assert result["precision@10"] == 0.0
    assert result["users"] == 0


def frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """An interaction table from (customer, product, ISO time) rows."""
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "product_id": [r[1] for r in rows],
            "strength": 1.0,
            "last_at": pd.to_datetime([r[2] for r in rows], utc=True),
        }
    )


def test_time_split_trains_before_the_cut_and_tests_warm_users_after() -> None:
    data = frame(
        [
            ("u1", "a", "2026-11-01"),
            ("u1", "b", "2026-11-20"),
            ("u2", "a", "2026-11-02"),
            ("u3", "c", "2026-11-25"),  # cold user: only after the cut
        ]
    )
    split = time_split(data, pd.Timestamp("2026-11-15", tz="UTC"))
    assert sorted(split.train["product_id"]) == ["a", "a"]
    assert split.relevant() == {"u1": {"b"}}
    assert split.seen() == {"u1": ["a"], "u2": ["a"]}
    everyone = time_split(data, pd.Timestamp("2026-11-15"), warm_users_only=False)
    assert set(everyone.relevant()) == {"u1", "u3"}


def test_per_user_split_holds_out_a_quarter_of_each_user() -> None:
    rows = [(f"u{u}", f"i{i}", "2026-11-01") for u in range(20) for i in range(8)]
    rows.append(("solo", "i0", "2026-11-01"))
    split = per_user_split(frame(rows), test_fraction=0.25, seed=3)
    held_out = split.relevant()
    assert all(len(held_out[f"u{u}"]) == 2 for u in range(20))  # 8 - round(0.75 * 8)
    assert "solo" not in held_out  # round(0.75 * 1) = 1: a single row stays in train
    assert len(split.train) + len(split.test) == len(rows)
    again = per_user_split(frame(rows), test_fraction=0.25, seed=3)
    assert again.relevant() == held_out  # seeded: reproducible
