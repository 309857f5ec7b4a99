"""Behaviour domain (aggregate ``session``): storefront clickstream.

Feeds recommendations (collaborative filtering), trending, search relevance and
personalisation; keyed by session so one visit's events stay ordered.
``search_id`` / ``recommendation_id`` link views and clicks back to what was served.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.common import Channel, Id, Money, NonNegativeInt
from schemas.spec import EventSpec

__all__ = [
    "SPECS",
    "ProductViewed",
    "RecommendationClicked",
    "RecommendationServed",
    "SearchPerformed",
    "ViewSource",
]

ViewSource = Literal[
    "search", "recommendation", "category", "deal", "cart", "direct", "external", "other"
]


class ProductViewed(msgspec.Struct, frozen=True, kw_only=True):
    """product.viewed: a product detail page was shown."""

    session_id: Id
    customer_id: Id | None = None  # None for anonymous visitors
    product_id: Id
    sku: Id | None = None
    source: ViewSource = "direct"
    search_id: Id | None = None
    recommendation_id: Id | None = None
    position: NonNegativeInt | None = None  # rank in the list it was clicked from
    price: Money | None = None  # price shown, for price-sensitivity features
    channel: Channel = "web"


class SearchPerformed(msgspec.Struct, frozen=True, kw_only=True):
    """search.performed: a search results page was served."""

    search_id: Id
    session_id: Id
    customer_id: Id | None = None
    query: Annotated[str, msgspec.Meta(max_length=1000)]
    filters: dict[str, list[str]] = {}  # facet -> selected values
    sort: str | None = None
    page: Annotated[int, msgspec.Meta(ge=1)] = 1
    result_count: NonNegativeInt
    # Capped so one event stays small; enough for click-through / position metrics.
    top_product_ids: Annotated[list[Id], msgspec.Meta(max_length=100)] = []
    index_version: str | None = None  # versioned index alias, for A/B and rollback analysis
    latency_ms: NonNegativeInt | None = None
    channel: Channel = "web"


class RecommendationServed(msgspec.Struct, frozen=True, kw_only=True):
    """recommendation.served: a recommendation widget was rendered."""

    recommendation_id: Id
    session_id: Id
    customer_id: Id | None = None
    placement: Id  # e.g. "home", "pdp.similar", "cart.bought_together"
    model: Id
    model_version: str | None = None
    product_ids: Annotated[list[Id], msgspec.Meta(max_length=100)]
    context_product_id: Id | None = None  # the product the widget was anchored on
    channel: Channel = "web"


class RecommendationClicked(msgspec.Struct, frozen=True, kw_only=True):
    """recommendation.clicked: a served recommendation was clicked."""

    recommendation_id: Id
    session_id: Id
    customer_id: Id | None = None
    placement: Id
    product_id: Id
    position: NonNegativeInt
    channel: Channel = "web"


SPECS = (
    EventSpec("product.viewed", 1, "behaviour", "session", ProductViewed, "session_id"),
    EventSpec("search.performed", 1, "behaviour", "session", SearchPerformed, "session_id"),
    EventSpec(
        "recommendation.served", 1, "behaviour", "session", RecommendationServed, "session_id"
    ),
    EventSpec(
        "recommendation.clicked", 1, "behaviour", "session", RecommendationClicked, "session_id"
    ),
)
