"""Recommendation use cases: similar items, for-you, bought together, the home feed, trending.

Every list goes the same way: candidates from a promoted model (or a fallback), then only
listed, in-stock products the customer has not bought, then one ``recommendation.served``
event carrying the list's id and model version. The class also re-ranks any list by a
customer's taste (``rerank``: the search helper's ``Reranker`` port).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.vector_index import UnknownItem, VectorIndex
from serving.recommendations.adapters import list_key
from serving.recommendations.engines import FBT, ITEM_VECTORS, ModelSet
from serving.recommendations.model import (
    FALLBACK,
    OVERFETCH,
    TRENDING_DAILY,
    TRENDING_STREAM,
    ClickThrough,
    ProductInfo,
    Ranked,
    Recommendations,
    Scored,
    Signal,
    blend,
    check_limit,
    check_region,
    favourite_categories,
    merge,
    new_recommendation_id,
    servable,
    trending_scopes,
    user_vector,
)
from serving.recommendations.ports import (
    Activity,
    Catalog,
    ClickStats,
    ListCache,
    Purchases,
    ServedLog,
    Stock,
    Trending,
    TrendingBaseline,
)
from transactional.shared.errors import NotFound

log = logging.getLogger("souk.recommendations")

#: Raw list length cached per product and model version (enough for any limit after filters).
CACHED_LIST = 100
#: Recent items whose neighbours seed the home feed.
FEED_SEEDS = 3


@dataclass(frozen=True)
class Request:
    """Who asks, from where: the served event's context."""

    region: str
    session_id: str | None = None
    customer_id: str | None = None


class RecommendationService:
    """Recommendations over the promoted models, the read models and the catalog."""

    def __init__(
        self,
        *,
        models: ModelSet,
        catalog: Catalog,
        stock: Stock,
        purchases: Purchases,
        trending: Trending,
        baseline: TrendingBaseline,
        activity: Activity,
        served_log: ServedLog,
        cache: ListCache,
        stats: ClickStats,
        regions: Sequence[str],
        default_region: str,
        recent_events: int = 50,
        rerank_weight: float = 0.3,
    ) -> None:
        self.models = models
        self._regions = list(regions)
        self._default_region = default_region
        self._catalog = catalog
        self._stock = stock
        self._purchases = purchases
        self._trending = trending
        self._baseline = baseline
        self._activity = activity
        self._served_log = served_log
        self._cache = cache
        self._stats = stats
        self._recent = recent_events
        self._weight = rerank_weight

    # -- the endpoints' use cases ---------------------------------------------------------

    def region(self, requested: str | None, home: str | None = None) -> str:
        """The region asked for (validated), else the caller's home region, else the default."""
        if requested is None and home in self._regions:
            return str(home)
        return check_region(requested, self._regions, self._default_region)

    def similar(self, product_id: str, limit: int, request: Request) -> Recommendations:
        """Nearest items of ``product_id`` in the promoted item-vector index."""
        check_limit(limit)
        index, version = self.models.vectors.get()
        if index is not None and version is not None and product_id in index:
            ranked = Ranked(ITEM_VECTORS, version, self._similar_list(index, version, product_id))
        else:
            ranked = self._category_fallback(self._product(product_id), request.region, limit)
        return self._serve("pdp.similar", ranked, limit, request, {product_id}, product_id)

    def for_you(self, customer_id: str, limit: int, request: Request) -> Recommendations:
        """ALS for known customers, their taste vector if only the stream knows them, else
        trending in their region and favourite categories; never what they already bought."""
        check_limit(limit)
        signals = self._activity.recent(customer_id, self._recent)
        bought = self._bought(customer_id, signals)
        want = limit * OVERFETCH
        als, als_version = self.models.als.get()
        ranked: Ranked | None = None
        if als is not None and als_version is not None and als.knows(customer_id):
            ranked = Ranked("als", als_version, als.recommend(customer_id, want, bought))
        if ranked is None or not ranked.candidates:
            ranked = self._taste(signals, want, bought) or self._cold_start(
                signals, request.region, want
            )
        return self._serve("home.for_you", ranked, limit, request, bought)

    def bought_together(self, product_id: str, limit: int, request: Request) -> Recommendations:
        """Frequent co-purchase partners of ``product_id`` (its category's trending without)."""
        check_limit(limit)
        fbt, version = self.models.fbt.get()
        candidates: list[Scored] = []
        if fbt is not None and version is not None:
            key = list_key(FBT, version, product_id)
            cached = self._cache.get(key)
            if cached is None:
                cached = [Scored(p, s) for p, s in fbt.partners_of(product_id, CACHED_LIST)]
                self._cache.put(key, cached)
            candidates = cached
        if candidates and version is not None:
            ranked = Ranked(FBT, version, candidates)
        else:
            ranked = self._category_fallback(self._product(product_id), request.region, limit)
        return self._serve("cart.bought_together", ranked, limit, request, {product_id}, product_id)

    def feed(self, customer_id: str | None, limit: int, request: Request) -> Recommendations:
        """The home feed: for-you, neighbours of recent items and regional trending, merged
        and re-ranked by the customer's taste vector."""
        check_limit(limit)
        want = limit * OVERFETCH
        signals = self._activity.recent(customer_id, self._recent) if customer_id else []
        bought = self._bought(customer_id, signals) if customer_id else set()
        sources: list[Ranked] = []
        als, als_version = self.models.als.get()
        if customer_id and als is not None and als_version is not None:
            sources.append(Ranked("als", als_version, als.recommend(customer_id, want, bought)))
        index, vectors_version = self.models.vectors.get()
        if index is not None and vectors_version is not None:
            seeds = [s.product_id for s in signals if s.product_id in index][:FEED_SEEDS]
            for seed in dict.fromkeys(seeds):
                near = self._similar_list(index, vectors_version, seed)[:limit]
                sources.append(Ranked(ITEM_VECTORS, vectors_version, near))
        sources.append(self._trending_list(None, request.region, want))
        candidates = merge(*(self._scaled(source.candidates) for source in sources))
        taste = self._taste_vector(index, signals)
        if taste is not None and index is not None:
            scores = blend(
                [c.score for c in candidates],
                self._affinities(index, taste, [c.product_id for c in candidates]),
                self._weight,
            )
            candidates = sorted(
                (Scored(c.product_id, s) for c, s in zip(candidates, scores, strict=True)),
                key=lambda c: -c.score,
            )
        parts = (("als", als_version), ("vec", vectors_version))
        versions = [f"{kind}:{v}" for kind, v in parts if v]
        version = "+".join(versions) if versions else FALLBACK
        return self._serve("home.feed", Ranked("feed", version, candidates), limit, request, bought)

    def trending(
        self, category: str | None, region: str | None, limit: int, request: Request
    ) -> Recommendations:
        """Trending from the streaming read model, the daily batch table as fallback."""
        check_limit(limit)
        ranked = self._trending_list(category, region, limit * OVERFETCH)
        return self._serve("trending", ranked, limit, request, set())

    def click_through(self) -> list[ClickThrough]:
        """Served lists, clicked lists and their rate, per model version."""
        return self._stats.click_through()

    # -- personalization (the search helper's Reranker port) ------------------------------

    def rerank(
        self, customer_id: str, product_ids: Sequence[str], scores: Sequence[float]
    ) -> list[float]:
        """Scores blended with the customer's taste (same order); unchanged without one."""
        if len(product_ids) != len(scores):
            raise ValueError(f"{len(product_ids)} products but {len(scores)} scores")
        index, _ = self.models.vectors.get()
        if index is None or not product_ids or self._weight <= 0:
            return list(scores)
        taste = self._taste_vector(index, self._activity.recent(customer_id, self._recent))
        if taste is None:
            return list(scores)
        return blend(scores, self._affinities(index, taste, product_ids), self._weight)

    # -- internals ------------------------------------------------------------------------

    def _serve(
        self,
        placement: str,
        ranked: Ranked,
        limit: int,
        request: Request,
        exclude: set[str],
        context: str | None = None,
    ) -> Recommendations:
        candidates = ranked.candidates
        products = self._catalog.describe([c.product_id for c in candidates])
        skus = [sku for info in products.values() if info.listed for sku in info.skus]
        available = self._stock.in_stock(skus)
        picks = servable(
            candidates,
            products,
            lambda info: any(sku in available for sku in info.skus),
            exclude,
            limit,
        )
        served = Recommendations(
            recommendation_id=new_recommendation_id(),
            placement=placement,
            model=ranked.model,
            model_version=ranked.version,
            items=picks,
            context_product_id=context,
            scope=ranked.scope,
        )
        if picks:  # an empty widget is not rendered: nothing to count
            self._served_log.served(
                served,
                session_id=request.session_id or f"ses_{served.recommendation_id[4:]}",
                customer_id=request.customer_id,
                region=request.region,
            )
        return served

    def _product(self, product_id: str) -> ProductInfo:
        info = self._catalog.describe([product_id]).get(product_id)
        if info is None:
            raise NotFound(f"no product {product_id}", code="product_not_found")
        return info

    def _similar_list(self, index: VectorIndex, version: str, product_id: str) -> list[Scored]:
        key = list_key(ITEM_VECTORS, version, product_id)
        cached = self._cache.get(key)
        if cached is None:
            cached = [Scored(p, s) for p, s in index.similar(product_id, CACHED_LIST)]
            self._cache.put(key, cached)
        return cached

    def _bought(self, customer_id: str | None, signals: Sequence[Signal]) -> set[str]:
        if customer_id is None:
            return set()
        # PostgreSQL is the truth; the stream adds purchases whose order is seconds old.
        recent = {s.product_id for s in signals if s.kind == "purchase"}
        return self._purchases.bought(customer_id) | recent

    def _taste(self, signals: Sequence[Signal], want: int, exclude: set[str]) -> Ranked | None:
        index, version = self.models.vectors.get()
        taste = self._taste_vector(index, signals)
        if taste is None or index is None or version is None:
            return None
        seen = exclude | {s.product_id for s in signals}
        found = [Scored(p, s) for p, s in index.search(taste, want, seen)]
        return Ranked(ITEM_VECTORS, version, found) if found else None

    def _cold_start(self, signals: Sequence[Signal], region: str, want: int) -> Ranked:
        """Trending in the favourite categories (from recent signals), then the region."""
        products = self._catalog.describe([s.product_id for s in signals])
        lists = [
            self._trending_list(category, region, want).candidates
            for category in favourite_categories(signals, products)
        ]
        regional = self._trending_list(None, region, want)
        return Ranked(regional.model, FALLBACK, merge(*lists, regional.candidates), regional.scope)

    def _category_fallback(self, product: ProductInfo, region: str, want: int) -> Ranked:
        found = self._trending_list(product.category_id, region, want * OVERFETCH)
        return Ranked(found.model, FALLBACK, found.candidates, found.scope)

    def _trending_list(self, category: str | None, region: str | None, want: int) -> Ranked:
        """The narrowest streaming scope that has a window, else the daily baseline."""
        for scope in trending_scopes(category, region):
            found, window = self._trending.top(scope, want)
            if found and window is not None:
                return Ranked(TRENDING_STREAM, window, found, scope)
        # The baseline ranks per day and region only: its category filter is the catalog's.
        daily, day = self._baseline.top(region, want if category is None else 10 * want)
        if category is not None and daily:
            products = self._catalog.describe([c.product_id for c in daily])
            daily = [
                c
                for c in daily
                if c.product_id in products and products[c.product_id].category_id == category
            ][:want]
        if daily and day is not None:
            return Ranked(TRENDING_DAILY, day, daily, f"daily:{region or 'all'}")
        return Ranked("trending", FALLBACK, [], None)

    def _taste_vector(
        self, index: VectorIndex | None, signals: Sequence[Signal]
    ) -> npt.NDArray[np.float32] | None:
        if index is None or not signals:
            return None

        def vector_of(product_id: str) -> npt.NDArray[np.float32] | None:
            try:
                return index.vector(product_id)
            except (UnknownItem, RuntimeError):  # not indexed, or a kind that cannot reconstruct
                return None

        return user_vector(signals, vector_of)

    @staticmethod
    def _affinities(
        index: VectorIndex, taste: npt.NDArray[np.float32], product_ids: Sequence[str]
    ) -> list[float | None]:
        result: list[float | None] = []
        for product_id in product_ids:
            try:
                result.append(float(index.vector(product_id) @ taste))
            except (UnknownItem, RuntimeError):
                result.append(None)
        return result

    @staticmethod
    def _scaled(candidates: Sequence[Scored]) -> list[Scored]:
        """Scores of one source mapped to [0, 1] by rank, so sources of different scales mix."""
        count = len(candidates)
        return [Scored(c.product_id, 1.0 - i / max(count, 1)) for i, c in enumerate(candidates)]
