"""Returns domain (aggregate ``return``): reverse logistics and the refund it triggers.

``refund.issued`` drives the reverse transaction (payments) and, with ``return.received``,
the inventory sync (restockable units).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.common import Id, Money, Quantity
from schemas.spec import EventSpec

__all__ = [
    "SPECS",
    "ItemCondition",
    "ReceivedLine",
    "RefundIssued",
    "ReturnApproved",
    "ReturnLine",
    "ReturnReason",
    "ReturnReceived",
    "ReturnRejected",
    "ReturnRequested",
]

ReturnReason = Literal[
    "damaged", "defective", "wrong_item", "not_as_described", "no_longer_needed", "other"
]
ItemCondition = Literal["sellable", "damaged", "defective", "missing"]


class ReturnLine(msgspec.Struct, frozen=True, kw_only=True):
    """Units of one order line being returned."""

    line_id: Id
    sku: Id
    quantity: Quantity
    reason: ReturnReason = "other"


class ReceivedLine(msgspec.Struct, frozen=True, kw_only=True):
    """Units of one order line received back at a warehouse, with their inspected state."""

    line_id: Id
    sku: Id
    quantity: Quantity
    condition: ItemCondition
    restock: bool = False  # True -> inventory emits stock.adjusted(return_restock)


class ReturnRequested(msgspec.Struct, frozen=True, kw_only=True):
    """return.requested: a customer asked to return lines of an order."""

    return_id: Id
    order_id: Id
    customer_id: Id
    lines: Annotated[list[ReturnLine], msgspec.Meta(min_length=1)]
    requested_refund: Money
    comment: str | None = None


class ReturnApproved(msgspec.Struct, frozen=True, kw_only=True):
    """return.approved: the seller or an admin accepted the return; the parcel may be sent."""

    return_id: Id
    order_id: Id
    customer_id: Id
    approved_by: Id  # "seller:<id>" or "admin:<id>"
    note: str | None = None


class ReturnRejected(msgspec.Struct, frozen=True, kw_only=True):
    """return.rejected: the seller or an admin refused the return; nothing is refunded."""

    return_id: Id
    order_id: Id
    customer_id: Id
    rejected_by: Id
    note: str | None = None


class ReturnReceived(msgspec.Struct, frozen=True, kw_only=True):
    """return.received: the returned parcel arrived and was inspected."""

    return_id: Id
    order_id: Id
    customer_id: Id
    warehouse_id: Id
    lines: Annotated[list[ReceivedLine], msgspec.Meta(min_length=1)]


class RefundIssued(msgspec.Struct, frozen=True, kw_only=True):
    """refund.issued: the returns desk approved a refund for a return."""

    refund_id: Id
    return_id: Id
    order_id: Id
    customer_id: Id
    payment_id: Id
    amount: Money
    method: Literal["original_payment", "wallet_credit", "bank_transfer"] = "original_payment"


SPECS = (
    EventSpec("return.requested", 1, "returns", "return", ReturnRequested, "return_id"),
    EventSpec("return.approved", 1, "returns", "return", ReturnApproved, "return_id"),
    EventSpec("return.rejected", 1, "returns", "return", ReturnRejected, "return_id"),
    EventSpec("return.received", 1, "returns", "return", ReturnReceived, "return_id"),
    EventSpec("refund.issued", 1, "returns", "return", RefundIssued, "return_id"),
)
