"""Orders domain (aggregate ``order``): the order lifecycle placed -> paid -> packed ->
shipped -> delivered, or cancelled.

Multi-vendor orders are split into fulfilment groups (one per seller + warehouse); the
packed/shipped/delivered events are per group, so one order sees several of each.
Every event carries ``customer_id`` because notifications and review verification key on it.
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
    PaymentMethod,
    Quantity,
    RegionCode,
    Timestamp,
    require_same_currency,
)
from schemas.spec import EventSpec

__all__ = [
    "SPECS",
    "CancelReason",
    "FulfilmentGroup",
    "OrderCancelled",
    "OrderDelivered",
    "OrderPacked",
    "OrderPaid",
    "OrderPlaced",
    "OrderReturned",
    "OrderShipped",
    "OrderTotals",
    "ShippingSpeed",
]

ShippingSpeed = Literal["standard", "express", "prime", "same_day"]
CancelReason = Literal[
    "customer_request",
    "payment_failed",
    "out_of_stock",
    "fraud_suspected",
    "seller_cancelled",
    "timeout",
]


class OrderTotals(msgspec.Struct, frozen=True, kw_only=True):
    """Order money breakdown; ``grand_total = subtotal - discount + shipping + tax``."""

    subtotal: Money
    discount: Money
    shipping: Money
    tax: Money
    grand_total: Money
    # The tax inside the subtotal when prices include it (eu, in): part of what was paid,
    # not added on top; ``tax`` is the tax added on top (us). None: not computed.
    tax_included: Money | None = None

    def __post_init__(self) -> None:
        require_same_currency(
            self.subtotal,
            self.discount,
            self.shipping,
            self.tax,
            self.grand_total,
            self.tax_included,
        )
        expected = (
            self.subtotal.amount_minor
            - self.discount.amount_minor
            + self.shipping.amount_minor
            + self.tax.amount_minor
        )
        if expected != self.grand_total.amount_minor:
            raise ValueError(
                f"grand_total {self.grand_total.amount_minor} != subtotal - discount + "
                f"shipping + tax = {expected}"
            )


class FulfilmentGroup(msgspec.Struct, frozen=True, kw_only=True):
    """The lines one seller ships from one warehouse: the unit of packing and shipping."""

    group_id: Id
    seller_id: Id
    warehouse_id: Id
    line_ids: Annotated[list[Id], msgspec.Meta(min_length=1)]
    shipping_speed: ShippingSpeed = "standard"


class OrderPlaced(msgspec.Struct, frozen=True, kw_only=True):
    """order.placed: an order was created from a checkout with reserved stock."""

    order_id: Id
    customer_id: Id
    checkout_id: Id | None = None
    region: RegionCode
    lines: Annotated[list[LineItem], msgspec.Meta(min_length=1)]
    totals: OrderTotals
    shipping_address: Address
    fulfilment_groups: Annotated[list[FulfilmentGroup], msgspec.Meta(min_length=1)]
    payment_method: PaymentMethod
    coupon_codes: list[str] = []
    prime: bool = False
    channel: Channel = "web"

    def __post_init__(self) -> None:
        # Fulfilment routes by group; a line in no group (or two) would never ship (or ship
        # twice), so the contract rejects it at the producer.
        require_same_currency(self.totals.grand_total, *(line.unit_price for line in self.lines))
        line_ids = [line.line_id for line in self.lines]
        if len(set(line_ids)) != len(line_ids):
            raise ValueError("order.placed line_ids must be unique")
        grouped = [line_id for group in self.fulfilment_groups for line_id in group.line_ids]
        if sorted(grouped) != sorted(line_ids):
            raise ValueError("every line must belong to exactly one fulfilment group")
        if any(line.warehouse_id is None for line in self.lines):
            raise ValueError("order.placed lines must have a warehouse_id (stock is reserved)")


class OrderPaid(msgspec.Struct, frozen=True, kw_only=True):
    """order.paid: the order's payment was captured in full."""

    order_id: Id
    customer_id: Id
    payment_id: Id
    amount: Money
    method: PaymentMethod


class OrderPacked(msgspec.Struct, frozen=True, kw_only=True):
    """order.packed: one fulfilment group was picked and packed."""

    order_id: Id
    customer_id: Id
    fulfilment_group_id: Id
    seller_id: Id
    warehouse_id: Id
    line_ids: Annotated[list[Id], msgspec.Meta(min_length=1)]
    package_count: Quantity = 1


class OrderShipped(msgspec.Struct, frozen=True, kw_only=True):
    """order.shipped: one fulfilment group was handed to a carrier."""

    order_id: Id
    customer_id: Id
    fulfilment_group_id: Id
    shipment_id: Id
    warehouse_id: Id
    carrier: Id
    tracking_number: str | None = None
    estimated_delivery: Timestamp | None = None


class OrderDelivered(msgspec.Struct, frozen=True, kw_only=True):
    """order.delivered: one fulfilment group reached the customer."""

    order_id: Id
    customer_id: Id
    fulfilment_group_id: Id
    shipment_id: Id
    delivered_at: Timestamp
    # True once every group of the order is delivered: lets consumers (reviews, payouts)
    # act on the whole order without tracking groups themselves.
    order_complete: bool = False


class OrderCancelled(msgspec.Struct, frozen=True, kw_only=True):
    """order.cancelled: the order (or some of its lines) was cancelled."""

    order_id: Id
    customer_id: Id
    reason: CancelReason
    cancelled_by: Literal["customer", "seller", "system", "support"]
    line_ids: list[Id] = []  # empty = the whole order
    refund_amount: Money | None = None  # None = nothing was captured
    note: str | None = None


class OrderReturned(msgspec.Struct, frozen=True, kw_only=True):
    """order.returned: a delivered order came back (units restocked, capture refunded)."""

    order_id: Id
    customer_id: Id
    returned_at: Timestamp
    line_ids: list[Id] = []  # empty = the whole order
    refund_amount: Money | None = None  # None = nothing was refunded
    note: str | None = None


SPECS = (
    EventSpec("order.placed", 1, "orders", "order", OrderPlaced, "order_id"),
    EventSpec("order.paid", 1, "orders", "order", OrderPaid, "order_id"),
    EventSpec("order.packed", 1, "orders", "order", OrderPacked, "order_id"),
    EventSpec("order.shipped", 1, "orders", "order", OrderShipped, "order_id"),
    EventSpec("order.delivered", 1, "orders", "order", OrderDelivered, "order_id"),
    EventSpec("order.cancelled", 1, "orders", "order", OrderCancelled, "order_id"),
    EventSpec("order.returned", 1, "orders", "order", OrderReturned, "order_id"),
)
