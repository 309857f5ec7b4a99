"""HTTP controllers of recommendations, the home feed, trending and click-through.

Every list answer carries its ``recommendation_id`` (echo it in ``recommendation.clicked``
through ``POST /v1/events``), the model and its version (``fallback`` when no promoted model
answered); only listed, in-stock products are returned.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter

from serving.recommendations.model import DEFAULT_LIMIT, MAX_LIMIT, target_customer
from serving.recommendations.schemas import (
    ClickThroughOut,
    ClickThroughReport,
    RecommendationsOut,
)
from serving.recommendations.service import RecommendationService, Request
from transactional.shared.auth import Principal
from transactional.shared.http import Inject

Limit = Annotated[
    int,
    QueryParameter(ge=1, le=MAX_LIMIT, description=f"How many items (1-{MAX_LIMIT})."),
]
Region = Annotated[
    str | None,
    QueryParameter(
        min_length=2, max_length=16, description="A served region (default: the caller's)."
    ),
]
Session = Annotated[
    str | None,
    QueryParameter(
        min_length=1, max_length=128, description="The storefront session, echoed in events."
    ),
]

_ITEM = {
    "product_id": "prd_07_01J9Z3K5X8",
    "title": "Wireless headphones",
    "category_id": "cat_electronics_audio",
    "score": 0.8731,
    "position": 0,
}


def _example(summary: str, **fields: Any) -> ResponseSpec:
    body = {
        "recommendation_id": "rec_5f2c9a0d41b7e8c3a9f01d62",
        "placement": "pdp.similar",
        "model": "item_vectors",
        "model_version": "20261207T021500Z-a1b2c3",
        "fallback": False,
        "items": [_ITEM],
        "context_product_id": None,
        "scope": None,
        **fields,
    }
    return ResponseSpec(
        RecommendationsOut,
        description=summary,
        examples=[Example(summary=summary, value=body)],
    )


def _principal_of(maybe_principal: Principal | None) -> tuple[str | None, frozenset[str]]:
    if maybe_principal is None:
        return None, frozenset()
    return maybe_principal.customer_id, maybe_principal.roles


def _request(
    recommendations: RecommendationService,
    maybe_principal: Principal | None,
    region: str | None,
    session_id: str | None,
) -> Request:
    """Who asks, from where: the asked region, else the caller's home region."""
    customer, _ = _principal_of(maybe_principal)
    home = maybe_principal.region if maybe_principal else None
    return Request(recommendations.region(region, home), session_id, customer)


class RecommendationsController(Controller):
    """/v1/recommendations: similar items, for-you, bought together."""

    path = "/v1/recommendations"
    tags = ("recommendations",)

    @get(
        "/similar/{product_id:str}",
        sync_to_thread=True,
        responses={
            200: _example(
                "Nearest items in the promoted FAISS index",
                context_product_id="prd_07_01J9Z3K5X7",
            )
        },
    )
    def similar(
        self,
        product_id: Annotated[str, PathParameter(min_length=1, max_length=128)],
        recommendations: Inject[RecommendationService],
        maybe_principal: Inject[Principal | None],
        limit: Limit = DEFAULT_LIMIT,
        region: Region = None,
        session_id: Session = None,
    ) -> RecommendationsOut:
        """Products similar to ``product_id`` (404 ``product_not_found`` if unknown)."""
        request = _request(recommendations, maybe_principal, region, session_id)
        return RecommendationsOut.of(recommendations.similar(product_id, limit, request))

    @get(
        "/for-you",
        sync_to_thread=True,
        responses={
            200: _example(
                "ALS for the signed-in customer, minus what they bought",
                placement="home.for_you",
                model="als",
            )
        },
    )
    def for_you(
        self,
        recommendations: Inject[RecommendationService],
        maybe_principal: Inject[Principal | None],
        limit: Limit = DEFAULT_LIMIT,
        region: Region = None,
        session_id: Session = None,
        customer_id: Annotated[
            str | None,
            QueryParameter(
                min_length=1,
                max_length=128,
                description="Whose recommendations: admin or service tokens only.",
            ),
        ] = None,
    ) -> RecommendationsOut:
        """Personal recommendations (401 without a token; ``customer_id`` needs admin/service)."""
        caller, roles = _principal_of(maybe_principal)
        customer = target_customer(caller, roles, customer_id)
        home = maybe_principal.region if maybe_principal and customer == caller else None
        request = Request(recommendations.region(region, home), session_id, customer)
        return RecommendationsOut.of(recommendations.for_you(customer, limit, request))

    @get(
        "/bought-together/{product_id:str}",
        sync_to_thread=True,
        responses={
            200: _example(
                "Frequent co-purchase partners",
                placement="cart.bought_together",
                model="fbt",
                context_product_id="prd_07_01J9Z3K5X7",
            )
        },
    )
    def bought_together(
        self,
        product_id: Annotated[str, PathParameter(min_length=1, max_length=128)],
        recommendations: Inject[RecommendationService],
        maybe_principal: Inject[Principal | None],
        limit: Limit = DEFAULT_LIMIT,
        region: Region = None,
        session_id: Session = None,
    ) -> RecommendationsOut:
        """Products bought together with ``product_id`` (404 ``product_not_found``)."""
        request = _request(recommendations, maybe_principal, region, session_id)
        return RecommendationsOut.of(recommendations.bought_together(product_id, limit, request))


class FeedController(Controller):
    """/v1/feed: the personalized home feed."""

    path = "/v1/feed"
    tags = ("recommendations",)

    @get(
        "/",
        sync_to_thread=True,
        responses={
            200: _example(
                "For-you, neighbours of recent items and trending, re-ranked by taste",
                placement="home.feed",
                model="feed",
                model_version="als:20261207T021500Z-a1b2c3+vec:20261207T023000Z-d4e5f6",
            )
        },
    )
    def feed(
        self,
        recommendations: Inject[RecommendationService],
        maybe_principal: Inject[Principal | None],
        limit: Limit = 20,
        region: Region = None,
        session_id: Session = None,
    ) -> RecommendationsOut:
        """The home feed; guests get their region's trending."""
        request = _request(recommendations, maybe_principal, region, session_id)
        return RecommendationsOut.of(recommendations.feed(request.customer_id, limit, request))


class TrendingController(Controller):
    """/v1/trending: the streaming trending read model (daily batch table as fallback)."""

    path = "/v1/trending"
    tags = ("recommendations",)

    @get(
        "/",
        sync_to_thread=True,
        responses={
            200: _example(
                "The newest trending window of a region and category",
                placement="trending",
                model="trending_stream",
                model_version="window-20261207T101500Z",
                scope="region:eu:category:cat_electronics_audio",
            )
        },
    )
    def trending(
        self,
        recommendations: Inject[RecommendationService],
        maybe_principal: Inject[Principal | None],
        category: Annotated[
            str | None, QueryParameter(min_length=1, max_length=128, description="Category id.")
        ] = None,
        region: Region = None,
        limit: Limit = DEFAULT_LIMIT,
        session_id: Session = None,
    ) -> RecommendationsOut:
        """Trending products, narrowest scope first (region + category, ..., all)."""
        customer, _ = _principal_of(maybe_principal)
        scope_region = None if region is None else recommendations.region(region)
        request = Request(recommendations.region(region), session_id, customer)
        return RecommendationsOut.of(
            recommendations.trending(category, scope_region, limit, request)
        )


class ClickThroughController(Controller):
    """/v1/admin/recommendations: the online measure."""

    path = "/v1/admin/recommendations"
    tags = ("recommendations", "admin")

    @get(
        "/ctr",
        sync_to_thread=True,
        responses={
            200: ResponseSpec(
                ClickThroughReport,
                description="Click-through per model version",
                examples=[
                    Example(
                        summary="Two ALS versions side by side",
                        value={
                            "versions": [
                                {
                                    "model": "als",
                                    "model_version": "20261206T021500Z-9f8e7d",
                                    "served": 1200,
                                    "clicked": 96,
                                    "ctr": 0.08,
                                },
                                {
                                    "model": "als",
                                    "model_version": "20261207T021500Z-a1b2c3",
                                    "served": 800,
                                    "clicked": 84,
                                    "ctr": 0.105,
                                },
                            ]
                        },
                    )
                ],
            )
        },
    )
    def click_through(
        self, recommendations: Inject[RecommendationService], principal: Inject[Principal]
    ) -> ClickThroughReport:
        """Served lists, lists clicked at least once and their ratio per model version."""
        principal.require_admin()
        return ClickThroughReport(
            versions=[ClickThroughOut.of(row) for row in recommendations.click_through()]
        )


ROUTES = [
    RecommendationsController,
    FeedController,
    TrendingController,
    ClickThroughController,
]
