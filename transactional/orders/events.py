"""The events an order emits, built from the order (pure; no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, cast

import msgspec

from schemas.common import Address, LineItem, Money
from schemas.envelope import Envelope
from schemas.orders import (
    FulfilmentGroup as FulfilmentGroupPayload,
)
from schemas.orders import (
    OrderCancelled,
    OrderDelivered,
    OrderPacked,
    OrderPaid,
    OrderPlaced,
    OrderReturned,
    OrderShipped,
    OrderTotals,
)
from schemas.registry import REGISTRY
from transactional.orders.model import (
    CancelReason,
    IllegalTransition,
    Order,
    OrderStatus,
    PaymentMethod,
    PendingChange,
    actor_kind,
)

SANDBOX_CARRIER = "sandbox-post"
SANDBOX_TRANSIT = timedelta(days=3)


def settled_events(
    order: Order, settled: PendingChange, at: datetime, refunded: int
) -> list[Envelope]:
    """The events of a settled cancel (order.cancelled) or return (order.returned)."""
    if settled.to == "returned":
        return fulfilment_events(order, "returned", at, refunded, settled.note or settled.cause)
    return [
        event(
            order,
            "order.cancelled",
            OrderCancelled(
                order_id=order.order_id,
                customer_id=order.customer_id,
                reason=cast(CancelReason, settled.cause),
                cancelled_by=_cancelled_by(actor_kind(settled.actor)),
                refund_amount=money(order, refunded) if refunded else None,
                note=settled.note,
            ),
        )
    ]


def money(order: Order, amount_minor: int) -> Money:
    """An amount in the order's currency."""
    return Money(amount_minor=amount_minor, currency=order.currency)


def event(order: Order, event_type: str, payload: msgspec.Struct) -> Envelope:
    """An event of the order's region."""
    return REGISTRY.new_event(event_type, payload, region=order.region)


def placed_event(order: Order) -> Envelope:
    """order.placed: the order with its lines, totals and fulfilment groups."""
    totals = order.totals
    address = order.shipping_address
    return REGISTRY.new_event(
        "order.placed",
        OrderPlaced(
            order_id=order.order_id,
            customer_id=order.customer_id,
            checkout_id=order.checkout_id,
            region=order.region,
            lines=[
                LineItem(
                    line_id=line.line_id,
                    sku=line.sku,
                    product_id=line.product_id,
                    seller_id=line.seller_id,
                    quantity=line.quantity,
                    unit_price=money(order, line.unit_price_minor),
                    warehouse_id=line.warehouse_id,
                    tax=money(order, line.tax_minor),
                    tax_rate=format(line.tax_rate.normalize(), "f"),
                    tax_included=line.tax_included,
                )
                for line in order.lines
            ],
            totals=OrderTotals(
                subtotal=money(order, totals.subtotal_minor),
                discount=money(order, totals.discount_minor),
                shipping=money(order, totals.shipping_minor),
                tax=money(order, totals.tax_minor),
                grand_total=money(order, totals.grand_total),
                tax_included=money(order, order.tax_included_minor),
            ),
            shipping_address=Address(
                country=address.country,
                subdivision=address.subdivision,
                city=address.city,
                postal_code=address.postal_code,
                address_id=address.address_id,
            ),
            fulfilment_groups=[
                FulfilmentGroupPayload(
                    group_id=group.group_id,
                    seller_id=group.seller_id,
                    warehouse_id=group.warehouse_id,
                    line_ids=list(group.line_ids),
                )
                for group in order.groups
            ],
            payment_method=order.payment_method,
        ),
        region=order.region,
    )


def fulfilment_events(
    order: Order, to: OrderStatus, at: datetime, refunded: int, note: str
) -> list[Envelope]:
    """One event per fulfilment group for packed/shipped/delivered; order.returned once."""
    if to == "returned":
        return [
            event(
                order,
                "order.returned",
                OrderReturned(
                    order_id=order.order_id,
                    customer_id=order.customer_id,
                    returned_at=at,
                    refund_amount=money(order, refunded) if refunded else None,
                    note=note,
                ),
            )
        ]
    events = []
    for index, group in enumerate(order.groups, 1):
        payload: msgspec.Struct
        if to == "packed":
            payload = OrderPacked(
                order_id=order.order_id,
                customer_id=order.customer_id,
                fulfilment_group_id=group.group_id,
                seller_id=group.seller_id,
                warehouse_id=group.warehouse_id,
                line_ids=list(group.line_ids),
            )
        elif to == "shipped":
            payload = OrderShipped(
                order_id=order.order_id,
                customer_id=order.customer_id,
                fulfilment_group_id=group.group_id,
                shipment_id=group.shipment_id or "",
                warehouse_id=group.warehouse_id,
                carrier=group.carrier or SANDBOX_CARRIER,
                tracking_number=group.tracking_number,
                estimated_delivery=at + SANDBOX_TRANSIT,
            )
        elif to == "delivered":
            payload = OrderDelivered(
                order_id=order.order_id,
                customer_id=order.customer_id,
                fulfilment_group_id=group.group_id,
                shipment_id=group.shipment_id or "",
                delivered_at=at,
                # The whole order arrives at once here: the last group completes it.
                order_complete=index == len(order.groups),
            )
        else:  # pragma: no cover - ADMIN_TARGETS is checked by the caller
            raise IllegalTransition(f"no fulfilment event for {to}")
        events.append(event(order, f"order.{to}", payload))
    return events


def paid_event(order: Order, payment_id: str, amount_minor: int, method: PaymentMethod) -> Envelope:
    """order.paid: the captured payment is recorded on the order."""
    return event(
        order,
        "order.paid",
        OrderPaid(
            order_id=order.order_id,
            customer_id=order.customer_id,
            payment_id=payment_id,
            amount=money(order, amount_minor),
            method=method,
        ),
    )


def _cancelled_by(kind: str) -> Literal["customer", "seller", "system", "support"]:
    if kind in ("customer", "seller", "support"):
        return cast(Literal["customer", "seller", "support"], kind)
    return "support" if kind == "admin" else "system"
