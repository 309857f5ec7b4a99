"""The pure recommendations domain: filtering, taste vectors, re-ranking, access, scopes."""

from __future__ import annotations

import numpy as np
import pytest

from serving.recommendations.model import (
    MAX_LIMIT,
    ClickThrough,
    ProductInfo,
    Scored,
    Signal,
    blend,
    check_limit,
    check_region,
    favourite_categories,
    merge,
    servable,
    target_customer,
    trending_scopes,
    user_vector,
)
from transactional.shared.errors import Forbidden, InvalidRequest, Unauthorized


def info(
    pid: str, status: str = "active", category: str = "c1", skus: tuple[str, ...] = ()
) -> ProductInfo:
    return ProductInfo(pid, status, category, pid.upper(), skus or (f"sku-{pid}",))


def test_servable_keeps_order_and_drops_unlisted_out_of_stock_excluded_and_unknown() -> None:
    products = {p: info(p) for p in "abcde"} | {"u": info("u", status="archived")}
    candidates = [Scored(p, 1.0 - i / 10) for i, p in enumerate("uabxcde")]
    picks = servable(candidates, products, lambda i: i.product_id != "c", exclude={"b"}, limit=2)
    assert [p.product_id for p in picks] == ["a", "d"]
    assert picks[0].title == "A" and picks[0].score == pytest.approx(0.9)


def test_merge_keeps_the_first_occurrence() -> None:
    merged = merge([Scored("a", 1), Scored("b", 0.5)], [Scored("b", 9), Scored("c", 1)])
    assert [(c.product_id, c.score) for c in merged] == [("a", 1), ("b", 0.5), ("c", 1)]


def test_user_vector_weighs_purchases_and_recent_signals_more() -> None:
    vectors = {"x": np.array([1, 0], np.float32), "y": np.array([0, 1], np.float32)}
    # One purchase of y outweighs one (newer) view of x.
    taste = user_vector([Signal("view", "x"), Signal("purchase", "y")], vectors.get)
    assert taste is not None and taste[1] > taste[0] and np.linalg.norm(taste) == pytest.approx(1)
    # Same kind: the newer one counts more.
    newer = user_vector([Signal("view", "x"), Signal("view", "y")], vectors.get)
    assert newer is not None and newer[0] > newer[1]
    assert user_vector([Signal("view", "unknown")], vectors.get) is None


def test_blend_moves_personal_matches_up_and_keeps_scale() -> None:
    scores = blend([2.0, 2.0, 1.0], [-1.0, 1.0, None], 0.5)
    assert scores[1] > scores[0] and all(0 <= s <= 1 for s in scores)
    assert scores[2] == pytest.approx(0.25)  # lowest base, neutral affinity
    assert blend([], [], 0.3) == []
    with pytest.raises(ValueError):
        blend([1.0], [], 0.3)


def test_limits_regions_and_who_may_ask() -> None:
    assert check_limit(MAX_LIMIT) == MAX_LIMIT
    with pytest.raises(InvalidRequest):
        check_limit(0)
    assert check_region(None, ["eu"], "eu") == "eu" and check_region("EU", ["eu"], "us") == "eu"
    with pytest.raises(InvalidRequest):
        check_region("mars", ["eu"], "eu")
    assert target_customer("c1", frozenset(), None) == "c1"
    assert target_customer("adm", frozenset({"admin"}), "c2") == "c2"
    assert target_customer("svc", frozenset({"service"}), "c2") == "c2"
    with pytest.raises(Forbidden):
        target_customer("c1", frozenset(), "c2")
    with pytest.raises(Unauthorized):
        target_customer(None, frozenset(), "c2")


def test_favourite_categories_and_scopes() -> None:
    products = {"a": info("a", category="phones"), "b": info("b", category="audio")}
    signals = [Signal("view", "a"), Signal("view", "a"), Signal("purchase", "b")]
    assert favourite_categories(signals, products, 1) == ["audio"]
    assert trending_scopes("c", "eu") == ["region:eu:category:c", "category:c"]
    assert trending_scopes(None, "eu") == ["region:eu", "all"]
    assert trending_scopes(None, None) == ["all"]
    assert ClickThrough("als", "v1", 0, 0).rate == 0 and ClickThrough("als", "v", 4, 1).rate == 0.25


def test_scopes_match_the_streaming_job() -> None:
    from pipelines.trending import ALL, category_scope, region_category_scope, region_scope

    assert trending_scopes("c", "eu") == [region_category_scope("eu", "c"), category_scope("c")]
    assert trending_scopes(None, "eu") == [region_scope("eu"), ALL]


def test_the_pure_models_role_names_are_the_tokens_role_names() -> None:
    from serving.recommendations.model import SERVICE_ROLE
    from transactional.shared.auth import ADMIN, SERVICE

    assert (SERVICE_ROLE, "admin") == (SERVICE, ADMIN)
