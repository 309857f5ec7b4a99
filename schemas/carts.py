"""Carts domain (aggregate ``cart``): items added to / removed from a cart."""

from __future__ import annotations

from typing import Literal

import msgspec

from schemas.common import Channel, Id, Money, NonNegativeInt, Quantity
from schemas.spec import EventSpec

__all__ = ["SPECS", "CartItemAdded", "CartItemRemoved"]


class CartItemAdded(msgspec.Struct, frozen=True, kw_only=True):
    """cart.item_added: some quantity of a SKU was added to a cart."""

    cart_id: Id
    session_id: Id
    customer_id: Id | None = None  # None for guest carts
    sku: Id
    product_id: Id
    seller_id: Id
    quantity: Quantity  # units added by this action
    quantity_in_cart: Quantity  # units of this SKU in the cart afterwards
    unit_price: Money
    channel: Channel = "web"
    # Attribution for recommendation/search conversion metrics.
    recommendation_id: Id | None = None
    search_id: Id | None = None


class CartItemRemoved(msgspec.Struct, frozen=True, kw_only=True):
    """cart.item_removed: some quantity of a SKU left a cart."""

    cart_id: Id
    session_id: Id
    customer_id: Id | None = None
    sku: Id
    product_id: Id
    quantity: Quantity  # units removed by this action
    quantity_in_cart: NonNegativeInt = 0  # units left afterwards
    # "merged": the guest cart's lines moved into the customer's cart at sign-in (their
    # cart.item_added events there carry this cart's id as session_id).
    reason: Literal["user", "out_of_stock", "price_changed", "expired", "checked_out", "merged"] = (
        "user"
    )
    channel: Channel = "web"


SPECS = (
    EventSpec("cart.item_added", 1, "carts", "cart", CartItemAdded, "cart_id"),
    EventSpec("cart.item_removed", 1, "carts", "cart", CartItemRemoved, "cart_id"),
)
