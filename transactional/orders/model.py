"""The order domain: an order's lines, its fulfilment groups and its state machine. Pure Python.

    placed -> paid -> packed -> shipped -> delivered -> returned
       \\        \\
        +--------+--> cancelled   (a paid order's cancel refunds the capture)

    placed -> on_hold -> paid | cancelled

``on_hold``: the payment is authorized but not captured while a person reviews a checkout
the fraud screen found suspicious; the review pays it (captured) or cancels it (voided).

Every transition is recorded with its time, cause and actor. Asking for the status an order
already has is an idempotent no-op (at-least-once callers retry); anything else not drawn
above is an :class:`IllegalTransition` (HTTP 409).

Cancelling and returning give money and stock back through other services, so they happen in
three steps: the intent is committed first (:meth:`Order.begin`, a :class:`PendingChange`),
the compensations run with no transaction open, then :meth:`Order.settle` makes the move.
While a change is pending the order can move nowhere else (no packing a cancelled order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, get_args

from transactional.shared.errors import Conflict, InvalidRequest, NotFound

OrderStatus = Literal[
    "placed", "paid", "packed", "shipped", "delivered", "cancelled", "returned", "on_hold"
]
ORDER_STATUSES: tuple[OrderStatus, ...] = get_args(OrderStatus)
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    "placed": frozenset({"paid", "cancelled", "on_hold"}),
    "on_hold": frozenset({"paid", "cancelled"}),
    "paid": frozenset({"packed", "cancelled"}),
    "packed": frozenset({"shipped"}),
    "shipped": frozenset({"delivered"}),
    "delivered": frozenset({"returned"}),
    "cancelled": frozenset(),
    "returned": frozenset(),
}
PaymentMethod = Literal["card", "wallet", "emi", "upi", "net_banking", "cod", "gift_card"]
CancelReason = Literal[
    "customer_request",
    "payment_failed",
    "out_of_stock",
    "fraud_suspected",
    "seller_cancelled",
    "timeout",
]
CANCEL_REASONS: tuple[CancelReason, ...] = get_args(CancelReason)
# Who acts: "<kind>" or "<kind>:<id>", e.g. "customer:cus_1", "admin:adm_7", "system:checkout".
ACTOR_KINDS = frozenset({"customer", "seller", "system", "support", "admin"})


class IllegalTransition(Conflict):
    """The order's state machine does not allow this move."""

    code = "illegal_transition"


class OrderNotFound(NotFound):
    """No such order (or not the caller's: the two look the same)."""

    code = "order_not_found"


class CheckoutInProgress(Conflict):
    """A placed order still belongs to its checkout, which pays for it or cancels it itself."""

    code = "checkout_in_progress"


def actor_kind(actor: str) -> str:
    """The kind of an actor string; InvalidRequest if it is not one Souk knows."""
    kind = actor.partition(":")[0]
    if kind not in ACTOR_KINDS:
        raise InvalidRequest(
            f"unknown actor {actor!r}; use one of {', '.join(sorted(ACTOR_KINDS))} "
            "optionally followed by ':<id>'",
            code="invalid_actor",
        )
    return kind


def order_id_for(region: str, unique_hex: str) -> str:
    """``ord_<region>_<hex>``: the region rides in the id so the id alone routes to its shard."""
    return f"ord_{region}_{unique_hex}"


def region_of(order_id: str) -> str:
    """The region an order id names; OrderNotFound for anything that is not an order id."""
    prefix, _, rest = order_id.partition("_")
    region, _, unique = rest.partition("_")
    if prefix != "ord" or not region or not unique or "_" in unique:
        raise OrderNotFound(f"no order {order_id!r}")
    return region


@dataclass(frozen=True)
class Totals:
    """The money of an order in minor units: grand = subtotal - discount + shipping + tax."""

    subtotal_minor: int
    discount_minor: int = 0
    shipping_minor: int = 0
    tax_minor: int = 0
    grand_total_minor: int | None = None

    @property
    def grand_total(self) -> int:
        """The amount to pay."""
        if self.grand_total_minor is not None:
            return self.grand_total_minor
        return self.subtotal_minor - self.discount_minor + self.shipping_minor + self.tax_minor

    def check(self, lines_subtotal: int) -> None:
        """InvalidRequest unless the totals add up and agree with the lines."""
        parts = (self.subtotal_minor, self.discount_minor, self.shipping_minor, self.tax_minor)
        if any(_not_minor(part) for part in parts) or _not_minor(self.grand_total):
            raise InvalidRequest(
                "totals must be non-negative integers of minor units", code="invalid_totals"
            )
        if self.subtotal_minor != lines_subtotal:
            raise InvalidRequest(
                f"subtotal {self.subtotal_minor} is not the lines' {lines_subtotal}",
                code="invalid_totals",
            )
        expected = self.subtotal_minor - self.discount_minor + self.shipping_minor + self.tax_minor
        if self.grand_total != expected:
            raise InvalidRequest(
                f"grand total {self.grand_total} is not subtotal - discount + shipping + tax "
                f"= {expected}",
                code="invalid_totals",
            )


def _not_minor(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int) or value < 0


@dataclass(frozen=True)
class ShippingAddress:
    """Where the order goes, coarse (no street): the full address stays with the customer."""

    country: str
    subdivision: str | None = None
    city: str | None = None
    postal_code: str | None = None
    address_id: str | None = None


@dataclass(frozen=True)
class OrderLine:
    """A quantity of one seller's SKU at a unit price, shipped from one warehouse."""

    line_id: str
    sku: str
    product_id: str
    seller_id: str
    title: str
    quantity: int
    unit_price_minor: int
    warehouse_id: str
    # The line's tax from billing's rules at checkout: its rate in percent and amount, inside
    # the price (tax-inclusive regions) or added on top (``totals.tax_minor`` sums those).
    tax_rate: Decimal = Decimal(0)
    tax_minor: int = 0
    tax_included: bool = False

    @property
    def total_minor(self) -> int:
        """Quantity times unit price."""
        return self.quantity * self.unit_price_minor


@dataclass
class FulfilmentGroup:
    """The lines one seller ships from one warehouse: packed and shipped together."""

    group_id: str
    seller_id: str
    warehouse_id: str
    line_ids: list[str]
    status: OrderStatus = "placed"
    shipment_id: str | None = None
    carrier: str | None = None
    tracking_number: str | None = None


def split_into_groups(order_id: str, lines: Sequence[OrderLine]) -> list[FulfilmentGroup]:
    """One group per (seller, warehouse), in the order the pair first appears."""
    groups: dict[tuple[str, str], FulfilmentGroup] = {}
    for line in lines:
        key = (line.seller_id, line.warehouse_id)
        if key not in groups:
            groups[key] = FulfilmentGroup(
                group_id=f"{order_id}_g{len(groups) + 1}",
                seller_id=line.seller_id,
                warehouse_id=line.warehouse_id,
                line_ids=[],
            )
        groups[key].line_ids.append(line.line_id)
    return list(groups.values())


@dataclass(frozen=True)
class PendingChange:
    """A cancel or return under way: committed before its refund and restock run."""

    to: OrderStatus  # "cancelled" or "returned"
    cause: str  # for a cancel, its CancelReason
    actor: str
    note: str | None
    since: datetime
    attempts: int = 0  # compensations that failed so far (the sweeper backs off)
    retry_at: datetime | None = None  # not retried by the sweeper before this

    @property
    def recorded_cause(self) -> str:
        """The cause written on the transition (a cancel's note rides along)."""
        if self.to == "cancelled" and self.note:
            return f"{self.cause}: {self.note}"
        return self.cause


PENDING_TARGETS: frozenset[OrderStatus] = frozenset({"cancelled", "returned"})


@dataclass(frozen=True)
class Transition:
    """One recorded move of the state machine (``from_status`` None for the placement)."""

    order_id: str
    from_status: OrderStatus | None
    to_status: OrderStatus
    at: datetime
    cause: str
    actor: str


@dataclass
class Order:
    """A customer's order in its region, with lines, fulfilment groups and payment."""

    order_id: str
    region: str
    checkout_id: str
    customer_id: str
    currency: str
    lines: list[OrderLine]
    groups: list[FulfilmentGroup]
    totals: Totals
    shipping_address: ShippingAddress
    payment_method: PaymentMethod
    placed_at: datetime
    updated_at: datetime
    status: OrderStatus = "placed"
    payment_id: str | None = None
    paid_minor: int | None = None
    refunded_minor: int = 0
    pending: PendingChange | None = None
    history: list[Transition] = field(default_factory=list)  # transitions made in this session

    @property
    def tax_due_minor(self) -> int:
        """All the tax the order carries: added on top (``totals.tax_minor``) or inside its
        tax-inclusive prices; what the seller owes the tax office."""
        return sum(line.tax_minor for line in self.lines)

    @property
    def tax_included_minor(self) -> int:
        """The tax inside the lines' prices (tax-inclusive regions), not added on top."""
        return sum(line.tax_minor for line in self.lines if line.tax_included)

    def can_become(self, to: OrderStatus) -> bool:
        """Whether ``to`` is the current status or one step of the state machine away."""
        return to == self.status or to in TRANSITIONS[self.status]

    def require(self, to: OrderStatus) -> None:
        """IllegalTransition unless the order may move to ``to`` (or already is there)."""
        if to not in TRANSITIONS:
            raise InvalidRequest(f"unknown order status {to!r}", code="invalid_status")
        pending = self.pending
        if pending is not None and to not in (self.status, pending.to):
            raise IllegalTransition(
                f"order {self.order_id} is being {pending.to}; it cannot become {to}",
                order_status=self.status,
                to=to,
                pending=pending.to,
            )
        if not self.can_become(to):
            allowed = ", ".join(sorted(TRANSITIONS[self.status])) or "nothing (final)"
            raise IllegalTransition(
                f"order {self.order_id} is {self.status}; it can become {allowed}, not {to}",
                order_status=self.status,
                to=to,
            )

    def transition(
        self, to: OrderStatus, at: datetime, cause: str, actor: str
    ) -> Transition | None:
        """Move to ``to``, recording when, why and by whom; None if already there."""
        self.require(to)
        actor_kind(actor)
        if to == self.status:
            return None
        move = Transition(self.order_id, self.status, to, at, cause, actor)
        self.status = to
        self.updated_at = at
        for group in self.groups:
            group.status = to
        self.history.append(move)
        return move

    def begin(
        self, to: OrderStatus, cause: str, actor: str, note: str | None, at: datetime
    ) -> bool:
        """Record the intent to cancel or return; False if it is under way or done already."""
        if to not in PENDING_TARGETS:
            raise InvalidRequest(
                f"only a cancel or return is begun, not {to!r}", code="invalid_status"
            )
        self.require(to)
        actor_kind(actor)
        if self.status == to or self.pending is not None:
            return False
        self.pending = PendingChange(to, cause, actor, note, at)
        self.updated_at = at
        return True

    def settle(self, at: datetime) -> PendingChange:
        """Make the pending cancel or return (its compensation done) and clear the intent."""
        pending = self.pending
        if pending is None:
            raise IllegalTransition(f"order {self.order_id} has no cancel or return under way")
        self.pending = None
        self.transition(pending.to, at, pending.recorded_cause, pending.actor)
        return pending

    def mark_paid(self, payment_id: str, amount_minor: int, at: datetime, actor: str) -> bool:
        """Record the captured payment; False if this payment was recorded already."""
        if self.payment_id == payment_id and self.paid_minor is not None:
            return False
        self.require("paid")
        if self.status == "paid":
            raise Conflict(
                f"order {self.order_id} is already paid by {self.payment_id}",
                code="already_paid",
            )
        if amount_minor != self.totals.grand_total:
            raise InvalidRequest(
                f"paid {amount_minor} is not the order's total {self.totals.grand_total}",
                code="amount_mismatch",
            )
        self.payment_id = payment_id
        self.paid_minor = amount_minor
        self.transition("paid", at, f"payment {payment_id} captured", actor)
        return True


class InventoryPort(Protocol):
    """What orders need from inventory when an order is cancelled or returned."""

    def release(self, checkout_id: str, reason: str) -> object:
        """Give back units still reserved for the checkout (no-op once committed)."""

    def restock(self, order_id: str, reason: str) -> object:
        """Put the order's committed (sold) units back on hand."""


class PaymentState(Protocol):
    """The part of a payment orders read after voiding or refunding it."""

    @property
    def refunded_minor(self) -> int:
        """Money given back so far."""


class PaymentsPort(Protocol):
    """What orders need from payments when an order is cancelled or returned."""

    def void(self, payment_id: str) -> PaymentState:
        """Release an uncaptured authorisation (idempotent)."""

    def refund(
        self,
        payment_id: str,
        amount_minor: int | None = None,
        *,
        reason: Literal["return", "cancellation", "goodwill", "duplicate", "fraud"] = ...,
    ) -> PaymentState:
        """Refund what is left of the capture when ``amount_minor`` is None (idempotent)."""


class HeldOrderReviews(Protocol):
    """Settles an order held for a fraud review (its checkout holds the payment)."""

    def review_held(self, checkout_id: str, approve: bool, actor: str) -> object:
        """Approve (capture, paid) or reject (void, cancelled) the checkout's held order;
        a Conflict (409) unless it is on hold."""


@dataclass(frozen=True)
class OrderPage:
    """One page of a customer's orders, newest first, with the total count."""

    items: list[Order]
    total: int
    page: int
    page_size: int


class OrderRepository(Protocol):
    """Stores orders in their region's partition."""

    def add(self, order: Order) -> bool:
        """Insert a new order; False if its checkout already has an order."""

    def by_checkout(self, checkout_id: str) -> Order | None:
        """The order placed from a checkout, or None."""

    def get(self, order_id: str, *, for_update: bool = False) -> Order | None:
        """An order with lines and groups (locked if asked), or None."""

    def save(self, order: Order) -> None:
        """Write back status, payment, groups and the transitions made in ``history``."""

    def transitions(self, order_id: str) -> list[Transition]:
        """Every recorded transition of an order, oldest first."""

    def page_for(self, customer_id: str, page: int, page_size: int) -> OrderPage:
        """A customer's orders, newest first."""

    def pending_due(self, before: datetime, now: datetime, limit: int) -> list[str]:
        """Ids of orders with a cancel or return begun before ``before`` and due for a retry
        at ``now``, the longest due first."""
