"""Request and response bodies of the returns API (msgspec structs at the edge)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from transactional.returns.model import AskedLine, Inspection, Return, ReturnLine
from transactional.returns.service import ReturnPage

Note = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
LineId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Units = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Reason = Literal[
    "damaged", "defective", "wrong_item", "not_as_described", "no_longer_needed", "other"
]


class ReturnLineIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Units of one order line to send back, and why."""

    line_id: LineId
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
    reason: Reason = "other"

    def asked(self) -> AskedLine:
        """The domain's line of a request."""
        return AskedLine(self.line_id, self.quantity, self.reason)


class RequestReturn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/orders/{order_id}/returns: the lines to return and an optional comment."""

    lines: Annotated[list[ReturnLineIn], msgspec.Meta(min_length=1, max_length=200)]
    comment: Note | None = None


class Decision(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/returns/{id}/approve or /reject: an optional note for the customer."""

    note: Note | None = None


class InspectionIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What came back of one line: resellable and damaged units; the rest is missing."""

    line_id: LineId
    resellable: Units = 0
    damaged: Units = 0

    def inspection(self) -> Inspection:
        """The domain's inspection of a line."""
        return Inspection(self.line_id, self.resellable, self.damaged)


class ReceiveReturn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/returns/{id}/receive: the inspection of every line of the return."""

    lines: Annotated[list[InspectionIn], msgspec.Meta(min_length=1, max_length=200)]


class RefundIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/returns/{id}/refund: issue the refund; ``amount_minor`` overrides the
    computed amount (never more than is left of the capture)."""

    amount_minor: Annotated[int, msgspec.Meta(ge=1)] | None = None


class MoneyOut(msgspec.Struct, kw_only=True):
    """An amount in minor units of a currency."""

    amount_minor: int
    currency: str


class ReturnLineOut(msgspec.Struct, kw_only=True):
    """A line of a return with its inspection (zeros until received)."""

    line_id: str
    sku: str
    seller_id: str
    warehouse_id: str
    quantity: int
    reason: str
    resellable: int
    damaged: int
    missing: int | None

    @classmethod
    def of(cls, line: ReturnLine, received: bool) -> ReturnLineOut:
        """The response body of a domain line."""
        return cls(
            line_id=line.line_id,
            sku=line.sku,
            seller_id=line.seller_id,
            warehouse_id=line.warehouse_id,
            quantity=line.quantity,
            reason=line.reason,
            resellable=line.resellable,
            damaged=line.damaged,
            missing=line.missing if received else None,
        )


class RefundOut(msgspec.Struct, kw_only=True):
    """The return's refund: planned (``issued`` false) or paid out."""

    refund_id: str
    amount: MoneyOut
    goods: MoneyOut
    shipping: MoneyOut
    method: str
    issued: bool


class ReturnOut(msgspec.Struct, kw_only=True):
    """A return as its customer and the returns desk see it."""

    return_id: str
    order_id: str
    customer_id: str
    status: str
    lines: list[ReturnLineOut]
    requested_refund: MoneyOut
    comment: str | None
    decided_by: str | None
    decision_note: str | None
    requested_at: datetime
    received_at: datetime | None
    restocked: bool
    refund: RefundOut | None
    refunded_at: datetime | None
    refund_error: str | None
    updated_at: datetime

    @classmethod
    def of(cls, ret: Return) -> ReturnOut:
        """The response body of a domain return."""

        def money(amount_minor: int) -> MoneyOut:
            return MoneyOut(amount_minor=amount_minor, currency=ret.currency)

        plan = ret.refund
        received = ret.status in ("received", "refunded")
        return cls(
            return_id=ret.return_id,
            order_id=ret.order_id,
            customer_id=ret.customer_id,
            status=ret.status,
            lines=[ReturnLineOut.of(line, received) for line in ret.lines],
            requested_refund=money(ret.requested_refund_minor),
            comment=ret.comment,
            decided_by=ret.decided_by,
            decision_note=ret.decision_note,
            requested_at=ret.requested_at,
            received_at=ret.received_at,
            restocked=ret.stock_moved,
            refund=None
            if plan is None
            else RefundOut(
                refund_id=plan.refund_id,
                amount=money(plan.amount_minor),
                goods=money(plan.goods_minor),
                shipping=money(plan.shipping_minor),
                method=plan.method,
                issued=ret.status == "refunded",
            ),
            refunded_at=ret.refunded_at,
            refund_error=ret.refund_error,
            updated_at=ret.updated_at,
        )


class ReturnPageOut(msgspec.Struct, kw_only=True):
    """A page of the caller's returns, newest first."""

    items: list[ReturnOut]
    total: int
    page: int
    page_size: int

    @classmethod
    def of(cls, page: ReturnPage) -> ReturnPageOut:
        """The response body of a domain page."""
        return cls(
            items=[ReturnOut.of(ret) for ret in page.items],
            total=page.total,
            page=page.page,
            page_size=page.page_size,
        )
