"""The returns domain (RMA): a return's lines, its state machine and its refund. Pure Python.

    requested -> approved -> received -> refunded
        \\
         +-> rejected

A customer asks to return units of a *delivered* order within the return window of each
line's category (counted from the delivery). A seller owning every line, or an admin,
approves or rejects it. The parcel is received and inspected per line: resellable units go
back on sale, damaged ones to the warehouse's damaged bucket, missing ones are neither
restocked nor refunded. The refund then goes back to the payment's original method.

Refund rules (:func:`plan_refund`), all in minor units of the order's currency:

* A line's value is what it cost the customer: ``quantity * unit_price``, minus its share of
  the order's discount (pro rata by line totals), plus the tax added on top of it (billing's
  per-line tax; tax-inclusive prices carry theirs already; an order without per-line tax
  spreads its tax pro rata). Shares are rounded by largest remainder, so the lines add up to
  ``grand_total - shipping`` exactly.
* Units are refunded cumulatively: after ``n`` of a line's ``q`` units were refunded (over
  every return of the order), the next ``k`` are worth ``floor(v*(n+k)/q) - floor(v*n/q)``;
  returning a whole line in any number of returns refunds exactly its value.
* Shipping is refunded in full, once per order, by the first refund that either completes
  the order (every unit bought has now been refunded) or includes a unit returned for a
  seller fault (defective, damaged on arrival, wrong item, not as described). A customer
  returning part of an order because it is no longer needed pays the shipping.
* Never more than what is left of the capture: captured - refunded so far (a cancel or an
  earlier refund may have taken it), else ``refund_exceeds_captured`` and nothing is booked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol, get_args

from transactional.shared.errors import Conflict, Forbidden, InvalidRequest, NotFound

ReturnStatus = Literal["requested", "approved", "rejected", "received", "refunded"]
RETURN_STATUSES: tuple[ReturnStatus, ...] = get_args(ReturnStatus)
ReturnReason = Literal[
    "damaged", "defective", "wrong_item", "not_as_described", "no_longer_needed", "other"
]
RETURN_REASONS: tuple[ReturnReason, ...] = get_args(ReturnReason)
# Reasons that are the seller's fault: the customer gets the shipping back too.
SELLER_FAULT_REASONS: frozenset[str] = frozenset(
    {"damaged", "defective", "wrong_item", "not_as_described"}
)
RefundMethod = Literal["original_payment", "wallet_credit"]
# Order statuses a return may be requested from (the window counts from the delivery).
RETURNABLE_ORDER_STATUSES: frozenset[str] = frozenset({"delivered"})
MAX_COMMENT = 500


class ReturnNotFound(NotFound):
    """No such return (or not the caller's: the two look the same)."""

    code = "return_not_found"


class IllegalReturnTransition(Conflict):
    """The return's state machine does not allow this move."""

    code = "illegal_return_transition"


class ReturnWindowClosed(InvalidRequest):
    """The return window of a line's category has passed since the delivery."""

    code = "return_window_closed"


class TooManyUnits(InvalidRequest):
    """More units asked back than bought (minus those already in other returns)."""

    code = "too_many_units"


class OrderNotReturnable(Conflict):
    """The order is not delivered (yet, or any more): nothing of it can be returned."""

    code = "order_not_returnable"


class RefundExceedsCaptured(InvalidRequest):
    """The refund is more than what is left of the capture; nothing was booked."""

    code = "refund_exceeds_captured"


class NotReturnsDesk(Forbidden):
    """Only an admin, or the seller of every line of the return, may decide or receive it."""

    code = "not_returns_desk"


# -- return windows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnWindows:
    """Days a customer has to ask for a return, per category; the nearest ancestor wins.

    Category ids extend their parent's (``cat_home_kitchen`` is under ``cat_home``), so the
    window of a category is the one of its longest configured prefix, else the default.
    """

    default_days: int
    by_category: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, days in {"default": self.default_days, **self.by_category}.items():
            if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3650:
                raise ValueError(f"return window of {name!r} must be 0..3650 days, got {days!r}")

    def days_for(self, category_id: str | None) -> int:
        """The window of a category (the default for None or an unconfigured one)."""
        current = category_id
        while current:
            if current in self.by_category:
                return self.by_category[current]
            current = current.rpartition("_")[0] if "_" in current else ""
        return self.default_days

    def closes(self, delivered_at: datetime, category_id: str | None) -> datetime:
        """When the window of a unit of this category delivered then closes."""
        return delivered_at + timedelta(days=self.days_for(category_id))


# -- what a return reads of its order -----------------------------------------------------------


@dataclass(frozen=True)
class SoldLine:
    """One line of the order as sold."""

    line_id: str
    sku: str
    product_id: str
    seller_id: str
    warehouse_id: str
    quantity: int
    unit_price_minor: int
    tax_on_top_minor: int = 0  # the line's tax when added to the price (0: inside it)

    @property
    def total_minor(self) -> int:
        """Quantity times unit price (before discount and tax on top)."""
        return self.quantity * self.unit_price_minor


@dataclass(frozen=True)
class SoldOrder:
    """The order a return is about, as the orders slice reports it."""

    order_id: str
    region: str
    customer_id: str
    status: str
    currency: str
    lines: Sequence[SoldLine]
    discount_minor: int
    shipping_minor: int
    tax_minor: int  # tax added on top of the prices (tax-inclusive prices carry their own)
    payment_id: str | None
    payment_method: str
    delivered_at: datetime | None

    def line(self, line_id: str) -> SoldLine:
        """The line with this id; InvalidRequest if the order has none."""
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise InvalidRequest(
            f"order {self.order_id} has no line {line_id!r}", code="unknown_order_line"
        )


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split pro rata over non-negative ``weights`` by largest remainder (exact sum;
    ties to the earlier weight, so every caller computes the same shares)."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * len(weights)
    shares = [total * w // whole for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares


def line_values(order: SoldOrder) -> dict[str, int]:
    """What each line cost the customer: its total, minus its share of the order's discount,
    plus the tax added on top of it (billing's per-line tax, else the order's tax pro rata).
    The values add up to ``grand_total - shipping`` exactly."""
    totals = [line.total_minor for line in order.lines]
    discounts = allocate(order.discount_minor, totals)
    nets = [total - discount for total, discount in zip(totals, discounts, strict=True)]
    taxes = [line.tax_on_top_minor for line in order.lines]
    if sum(taxes) != order.tax_minor:  # no per-line tax recorded (an older order)
        taxes = allocate(order.tax_minor, nets)
    return {
        line.line_id: net + tax for line, net, tax in zip(order.lines, nets, taxes, strict=True)
    }


def units_value(line_value: int, quantity: int, already: int, count: int) -> int:
    """The value of ``count`` more units of a line after ``already`` were refunded."""
    if quantity <= 0 or count <= 0:
        return 0
    return line_value * (already + count) // quantity - line_value * already // quantity


# -- the return aggregate -------------------------------------------------------------------


@dataclass
class ReturnLine:
    """Units of one order line asked back, and what the inspection found."""

    line_id: str
    sku: str
    seller_id: str
    warehouse_id: str
    quantity: int
    reason: ReturnReason = "other"
    resellable: int = 0
    damaged: int = 0

    @property
    def received(self) -> int:
        """Units that came back (and are refunded), whatever their condition."""
        return self.resellable + self.damaged

    @property
    def missing(self) -> int:
        """Units asked back that did not arrive."""
        return self.quantity - self.received


@dataclass(frozen=True)
class Inspection:
    """What came back of one line: resellable and damaged units (the rest is missing)."""

    line_id: str
    resellable: int
    damaged: int = 0


@dataclass(frozen=True)
class RefundPlan:
    """A refund decided and committed before the money moves (so a crash can finish it)."""

    refund_id: str
    amount_minor: int
    goods_minor: int
    shipping_minor: int
    method: RefundMethod
    planned_at: datetime
    # Units of each line this refund covers (the cumulative rule needs them later).
    units: Mapping[str, int] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """The key the money movement carries: a retry replays it instead of paying twice."""
        return f"return-refund:{self.refund_id}"


@dataclass
class Return:
    """A customer's request to send back units of one order, up to its refund."""

    return_id: str
    order_id: str
    region: str
    customer_id: str
    currency: str
    payment_id: str | None
    lines: list[ReturnLine]
    requested_at: datetime
    updated_at: datetime
    status: ReturnStatus = "requested"
    comment: str | None = None
    requested_refund_minor: int = 0
    decided_by: str | None = None
    decision_note: str | None = None
    received_at: datetime | None = None
    stock_moved: bool = False
    refund: RefundPlan | None = None
    refunded_at: datetime | None = None
    refund_error: str | None = None

    @property
    def seller_ids(self) -> frozenset[str]:
        """The sellers whose units are being returned."""
        return frozenset(line.seller_id for line in self.lines)

    @property
    def refund_pending(self) -> bool:
        """A refund is planned but not recorded as paid out yet."""
        return self.refund is not None and self.status == "received"

    def _require(self, allowed: set[str], action: str) -> None:
        if self.status not in allowed:
            raise IllegalReturnTransition(
                f"return {self.return_id} is {self.status}: it cannot be {action}",
                return_status=self.status,
            )

    def approve(self, actor: str, note: str | None, at: datetime) -> bool:
        """requested -> approved; False if it is approved already."""
        if self.status == "approved":
            return False
        self._require({"requested"}, "approved")
        self.status, self.decided_by, self.decision_note, self.updated_at = (
            "approved",
            actor,
            note,
            at,
        )
        return True

    def reject(self, actor: str, note: str | None, at: datetime) -> bool:
        """requested -> rejected; False if it is rejected already."""
        if self.status == "rejected":
            return False
        self._require({"requested"}, "rejected")
        self.status, self.decided_by, self.decision_note, self.updated_at = (
            "rejected",
            actor,
            note,
            at,
        )
        return True

    def receive(self, inspections: Sequence[Inspection], at: datetime) -> bool:
        """approved -> received with each line's inspection; False if received already.

        Every line must be inspected once; resellable + damaged may not exceed the units
        asked back (the rest is missing).
        """
        if self.status in ("received", "refunded"):
            return False
        self._require({"approved"}, "received")
        by_line = {line.line_id: line for line in self.lines}
        seen: set[str] = set()
        for inspection in inspections:
            line = by_line.get(inspection.line_id)
            if line is None:
                raise InvalidRequest(
                    f"return {self.return_id} has no line {inspection.line_id!r}",
                    code="unknown_return_line",
                )
            if inspection.line_id in seen:
                raise InvalidRequest(
                    f"line {inspection.line_id} is inspected twice", code="duplicate_line"
                )
            seen.add(inspection.line_id)
            counts = (inspection.resellable, inspection.damaged)
            if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
                raise InvalidRequest(
                    "resellable and damaged are counts of units (>= 0)", code="invalid_quantity"
                )
            if sum(counts) > line.quantity:
                raise TooManyUnits(
                    f"line {line.line_id}: {sum(counts)} units inspected, but only "
                    f"{line.quantity} were asked back",
                    line_id=line.line_id,
                )
        missing = sorted(set(by_line) - seen)
        if missing:
            raise InvalidRequest(
                f"inspect every line of the return; missing: {', '.join(missing)}",
                code="uninspected_lines",
            )
        for inspection in inspections:
            line = by_line[inspection.line_id]
            line.resellable, line.damaged = inspection.resellable, inspection.damaged
        self.status, self.received_at, self.updated_at = "received", at, at
        return True

    def plan(self, plan: RefundPlan) -> None:
        """Commit to a refund before any money moves (received, not planned yet)."""
        self._require({"received"}, "refunded")
        if self.refund is not None:
            raise IllegalReturnTransition(f"return {self.return_id} has a refund under way")
        self.refund, self.refund_error, self.updated_at = plan, None, plan.planned_at

    def abandon_refund(self, error: str, at: datetime) -> None:
        """The planned refund was refused for good (nothing moved): back to received."""
        self.refund, self.refund_error, self.updated_at = None, error, at

    def settle_refund(self, at: datetime) -> bool:
        """received (with a paid-out plan) -> refunded; False if refunded already."""
        if self.status == "refunded":
            return False
        if self.refund is None:
            raise IllegalReturnTransition(f"return {self.return_id} has no refund under way")
        self.status, self.refunded_at, self.updated_at = "refunded", at, at
        return True


# -- requesting -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AskedLine:
    """A line of a return request: units of an order line and why."""

    line_id: str
    quantity: int
    reason: ReturnReason = "other"


def new_return(
    return_id: str,
    order: SoldOrder,
    asked: Sequence[AskedLine],
    *,
    customer_id: str,
    categories: Mapping[str, str | None],
    windows: ReturnWindows,
    already_asked: Mapping[str, int],
    comment: str | None,
    now: datetime,
) -> Return:
    """A return of ``asked`` units of a delivered ``order``, checked against its windows.

    ``categories`` maps product id to category id; ``already_asked`` the units of each line
    in the order's other (not rejected) returns.
    """
    if order.customer_id != customer_id:
        raise ReturnNotFound(f"no order {order.order_id!r}")  # another's looks like none
    if order.status not in RETURNABLE_ORDER_STATUSES or order.delivered_at is None:
        raise OrderNotReturnable(
            f"order {order.order_id} is {order.status}: only a delivered order can be returned",
            order_status=order.status,
        )
    if order.payment_id is None:
        raise OrderNotReturnable(f"order {order.order_id} has no captured payment to refund")
    if not asked:
        raise InvalidRequest("a return needs at least one line", code="empty_return")
    if comment is not None and len(comment) > MAX_COMMENT:
        raise InvalidRequest(
            f"the comment is over {MAX_COMMENT} characters", code="invalid_comment"
        )
    merged: dict[str, AskedLine] = {}
    for item in asked:
        if item.reason not in RETURN_REASONS:
            raise InvalidRequest(
                f"unknown reason {item.reason!r}; use one of {', '.join(RETURN_REASONS)}",
                code="invalid_reason",
            )
        if (
            isinstance(item.quantity, bool)
            or not isinstance(item.quantity, int)
            or item.quantity < 1
        ):
            raise InvalidRequest("each line returns at least one unit", code="invalid_quantity")
        if item.line_id in merged:
            raise InvalidRequest(f"line {item.line_id} is listed twice", code="duplicate_line")
        merged[item.line_id] = item
    values = line_values(order)
    lines: list[ReturnLine] = []
    requested_refund = 0
    for item in merged.values():
        sold = order.line(item.line_id)
        left = sold.quantity - already_asked.get(sold.line_id, 0)
        if item.quantity > left:
            raise TooManyUnits(
                f"line {sold.line_id}: {item.quantity} units asked back, but only {left} of the "
                f"{sold.quantity} bought are not in a return already",
                line_id=sold.line_id,
                returnable=max(left, 0),
            )
        closes = windows.closes(order.delivered_at, categories.get(sold.product_id))
        if now > closes:
            raise ReturnWindowClosed(
                f"line {sold.line_id}: the return window closed on {closes.date().isoformat()} "
                f"({windows.days_for(categories.get(sold.product_id))} days after delivery)",
                line_id=sold.line_id,
                closed_at=closes.isoformat(),
            )
        requested_refund += units_value(values[sold.line_id], sold.quantity, 0, item.quantity)
        lines.append(
            ReturnLine(
                line_id=sold.line_id,
                sku=sold.sku,
                seller_id=sold.seller_id,
                warehouse_id=sold.warehouse_id,
                quantity=item.quantity,
                reason=item.reason,
            )
        )
    return Return(
        return_id=return_id,
        order_id=order.order_id,
        region=order.region,
        customer_id=order.customer_id,
        currency=order.currency,
        payment_id=order.payment_id,
        lines=lines,
        requested_at=now,
        updated_at=now,
        comment=comment,
        requested_refund_minor=requested_refund,
    )


# -- refunding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funds:
    """What the order's payment holds: captured, refunded so far, and how it was paid."""

    payment_id: str
    method: str
    currency: str
    captured_minor: int
    refunded_minor: int

    @property
    def refundable_minor(self) -> int:
        """Captured money not given back yet."""
        return self.captured_minor - self.refunded_minor


@dataclass(frozen=True)
class Refunded:
    """What the order's earlier refunds of returns took: units per line, and the shipping."""

    units: Mapping[str, int] = field(default_factory=dict)
    shipping_minor: int = 0


def refund_method(payment_method: str) -> RefundMethod:
    """Back to the original method: a wallet payment is credited to the wallet."""
    return "wallet_credit" if payment_method == "wallet" else "original_payment"


def plan_refund(
    ret: Return,
    order: SoldOrder,
    earlier: Refunded,
    funds: Funds,
    *,
    refund_id: str,
    now: datetime,
    amount_override: int | None = None,
) -> RefundPlan:
    """The refund of a received return under the rules of this module's docstring."""
    if ret.status != "received":
        raise IllegalReturnTransition(
            f"return {ret.return_id} is {ret.status}: only a received return is refunded",
            return_status=ret.status,
        )
    if funds.currency != order.currency:
        raise Conflict(
            f"payment {funds.payment_id} is in {funds.currency}, the order in {order.currency}",
            code="currency_mismatch",
        )
    values = line_values(order)
    goods = 0
    units: dict[str, int] = {}
    for line in ret.lines:
        sold = order.line(line.line_id)
        already = earlier.units.get(line.line_id, 0)
        goods += units_value(values[line.line_id], sold.quantity, already, line.received)
        if line.received:
            units[line.line_id] = line.received
    refunded_units = {lid: earlier.units.get(lid, 0) + units.get(lid, 0) for lid in values}
    completes = all(refunded_units.get(sold.line_id, 0) >= sold.quantity for sold in order.lines)
    fault = any(line.reason in SELLER_FAULT_REASONS and line.received for line in ret.lines)
    shipping = 0
    if earlier.shipping_minor == 0 and (completes or fault):
        shipping = order.shipping_minor
    amount = goods + shipping if amount_override is None else amount_override
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
        raise InvalidRequest(
            "nothing to refund: no unit of the return came back"
            if amount_override is None
            else "the refund amount must be a positive integer of minor units",
            code="nothing_to_refund" if amount_override is None else "invalid_amount",
        )
    if amount > funds.refundable_minor:
        raise RefundExceedsCaptured(
            f"refund {amount} is more than the {funds.refundable_minor} left of payment "
            f"{funds.payment_id} ({funds.captured_minor} captured, {funds.refunded_minor} "
            "refunded already); nothing was booked",
            refundable=funds.refundable_minor,
            amount=amount,
        )
    if amount_override is not None:
        # An admin's amount replaces the computed one; the shipping counts as refunded only
        # if the amount covers it.
        shipping = shipping if amount >= goods + shipping else 0
        goods = amount - shipping
    return RefundPlan(
        refund_id=refund_id,
        amount_minor=amount,
        goods_minor=goods,
        shipping_minor=shipping,
        method=refund_method(funds.method),
        planned_at=now,
        units=units,
    )


# -- ports --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SentRefund:
    """Money given back by a destination: its own reference and the amount."""

    reference: str
    amount_minor: int


class RefundDestinations(Protocol):
    """Where a return's money goes back: the original payment's card, or the wallet."""

    def funds(self, payment_id: str) -> Funds:
        """What the payment captured and refunded so far; NotFound if there is none."""

    def send(self, payment_id: str, plan: RefundPlan, *, return_id: str) -> SentRefund:
        """Give back ``plan.amount_minor`` by ``plan.method``, idempotent per
        ``plan.idempotency_key`` (a retry replays the first refund); refused for good with
        a DomainError (nothing moved)."""


class OrdersView(Protocol):
    """What returns read of orders, and the order moved to returned once all is back."""

    def sold(self, order_id: str) -> SoldOrder:
        """The order with its lines, totals, payment and delivery time; NotFound if none."""

    def returned(self, order_id: str, refunded_minor: int, line_ids: Sequence[str]) -> None:
        """Every unit came back and was refunded: the order becomes returned (idempotent)."""

    def refunded(self, order_id: str, refunded_minor: int) -> None:
        """Part of the order came back and was refunded: the order shows what its returns
        refunded so far (never less than it showed)."""


class Categories(Protocol):
    """The catalog's category of each product."""

    def of(self, product_ids: Sequence[str]) -> dict[str, str | None]:
        """Category id per product id (None if unknown)."""


@dataclass(frozen=True)
class ReturnedStock:
    """Units of one stock key coming back: resellable onto the shelf, damaged to the bucket."""

    sku: str
    warehouse_id: str
    resellable: int
    damaged: int


class StockReturns(Protocol):
    """Inventory's side of a received return."""

    def take_back(self, return_id: str, order_id: str, units: Sequence[ReturnedStock]) -> int:
        """Move the units (idempotent per return); the number moved by this call."""


class ReturnRepository(Protocol):
    """Stores returns."""

    def lock_order(self, order_id: str) -> None:
        """Serialise requests and refunds of one order's returns until the transaction ends."""

    def add(self, ret: Return) -> None:
        """Insert a new return."""

    def get(self, return_id: str, *, for_update: bool = False) -> Return | None:
        """A return (locked if asked), or None."""

    def save(self, ret: Return) -> None:
        """Write back a return's status, inspection and refund."""

    def of_order(self, order_id: str) -> list[Return]:
        """Every return of an order, oldest first."""

    def of_customer(self, customer_id: str, limit: int, offset: int) -> tuple[list[Return], int]:
        """A customer's returns, newest first, and how many there are."""

    def unfinished(self, before: datetime, limit: int, *, unplanned: bool) -> list[str]:
        """Received returns whose stock move or planned refund is not done (with
        ``unplanned``, also those with no refund planned nor refused yet), updated before
        ``before``, oldest first."""


def asked_units(returns: Sequence[Return]) -> dict[str, int]:
    """Units per line in these returns, rejected ones aside."""
    units: dict[str, int] = {}
    for ret in returns:
        if ret.status == "rejected":
            continue
        for line in ret.lines:
            units[line.line_id] = units.get(line.line_id, 0) + line.quantity
    return units


def refunded_before(returns: Sequence[Return], but: str) -> Refunded:
    """What the order's other returns with a planned or paid refund took."""
    units: dict[str, int] = {}
    shipping = 0
    for ret in returns:
        if ret.return_id == but or ret.refund is None:
            continue
        for line_id, count in ret.refund.units.items():
            units[line_id] = units.get(line_id, 0) + count
        shipping += ret.refund.shipping_minor
    return Refunded(units, shipping)
