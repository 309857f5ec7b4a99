"""Checkout domain (aggregate ``checkout``): a cart entering the checkout saga, and its end.

``checkout.completed`` (order paid, stock sold) is what fulfilment starts from;
``checkout.failed`` says which step failed and what was compensated.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.common import (
    Address,
    Channel,
    Id,
    LineItem,
    Money,
    RegionCode,
    require_same_currency,
)
from schemas.spec import EventSpec

__all__ = ["SPECS", "CheckoutCompleted", "CheckoutFailed", "CheckoutStarted"]

CheckoutStep = Literal["validate", "reserve", "order", "payment", "finish"]


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
    # Where the checkout comes from and what pays, for fraud scoring (None: not known).
    device_id: Id | None = None  # the client's X-Device-Id
    client_ip: str | None = None  # the client's address (behind trusted proxies)
    ip_region: RegionCode | None = None  # the region client_ip maps to
    # The card's stable, non-secret id: the same card gives the same id for every customer
    # (a keyed hash of its number and expiry, never the vault token); None for a saved card.
    instrument_id: Id | None = None

    def __post_init__(self) -> None:
        require_same_currency(self.subtotal, *(line.unit_price for line in self.lines))


class CheckoutCompleted(msgspec.Struct, frozen=True, kw_only=True):
    """checkout.completed: payment captured, stock sold, cart emptied: fulfil the order."""

    checkout_id: Id
    customer_id: Id
    order_id: Id
    cart_id: Id | None = None
    payment_id: Id | None = None
    amount: Money | None = None
    ship_region: RegionCode | None = None
    shipping_address: Address | None = None
    warehouse_ids: list[Id] = []


class CheckoutFailed(msgspec.Struct, frozen=True, kw_only=True):
    """checkout.failed: a step failed (or a crash cut the saga short) and was compensated."""

    checkout_id: Id
    customer_id: Id
    step: CheckoutStep
    code: Id
    cart_id: Id | None = None
    order_id: Id | None = None
    payment_id: Id | None = None
    # Steps undone, newest first: "payment" (voided/refunded), "order", "reserve".
    compensated: list[CheckoutStep] = []


SPECS = (
    EventSpec("checkout.started", 1, "checkout", "checkout", CheckoutStarted, "checkout_id"),
    EventSpec("checkout.completed", 1, "checkout", "checkout", CheckoutCompleted, "checkout_id"),
    EventSpec("checkout.failed", 1, "checkout", "checkout", CheckoutFailed, "checkout_id"),
)
