"""Response bodies of the recommendation endpoints (msgspec structs at the edge)."""

from __future__ import annotations

import msgspec

from serving.recommendations.model import ClickThrough, Recommendations


class RecommendedItem(msgspec.Struct, kw_only=True):
    """One recommended product: listed and in stock when served."""

    product_id: str
    title: str
    category_id: str
    score: float
    position: int  # 0-based: echo it in recommendation.clicked


class RecommendationsOut(msgspec.Struct, kw_only=True):
    """A served list; send ``recommendation_id`` back in ``recommendation.clicked`` events."""

    recommendation_id: str
    placement: str
    model: str
    model_version: str
    fallback: bool  # no promoted model answered: trending or the daily baseline stood in
    items: list[RecommendedItem]
    context_product_id: str | None = None
    scope: str | None = None  # trending: the read model's scope, e.g. region:eu

    @classmethod
    def of(cls, served: Recommendations) -> RecommendationsOut:
        """The body of a served list."""
        return cls(
            recommendation_id=served.recommendation_id,
            placement=served.placement,
            model=served.model,
            model_version=served.model_version,
            fallback=served.fallback,
            items=[
                RecommendedItem(
                    product_id=pick.product_id,
                    title=pick.title,
                    category_id=pick.category_id,
                    score=round(pick.score, 6),
                    position=position,
                )
                for position, pick in enumerate(served.items)
            ],
            context_product_id=served.context_product_id,
            scope=served.scope,
        )


class ClickThroughOut(msgspec.Struct, kw_only=True):
    """Served lists, lists clicked at least once and their ratio, for one model version."""

    model: str
    model_version: str
    served: int
    clicked: int
    ctr: float

    @classmethod
    def of(cls, row: ClickThrough) -> ClickThroughOut:
        """The body of one version's counts."""
        return cls(
            model=row.model,
            model_version=row.model_version,
            served=row.served,
            clicked=row.clicked,
            ctr=round(row.rate, 6),
        )


class ClickThroughReport(msgspec.Struct, kw_only=True):
    """Click-through per model version, from recommendation.served / .clicked events."""

    versions: list[ClickThroughOut]
