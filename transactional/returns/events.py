"""The events a return emits, built from the return (pure; no I/O)."""

from __future__ import annotations

import msgspec

from schemas.common import Money
from schemas.envelope import Envelope
from schemas.registry import REGISTRY
from schemas.returns import (
    ReceivedLine,
    RefundIssued,
    ReturnApproved,
    ReturnLine,
    ReturnReceived,
    ReturnRejected,
    ReturnRequested,
)
from transactional.returns.model import Return


def _event(ret: Return, event_type: str, payload: msgspec.Struct) -> Envelope:
    return REGISTRY.new_event(event_type, payload, region=ret.region)


def _money(ret: Return, amount_minor: int) -> Money:
    return Money(amount_minor=amount_minor, currency=ret.currency)


def requested_event(ret: Return) -> Envelope:
    """return.requested: the lines asked back and the refund they would be worth."""
    return _event(
        ret,
        "return.requested",
        ReturnRequested(
            return_id=ret.return_id,
            order_id=ret.order_id,
            customer_id=ret.customer_id,
            lines=[
                ReturnLine(
                    line_id=line.line_id, sku=line.sku, quantity=line.quantity, reason=line.reason
                )
                for line in ret.lines
            ],
            requested_refund=_money(ret, ret.requested_refund_minor),
            comment=ret.comment,
        ),
    )


def approved_event(ret: Return) -> Envelope:
    """return.approved: who accepted it."""
    return _event(
        ret,
        "return.approved",
        ReturnApproved(
            return_id=ret.return_id,
            order_id=ret.order_id,
            customer_id=ret.customer_id,
            approved_by=ret.decided_by or "system",
            note=ret.decision_note,
        ),
    )


def rejected_event(ret: Return) -> Envelope:
    """return.rejected: who refused it and why."""
    return _event(
        ret,
        "return.rejected",
        ReturnRejected(
            return_id=ret.return_id,
            order_id=ret.order_id,
            customer_id=ret.customer_id,
            rejected_by=ret.decided_by or "system",
            note=ret.decision_note,
        ),
    )


def received_event(ret: Return) -> Envelope:
    """return.received: per line, the resellable units (restocked), the damaged ones and
    the missing ones (neither restocked nor refunded)."""
    lines: list[ReceivedLine] = []
    for line in ret.lines:
        for quantity, condition, restock in (
            (line.resellable, "sellable", True),
            (line.damaged, "damaged", False),
            (line.missing, "missing", False),
        ):
            if quantity:
                lines.append(
                    ReceivedLine(
                        line_id=line.line_id,
                        sku=line.sku,
                        quantity=quantity,
                        condition=condition,  # type: ignore[arg-type]  # an ItemCondition
                        restock=restock,
                    )
                )
    return _event(
        ret,
        "return.received",
        ReturnReceived(
            return_id=ret.return_id,
            order_id=ret.order_id,
            customer_id=ret.customer_id,
            warehouse_id=ret.lines[0].warehouse_id,
            lines=lines,
        ),
    )


def refund_issued_event(ret: Return) -> Envelope:
    """refund.issued: the amount given back and where it went."""
    plan = ret.refund
    if plan is None or ret.payment_id is None:
        raise ValueError(f"return {ret.return_id} has no refund to announce")
    return _event(
        ret,
        "refund.issued",
        RefundIssued(
            refund_id=plan.refund_id,
            return_id=ret.return_id,
            order_id=ret.order_id,
            customer_id=ret.customer_id,
            payment_id=ret.payment_id,
            amount=_money(ret, plan.amount_minor),
            method=plan.method,
        ),
    )
