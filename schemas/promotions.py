"""Promotions domain: coupon/automatic promotions (aggregate ``promotion``) and lightning
deals (aggregate ``deal``) with queued inventory slots that start and stop on a schedule.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.common import Id, Money, NonNegativeInt, Quantity, Timestamp, require_same_currency
from schemas.spec import EventSpec

__all__ = ["SPECS", "DealEnded", "DealStarted", "PromotionApplied"]


class PromotionApplied(msgspec.Struct, frozen=True, kw_only=True):
    """promotion.applied: a promotion discounted a checkout/order."""

    promotion_id: Id
    kind: Literal["coupon", "automatic", "prime", "deal", "bundle"]
    code: str | None = None  # coupon code, when kind == "coupon"
    checkout_id: Id
    order_id: Id | None = None  # known once the order is created
    customer_id: Id
    discount: Money
    line_ids: list[Id] = []  # empty = order-level discount


class DealStarted(msgspec.Struct, frozen=True, kw_only=True):
    """deal.started: a lightning deal went live with a fixed number of slots."""

    deal_id: Id
    product_id: Id
    sku: Id
    seller_id: Id
    deal_price: Money
    list_price: Money
    slot_quantity: Quantity  # units reserved for the deal (queued inventory slots)
    starts_at: Timestamp
    ends_at: Timestamp
    prime_only: bool = False

    def __post_init__(self) -> None:
        require_same_currency(self.deal_price, self.list_price)
        if self.ends_at <= self.starts_at:
            raise ValueError("deal ends_at must be after starts_at")


class DealEnded(msgspec.Struct, frozen=True, kw_only=True):
    """deal.ended: a lightning deal stopped (schedule, sell-out or cancellation)."""

    deal_id: Id
    product_id: Id
    sku: Id
    reason: Literal["scheduled", "sold_out", "cancelled"]
    units_sold: NonNegativeInt = 0


SPECS = (
    EventSpec("promotion.applied", 1, "promotions", "promotion", PromotionApplied, "promotion_id"),
    EventSpec("deal.started", 1, "promotions", "deal", DealStarted, "deal_id"),
    EventSpec("deal.ended", 1, "promotions", "deal", DealEnded, "deal_id"),
)
