"""Adapters of the saga's ports onto the other slices' services (wired in ``souk.services``).

Each translates the slice's own types and errors into the checkout model's: a payment
gateway timeout becomes :class:`PaymentOutcomeUnknown`, a cart's unavailable lines become
unpriced items, an order's allocations become one order line per warehouse.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from schemas.common import Address
from transactional.carts.service import CartService
from transactional.checkout.model import (
    Allocation,
    Authorization,
    Card,
    CartItem,
    CartSnapshot,
    OrderRequest,
    PaymentLookup,
    PaymentOutcomeUnknown,
    PaymentState,
    PlacedOrder,
    ShippingAddress,
    Totals,
)
from transactional.customers.service import CustomerService
from transactional.inventory.service import InventoryService
from transactional.orders.model import CANCEL_REASONS, CancelReason
from transactional.orders.service import OrderService, PlaceOrder
from transactional.payments.model import Card as GatewayCard
from transactional.payments.model import GatewayTimeout, PaymentNotFound
from transactional.payments.service import PaymentService
from transactional.shared.auth import Principal
from transactional.shared.errors import NotFound

CHECKOUT_ACTOR = "system:checkout"


class CartsAdapter:
    """``CartService.snapshot/checked_out`` as the saga's Carts port."""

    def __init__(self, carts: CartService) -> None:
        self._carts = carts

    def snapshot(self, cart_id: str, principal: Principal) -> CartSnapshot:
        """The caller's cart priced now; unavailable lines come without a price."""
        view = self._carts.snapshot(cart_id, principal)
        items = [
            CartItem(
                sku=line.sku,
                product_id=line.product_id,
                seller_id=line.seller_id,
                title=line.title,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                available=line.available,
            )
            for line in view.lines
        ]
        items += [
            CartItem(
                sku=line.sku,
                product_id=line.product_id,
                seller_id="",
                title="",
                quantity=line.quantity,
                unit_price_minor=None,
                unavailable=line.reason,
            )
            for line in view.unavailable
        ]
        return CartSnapshot(
            cart_id=view.cart_id,
            customer_id=view.customer_id,
            currency=view.currency,
            lines=tuple(items),
            subtotal_minor=view.subtotal_minor,
        )

    def checked_out(self, cart_id: str, order_id: str, lines: Sequence[tuple[str, int]]) -> None:
        """Take the bought units out of the cart (idempotent per order)."""
        self._carts.checked_out(cart_id, order_id, lines)


class AddressBook:
    """``CustomerService.get(customer_id).address(address_id)`` as the Addresses port."""

    def __init__(self, customers: CustomerService) -> None:
        self._customers = customers

    def address(self, customer_id: str, address_id: str) -> ShippingAddress | None:
        """One of the customer's saved addresses, or None."""
        try:
            customer = self._customers.get(customer_id)
        except NotFound:
            return None
        found = customer.address(address_id)
        if found is None:
            return None
        return ShippingAddress(
            full_name=found.full_name,
            line1=found.line1,
            line2=found.line2,
            city=found.city,
            subdivision=found.subdivision,
            postal_code=found.postal_code,
            country=found.country,
            phone=found.phone,
            address_id=found.address_id,
        )


class StockAdapter:
    """``InventoryService.reserve/commit/release`` as the Stock port."""

    def __init__(self, inventory: InventoryService) -> None:
        self._inventory = inventory

    def reserve(
        self, checkout_id: str, lines: Sequence[tuple[str, int]], ship_region: str
    ) -> list[Allocation]:
        """Hold all lines or none; InsufficientStock (409, with the SKUs) otherwise."""
        return [
            Allocation(a.reservation_id, a.sku, a.warehouse_id, a.quantity)
            for a in self._inventory.reserve(checkout_id, lines, ship_region)
        ]

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

    def place(self, request: OrderRequest) -> PlacedOrder:
        """Create the checkout's order (idempotent per checkout id)."""
        plan = request.plan
        by_sku = {line.sku: line for line in plan.lines}
        lines = [
            (
                a.sku,
                by_sku[a.sku].product_id,
                by_sku[a.sku].seller_id,
                by_sku[a.sku].title,
                a.quantity,
                by_sku[a.sku].unit_price_minor,
                a.warehouse_id,
            )
            for a in request.allocations
        ]
        shipping = plan.shipping
        order = self._orders.place(
            PlaceOrder(
                checkout_id=request.checkout_id,
                customer_id=request.customer_id,
                region=request.region,
                currency=plan.currency,
                lines=lines,
                shipping_address=Address(
                    country=shipping.country,
                    subdivision=shipping.subdivision,
                    city=shipping.city,
                    postal_code=shipping.postal_code,
                    address_id=shipping.address_id,
                ),
                payment_method="card",
                payment_id=request.payment_id,
            )
        )
        totals = order.totals
        return PlacedOrder(
            order.order_id,
            Totals(
                currency=order.currency,
                subtotal_minor=totals.subtotal_minor,
                discount_minor=totals.discount_minor,
                shipping_minor=totals.shipping_minor,
                tax_minor=totals.tax_minor,
                grand_total_minor=totals.grand_total,
            ),
        )

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
        return order.status == "placed" and order.pending is None

    def mark_paid(self, order_id: str, payment_id: str, amount_minor: int, method: str) -> None:
        """Record the captured payment (idempotent per payment)."""
        self._orders.mark_paid(order_id, payment_id, amount_minor, "card")

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
        return PaymentLookup(_STATES.get(payment.status, PaymentState.NONE), payment.decline_code)
