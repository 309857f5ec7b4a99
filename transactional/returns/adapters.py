"""Adapters of the returns ports over the other slices' services, and the windows file."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transactional.catalog.service import CatalogService
from transactional.inventory.service import InventoryService, ReturnedUnits
from transactional.orders.service import OrderService
from transactional.payments.service import PaymentService
from transactional.returns.model import (
    Funds,
    RefundPlan,
    ReturnedStock,
    ReturnWindows,
    SentRefund,
    SoldLine,
    SoldOrder,
)
from transactional.shared.errors import NotFound

DEFAULT_WINDOWS_FILE = Path(__file__).with_name("return_windows.toml")


def load_windows(path: Path | None = None) -> ReturnWindows:
    """The return windows of a TOML file (``default_days`` and a ``[categories]`` table)."""
    source = path or DEFAULT_WINDOWS_FILE
    try:
        data: dict[str, Any] = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"cannot read the return windows {source}: {error}") from error
    categories = data.get("categories", {})
    if not isinstance(categories, dict):
        raise ValueError(f"{source}: [categories] must map category ids to days")
    return ReturnWindows(int(data.get("default_days", 30)), dict(categories))


class OrdersAdapter:
    """The returns' view of orders (OrdersView) over the order service."""

    def __init__(self, orders: OrderService) -> None:
        self._orders = orders

    def sold(self, order_id: str) -> SoldOrder:
        """The order with its lines, totals, payment and delivery time."""
        order = self._orders.get(order_id)
        delivered = [t.at for t in self._orders.transitions(order_id) if t.to_status == "delivered"]
        totals = order.totals
        return SoldOrder(
            order_id=order.order_id,
            region=order.region,
            customer_id=order.customer_id,
            status=order.status,
            currency=order.currency,
            lines=[
                SoldLine(
                    line_id=line.line_id,
                    sku=line.sku,
                    product_id=line.product_id,
                    seller_id=line.seller_id,
                    warehouse_id=line.warehouse_id,
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price_minor,
                    # Billing's per-line tax, when it is added on top of the price.
                    tax_on_top_minor=0
                    if getattr(line, "tax_included", False)
                    else int(getattr(line, "tax_minor", 0)),
                )
                for line in order.lines
            ],
            discount_minor=totals.discount_minor,
            shipping_minor=totals.shipping_minor,
            tax_minor=totals.tax_minor,
            payment_id=order.payment_id if order.paid_minor is not None else None,
            payment_method=order.payment_method,
            delivered_at=delivered[-1] if delivered else None,
        )

    def returned(self, order_id: str, refunded_minor: int, line_ids: Sequence[str]) -> None:
        """Every unit came back and was refunded: the order becomes returned."""
        self._orders.record_returned(
            order_id, refunded_minor, "system:returns", "every unit returned and refunded"
        )

    def refunded(self, order_id: str, refunded_minor: int) -> None:
        """Part of the order was refunded through returns: the order shows the amount."""
        self._orders.record_refunded(order_id, refunded_minor)


class CatalogCategories:
    """Category of each product (Categories) from the catalog."""

    def __init__(self, catalog: CatalogService) -> None:
        self._catalog = catalog

    def of(self, product_ids: Sequence[str]) -> dict[str, str | None]:
        """Category id per product id (None if the product is gone)."""
        categories: dict[str, str | None] = {}
        for product_id in product_ids:
            try:
                categories[product_id] = self._catalog.product(product_id).category_id
            except NotFound:
                categories[product_id] = None
        return categories


class InventoryReturns:
    """Returned units back to stock (StockReturns) through the inventory service."""

    def __init__(self, inventory: InventoryService) -> None:
        self._inventory = inventory

    def take_back(self, return_id: str, order_id: str, units: Sequence[ReturnedStock]) -> int:
        """Move the units, idempotent per return."""
        return self._inventory.take_back(
            return_id,
            order_id,
            [ReturnedUnits(u.sku, u.warehouse_id, u.resellable, u.damaged) for u in units],
        )


class PaymentRefunds:
    """Refunds to the original payment (RefundDestinations) through the payment service.

    A card payment is refunded at its card gateway; a wallet payment is one of the wallet's
    gateway, whose refund credits the wallet: both go through ``PaymentService.refund``
    with the plan's idempotency key, which books the reverse ledger entries with it.
    """

    def __init__(self, payments: PaymentService) -> None:
        self._payments = payments

    def funds(self, payment_id: str) -> Funds:
        """What the payment captured and refunded so far."""
        payment = self._payments.find(payment_id)
        if payment is None:
            raise NotFound(f"no payment {payment_id}", code="payment_not_found")
        return Funds(
            payment_id=payment.payment_id,
            method=payment.method,
            currency=payment.currency,
            captured_minor=payment.captured_minor,
            refunded_minor=payment.refunded_minor,
        )

    def send(self, payment_id: str, plan: RefundPlan, *, return_id: str) -> SentRefund:
        """Refund the plan's amount on the payment, once per plan."""
        self._payments.refund(
            payment_id,
            plan.amount_minor,
            reason="return",
            idempotency_key=plan.idempotency_key,
            return_id=return_id,
        )
        return SentRefund(reference=plan.idempotency_key, amount_minor=plan.amount_minor)
