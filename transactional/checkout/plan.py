"""What a checkout will buy, pure: the cart priced now, checked, turned into a :class:`Plan`,
and the order and payment that plan becomes.

Everything here is decided from data read before any lock is taken; PostgreSQL's
conditional stock update still has the last word on availability.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from schemas.common import Address as EventAddress
from transactional.billing.tax import TaxRules, format_rate, split
from transactional.carts.model import Cart, CartView, Offer, price_cart
from transactional.catalog.model import SkuOffer
from transactional.checkout.model import (
    Allocation,
    Checkout,
    CheckoutRequest,
    InvalidCart,
    OutOfStock,
    PlacedOrder,
    Plan,
    PlanLine,
    ShippingAddress,
    Totals,
    authorize_key,
    payment_id_of,
)
from transactional.customers.model import Address
from transactional.inventory.model import StockLevel
from transactional.orders.model import Order
from transactional.orders.placement import NewLine, PlaceOrder, new_order
from transactional.payments.emi_payment import emi_columns
from transactional.payments.instruments import split_gateway
from transactional.payments.model import Payment
from transactional.shared.errors import InvalidRequest
from transactional.shared.regions import region_of_country


def priced(cart: Cart, offers: Mapping[str, SkuOffer], levels: Sequence[StockLevel]) -> CartView:
    """The cart with current prices and availability (summed over warehouses)."""
    available: dict[str, int] = {}
    for level in levels:
        available[level.sku] = available.get(level.sku, 0) + level.available
    return price_cart(
        cart,
        {
            sku: Offer(
                sku=offer.sku,
                product_id=offer.product_id,
                seller_id=offer.seller_id,
                title=offer.title,
                status=offer.status,
                prices=offer.prices,
            )
            for sku, offer in offers.items()
        },
        available,
    )


def shipping_of(request: CheckoutRequest, saved: Address | None) -> ShippingAddress:
    """The typed-in address, or the saved one the request names (422 if it has none)."""
    if request.address is not None:
        return request.address
    if saved is None:
        raise InvalidRequest(
            f"you have no saved address {request.address_id}",
            code="unknown_address",
            address_id=request.address_id,
        )
    return ShippingAddress(
        full_name=saved.full_name,
        line1=saved.line1,
        line2=saved.line2,
        city=saved.city,
        subdivision=saved.subdivision,
        postal_code=saved.postal_code,
        country=saved.country,
        phone=saved.phone,
        address_id=saved.address_id,
    )


def plan_of(cart: Cart, view: CartView, shipping: ShippingAddress) -> Plan:
    """The plan of a cart that can be bought now; InvalidCart (422), OutOfStock (409) or
    InvalidRequest (an unserved country) otherwise."""
    if not view.lines and not view.unavailable:
        if cart.last_order_id is not None:
            raise InvalidCart(
                f"cart {cart.cart_id} was already checked out (order {cart.last_order_id}); "
                "its lines are gone",
                reason="already_checked_out",
                cart_id=cart.cart_id,
                order_id=cart.last_order_id,
            )
        raise InvalidCart("the cart is empty", reason="empty", cart_id=cart.cart_id)
    if view.unavailable:
        reasons = {line.sku: line.reason for line in view.unavailable}
        missing = sorted(sku for sku, why in reasons.items() if why == "price_unavailable")
        raise InvalidCart(
            f"cannot buy {', '.join(sorted(reasons))} now"
            + (f" (no price in {view.currency})" if missing else ""),
            reason="price_missing" if missing else "unavailable",
            skus=sorted(reasons),
            reasons=reasons,
            currency=view.currency,
        )
    bad = sorted(line.sku for line in view.lines if line.quantity < 1)
    if bad:
        raise InvalidCart(f"invalid quantities for {', '.join(bad)}", reason="quantity", skus=bad)
    short = sorted(line.sku for line in view.lines if line.available < line.quantity)
    if short:
        raise OutOfStock(f"not enough stock for {', '.join(short)}", skus=short)
    ship_region = region_of_country(shipping.country)
    if ship_region is None:
        raise InvalidRequest(f"Souk does not ship to {shipping.country!r}", code="unserved_country")
    lines = tuple(
        PlanLine(
            sku=line.sku,
            product_id=line.product_id,
            seller_id=line.seller_id,
            title=line.title,
            quantity=line.quantity,
            unit_price_minor=line.unit_price_minor,
        )
        for line in view.lines
    )
    return Plan(
        currency=view.currency,
        lines=lines,
        subtotal_minor=sum(line.quantity * line.unit_price_minor for line in lines),
        ship_region=ship_region,
        shipping=shipping,
    )


def taxed(plan: Plan, rules: TaxRules | None, offers: Mapping[str, SkuOffer]) -> Plan:
    """The plan with each line's tax rate, from where it ships and the SKU's category
    (unchanged without rules). The amounts are computed per order line (:func:`order_of`)."""
    if rules is None:
        return plan
    shipping = plan.shipping
    lines = []
    for line in plan.lines:
        offer = offers.get(line.sku)
        category_id = offer.category_id if offer is not None else None
        rate = rules.rate(
            plan.ship_region,
            shipping.country,
            shipping.subdivision,
            category_id,
            line.unit_price_minor,
        )
        lines.append(
            replace(
                line,
                tax_rate=format_rate(rate.rate),
                tax_included=rate.included,
                category_id=category_id,
            )
        )
    return replace(plan, lines=tuple(lines))


def _order_line(line: PlanLine, allocation: Allocation) -> NewLine:
    """One allocated order line, its tax rounded once on the line's total."""
    rate = Decimal(line.tax_rate)
    tax = split(allocation.quantity * line.unit_price_minor, rate, line.tax_included)
    return NewLine(
        allocation.sku,
        line.product_id,
        line.seller_id,
        line.title,
        allocation.quantity,
        line.unit_price_minor,
        allocation.warehouse_id,
        tax_rate=rate,
        tax_minor=tax.tax_minor,
        tax_included=line.tax_included,
    )


def order_of(
    checkout: Checkout, allocations: Sequence[Allocation], regions: Collection[str], now: datetime
) -> Order:
    """The order of a checkout: one line per (SKU, warehouse) allocated, with its tax."""
    plan = checkout.plan
    assert plan is not None
    by_sku = {line.sku: line for line in plan.lines}
    shipping = plan.shipping
    return new_order(
        PlaceOrder(
            checkout_id=checkout.checkout_id,
            customer_id=checkout.customer_id,
            region=checkout.region,
            currency=plan.currency,
            lines=[_order_line(by_sku[a.sku], a) for a in allocations],
            shipping_address=EventAddress(
                country=shipping.country,
                subdivision=shipping.subdivision,
                city=shipping.city,
                postal_code=shipping.postal_code,
                address_id=shipping.address_id,
            ),
            payment_method=checkout.payment_method,
            payment_id=payment_id_of(checkout.checkout_id),
        ),
        regions,
        now,
    )


def placed_of(order: Order) -> PlacedOrder:
    """What the saga keeps of its order: the id and the totals."""
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


def payment_of(checkout: Checkout, order: Order, gateway: str, now: datetime) -> Payment:
    """The checkout's payment, pending until the processor answers."""
    assert checkout.instrument_token is not None
    return Payment(
        payment_id=payment_id_of(checkout.checkout_id),
        order_id=order.order_id,
        customer_id=checkout.customer_id,
        region=order.region,
        amount_minor=order.totals.grand_total,
        currency=order.currency,
        instrument_token=checkout.instrument_token,
        idempotency_key=authorize_key(checkout.checkout_id),
        created_at=now,
        updated_at=now,
        method=checkout.payment_method,
        gateway=split_gateway(checkout.instrument_token, gateway),
        **emi_columns(checkout.instrument_token, order.totals.grand_total, order.currency),
    )
