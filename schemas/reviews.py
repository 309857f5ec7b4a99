"""Reviews domain (aggregate ``review``): customer reviews, flagged when purchase-verified."""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas.common import Id, Locale
from schemas.spec import EventSpec

__all__ = ["SPECS", "ReviewPosted"]


class ReviewPosted(msgspec.Struct, frozen=True, kw_only=True):
    """review.posted: a review was published (ratings feed search ranking and recs)."""

    review_id: Id
    product_id: Id
    sku: Id | None = None
    seller_id: Id | None = None
    customer_id: Id
    order_id: Id | None = None  # set when verified against a delivered order
    rating: Annotated[int, msgspec.Meta(ge=1, le=5)]
    title: Annotated[str, msgspec.Meta(max_length=200)] = ""
    body: Annotated[str, msgspec.Meta(max_length=20_000)] = ""
    verified_purchase: bool = False
    language: Locale | None = None
    media_urls: list[str] = []


SPECS = (EventSpec("review.posted", 1, "reviews", "review", ReviewPosted, "review_id"),)
