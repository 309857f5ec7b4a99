"""Adapters of the checkout's ports onto the other slices' services (wired in
``souk.services``).

Each translates the slice's own types and errors into the checkout model's: a payment
gateway timeout becomes :class:`PaymentOutcomeUnknown`, a payment's status a
:class:`PaymentState`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TypeVar

from transactional.carts.model import Cart
from transactional.carts.service import CartService
from transactional.checkout.model import (
    Authorization,
    Card,
    PaymentLookup,
    PaymentOutcomeUnknown,
    PaymentState,
)
from transactional.inventory.model import Pick, Reservation, StockKey, StockLevel
from transactional.inventory.service import InventoryService
from transactional.orders.model import CANCEL_REASONS, CancelReason, PaymentMethod
from transactional.orders.service import OrderService
from transactional.payments.model import Card as GatewayCard
from transactional.payments.model import GatewayTimeout, Payment, PaymentNotFound
from transactional.payments.service import PaymentService
from transactional.shared.auth import Principal
from transactional.shared.errors import NotFound

T = TypeVar("T")
CHECKOUT_ACTOR = "system:checkout"


class CartsAdapter:
    """``CartService.contents/checked_out`` as the saga's Carts port."""

    def __init__(self, carts: CartService) -> None:
        self._carts = carts

    def contents(self, cart_id: str, principal: Principal) -> Cart:
        """The caller's cart as stored; NotFound if unknown or someone else's."""
        return self._carts.contents(cart_id, principal)

    def checked_out(self, cart_id: str, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        """Take the bought units out of the cart (idempotent per order)."""
        self._carts.checked_out(cart_id, order_id, lines)


class StockAdapter:
    """``InventoryService`` as the Stock port."""

    def __init__(self, inventory: InventoryService) -> None:
        self._inventory = inventory

    def reserve_through(
        self,
        checkout_id: str,
        lines: Sequence[tuple[str, int]],
        ship_region: str,
        hold: Callable[[list[Pick], dict[StockKey, StockLevel]], T],
        *,
        levels: Sequence[StockLevel] | None = None,
    ) -> T:
        """The Redis gate, then ``hold`` (PostgreSQL's final word), retried on a lost race."""
        return self._inventory.reserve_through(checkout_id, lines, ship_region, hold, levels=levels)

    def reservations_for(
        self,
        checkout_id: str,
        picks: Sequence[Pick],
        levels: Mapping[StockKey, StockLevel],
        now: datetime,
    ) -> list[Reservation]:
        """The held reservations that make ``picks`` durable."""
        return self._inventory.reservations_for(checkout_id, picks, levels, now)

    def give_back(self, units: Mapping[StockKey, int]) -> None:
        """Return released units to the Redis counters."""
        self._inventory.give_back(units)

    def commit(self, checkout_id: str, order_id: str) -> None:
        """Sell the held units to the order (idempotent)."""
        self._inventory.commit(checkout_id, order_id)

    def release(self, checkout_id: str, reason: str) -> None:
        """Give held units back (idempotent; no-op once committed)."""
        self._inventory.release(checkout_id, reason)

    def restock(self, order_id: str, reason: str) -> None:
        """Put units sold to the order back on sale (idempotent)."""
        self._inventory.restock(order_id, reason)


class OrdersAdapter:
    """``OrderService`` as the Orders port: one order line per (SKU, warehouse) allocation."""

    def __init__(self, orders: OrderService) -> None:
        self._orders = orders

    def order_of_checkout(self, checkout_id: str) -> str | None:
        """The id of the checkout's order, if one was placed."""
        order = self._orders.by_checkout(checkout_id)
        return None if order is None else order.order_id

    def is_payable(self, order_id: str) -> bool:
        """Whether the order is still placed with no cancel begun."""
        try:
            order = self._orders.get(order_id)
        except NotFound:
            return False
        return order.status in ("placed", "on_hold") and order.pending is None

    def hold(self, order_id: str, cause: str) -> None:
        """Put the order on hold for a fraud review (idempotent)."""
        self._orders.hold(order_id, CHECKOUT_ACTOR, cause)

    def mark_paid(self, order_id: str, payment_id: str, amount_minor: int, method: str) -> None:
        """Record the captured payment (idempotent per payment)."""
        paid_by: PaymentMethod = method if method in ("upi", "wallet", "emi") else "card"  # type: ignore[assignment]
        self._orders.mark_paid(order_id, payment_id, amount_minor, paid_by)

    def cancel(self, order_id: str, reason: str) -> None:
        """Cancel the order as the system (idempotent)."""
        cause: CancelReason = reason if reason in CANCEL_REASONS else "payment_failed"
        self._orders.cancel(order_id, CHECKOUT_ACTOR, cause)


_STATES = {
    "authorized": PaymentState.AUTHORIZED,
    "captured": PaymentState.CAPTURED,
    "partially_refunded": PaymentState.CAPTURED,
    "refunded": PaymentState.REFUNDED,
    "declined": PaymentState.DECLINED,
    "voided": PaymentState.VOIDED,
    # resolve() asked the gateway, which has nothing (yet): the call may still be in flight.
    "pending": PaymentState.PENDING,
}


class PaymentsAdapter:
    """``PaymentService`` as the Payments port; a gateway timeout is an unknown outcome."""

    def __init__(self, payments: PaymentService) -> None:
        self._payments = payments

    @property
    def gateway(self) -> str:
        """The processor adapter's name."""
        return self._payments.gateway

    def gateway_for(self, method: str) -> str:
        """The adapter's name a payment of ``method`` goes through."""
        return self._payments.gateway_for(method)

    def hold(self, payment: Payment) -> None:
        """Authorise at the processor, applied to ``payment`` in memory only."""
        try:
            self._payments.hold(payment)
        except GatewayTimeout as timeout:
            raise PaymentOutcomeUnknown(str(timeout)) from timeout

    def collect(self, payment: Payment) -> int:
        """Capture at the processor, applied to ``payment`` in memory only."""
        try:
            return self._payments.collect(payment)
        except GatewayTimeout as timeout:
            raise PaymentOutcomeUnknown(str(timeout)) from timeout

    def tokenize(self, card: Card, customer_id: str) -> str:
        """Vault a raw card at the gateway as the customer's; its token."""
        return self._payments.tokenize(
            GatewayCard(
                number=card.number,
                exp_month=card.exp_month,
                exp_year=card.exp_year,
                cvc=card.cvc,
                holder=card.holder or "",
            ),
            customer_id,
        )

    def owns(self, token: str, customer_id: str) -> bool:
        """Whether the vault token is the customer's."""
        return self._payments.token_owned_by(token, customer_id)

    def authorize(self, authorization: Authorization) -> None:
        """Hold the amount; PaymentDeclined (402), or PaymentOutcomeUnknown on a timeout."""
        try:
            self._payments.authorize(
                authorization.payment_id,
                authorization.order_id,
                authorization.customer_id,
                authorization.amount_minor,
                authorization.currency,
                authorization.instrument_token,
                authorization.idempotency_key,
            )
        except GatewayTimeout as timeout:
            raise PaymentOutcomeUnknown(str(timeout)) from timeout

    def capture(self, payment_id: str) -> None:
        """Collect the authorized amount (idempotent)."""
        try:
            self._payments.capture(payment_id)
        except GatewayTimeout as timeout:
            raise PaymentOutcomeUnknown(str(timeout)) from timeout

    def void(self, payment_id: str) -> None:
        """Release the hold (idempotent; no payment yet means nothing is held)."""
        with contextlib.suppress(PaymentNotFound):  # never authorized: nothing to release
            self._payments.void(payment_id)

    def refund(self, payment_id: str) -> None:
        """Give all captured money back."""
        self._payments.refund(payment_id, None, reason="cancellation")

    def lookup(self, payment_id: str, idempotency_key: str) -> PaymentLookup:
        """Settle the payment from the gateway's record of its idempotency key."""
        # resolve() asks the gateway by the payment's idempotency key (``idempotency_key``)
        # and records what it did; no payment row means the gateway was never called.
        payment = self._payments.resolve(payment_id)
        if payment is None:
            return PaymentLookup(PaymentState.NONE)
        if payment.awaiting_action:  # the processor waits on the payer (3-D Secure, UPI)
            return PaymentLookup(PaymentState.ACTION_REQUIRED)
        return PaymentLookup(_STATES.get(payment.status, PaymentState.NONE), payment.decline_code)
