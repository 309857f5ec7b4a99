"""Request and response bodies of the order API (msgspec structs at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from transactional.orders.model import (
    FulfilmentGroup,
    Order,
    OrderLine,
    OrderPage,
    Transition,
)

Note = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class CancelOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/orders/{id}/cancel: an optional free-text reason from the customer."""

    reason: Note | None = None


class ReviewOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/admin/orders/{id}/review: a person's decision on an order held for a fraud
    review: ``approve`` captures the held payment (the order is paid), ``reject`` voids it
    and cancels the order (``fraud_suspected``)."""

    decision: Literal["approve", "reject"]
    note: Note | None = None


class MoveOrder(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/admin/orders/{id}/transitions.

    ``cause`` is free text, except when cancelling: then it is a cancel reason
    (customer_request, payment_failed, out_of_stock, fraud_suspected, seller_cancelled,
    timeout) and ``note`` carries the free text.
    """

    to: Literal["packed", "shipped", "delivered", "returned", "cancelled"]
    cause: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    note: Note | None = None


class MoneyOut(msgspec.Struct, kw_only=True):
    """An amount in minor units of a currency."""

    amount_minor: int
    currency: str


class TotalsOut(msgspec.Struct, kw_only=True):
    """The order's money breakdown."""

    subtotal: MoneyOut
    discount: MoneyOut
    shipping: MoneyOut
    tax: MoneyOut
    grand_total: MoneyOut
    # The tax inside the subtotal (tax-inclusive prices: eu, in); ``tax`` is added on top.
    tax_included: MoneyOut | None = None


class LineOut(msgspec.Struct, kw_only=True):
    """One order line."""

    line_id: str
    sku: str
    product_id: str
    seller_id: str
    title: str
    quantity: int
    unit_price: MoneyOut
    warehouse_id: str
    tax: MoneyOut | None = None  # the whole line's tax
    tax_rate: str | None = None  # percent, e.g. "19"
    tax_included: bool = False  # inside the unit price, or added on top

    @classmethod
    def of(cls, line: OrderLine, currency: str) -> LineOut:
        """The response body of a domain line."""
        return cls(
            line_id=line.line_id,
            sku=line.sku,
            product_id=line.product_id,
            seller_id=line.seller_id,
            title=line.title,
            quantity=line.quantity,
            unit_price=MoneyOut(amount_minor=line.unit_price_minor, currency=currency),
            warehouse_id=line.warehouse_id,
            tax=MoneyOut(amount_minor=line.tax_minor, currency=currency),
            tax_rate=format(line.tax_rate.normalize(), "f"),
            tax_included=line.tax_included,
        )


class FulfilmentGroupOut(msgspec.Struct, kw_only=True):
    """What one seller ships from one warehouse, and its shipment once shipped."""

    group_id: str
    seller_id: str
    warehouse_id: str
    line_ids: list[str]
    status: str
    shipment_id: str | None
    carrier: str | None
    tracking_number: str | None

    @classmethod
    def of(cls, group: FulfilmentGroup) -> FulfilmentGroupOut:
        """The response body of a domain fulfilment group."""
        return cls(
            group_id=group.group_id,
            seller_id=group.seller_id,
            warehouse_id=group.warehouse_id,
            line_ids=list(group.line_ids),
            status=group.status,
            shipment_id=group.shipment_id,
            carrier=group.carrier,
            tracking_number=group.tracking_number,
        )


class ShippingAddressOut(msgspec.Struct, kw_only=True):
    """The coarse destination (the street stays in the customer's address book)."""

    country: str
    subdivision: str | None
    city: str | None
    postal_code: str | None
    address_id: str | None


class OrderOut(msgspec.Struct, kw_only=True):
    """An order as its customer sees it."""

    order_id: str
    region: str
    status: str
    customer_id: str
    checkout_id: str
    currency: str
    lines: list[LineOut]
    fulfilment_groups: list[FulfilmentGroupOut]
    totals: TotalsOut
    shipping_address: ShippingAddressOut
    payment_method: str
    payment_id: str | None
    paid: MoneyOut | None
    refunded: MoneyOut
    placed_at: datetime
    updated_at: datetime
    # "cancelled" or "returned" while that move's refund and restock are still under way.
    pending_status: str | None = None

    @classmethod
    def of(cls, order: Order) -> OrderOut:
        """The response body of a domain order."""

        def money(amount_minor: int) -> MoneyOut:
            return MoneyOut(amount_minor=amount_minor, currency=order.currency)

        totals, address = order.totals, order.shipping_address
        return cls(
            order_id=order.order_id,
            region=order.region,
            status=order.status,
            customer_id=order.customer_id,
            checkout_id=order.checkout_id,
            currency=order.currency,
            lines=[LineOut.of(line, order.currency) for line in order.lines],
            fulfilment_groups=[FulfilmentGroupOut.of(group) for group in order.groups],
            totals=TotalsOut(
                subtotal=money(totals.subtotal_minor),
                discount=money(totals.discount_minor),
                shipping=money(totals.shipping_minor),
                tax=money(totals.tax_minor),
                grand_total=money(totals.grand_total),
                tax_included=money(order.tax_included_minor),
            ),
            shipping_address=ShippingAddressOut(
                country=address.country,
                subdivision=address.subdivision,
                city=address.city,
                postal_code=address.postal_code,
                address_id=address.address_id,
            ),
            payment_method=order.payment_method,
            payment_id=order.payment_id,
            paid=None if order.paid_minor is None else money(order.paid_minor),
            refunded=money(order.refunded_minor),
            placed_at=order.placed_at,
            updated_at=order.updated_at,
            pending_status=None if order.pending is None else order.pending.to,
        )


class OrderPageOut(msgspec.Struct, kw_only=True):
    """A page of the caller's orders, newest first."""

    items: list[OrderOut]
    total: int
    page: int
    page_size: int

    @classmethod
    def of(cls, page: OrderPage) -> OrderPageOut:
        """The response body of a domain page."""
        return cls(
            items=[OrderOut.of(order) for order in page.items],
            total=page.total,
            page=page.page,
            page_size=page.page_size,
        )


class TransitionOut(msgspec.Struct, kw_only=True):
    """One recorded move of the order's state machine."""

    from_status: str | None
    to_status: str
    at: datetime
    cause: str
    actor: str

    @classmethod
    def of(cls, move: Transition) -> TransitionOut:
        """The response body of a domain transition."""
        return cls(
            from_status=move.from_status,
            to_status=move.to_status,
            at=move.at,
            cause=move.cause,
            actor=move.actor,
        )
