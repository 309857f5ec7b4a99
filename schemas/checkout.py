"""Checkout domain (aggregate ``checkout``): a cart entering the checkout saga."""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas.common import (
    Address,
    Channel,
    Id,
    LineItem,
    Money,
    require_same_currency,
)
from schemas.spec import EventSpec

__all__ = ["SPECS", "CheckoutStarted"]


class CheckoutStarted(msgspec.Struct, frozen=True, kw_only=True):
    """checkout.started: cart validated, saga begins (reserve -> order -> pay)."""

    checkout_id: Id
    cart_id: Id
    customer_id: Id
    session_id: Id | None = None
    lines: Annotated[list[LineItem], msgspec.Meta(min_length=1)]
    subtotal: Money
    shipping_address: Address
    coupon_codes: list[str] = []
    prime: bool = False
    channel: Channel = "web"

    def __post_init__(self) -> None:
        require_same_currency(self.subtotal, *(line.unit_price for line in self.lines))


SPECS = (EventSpec("checkout.started", 1, "checkout", "checkout", CheckoutStarted, "checkout_id"),)
