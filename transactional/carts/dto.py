"""Request and response bodies of the cart API (msgspec structs at the edge)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from schemas.common import Channel, Currency, Id
from transactional.carts.model import CartView


class CreateCart(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/carts: the currency (default: the customer's, else the region's)."""

    currency: Currency | None = None


class AddItem(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/carts/{cart_id}/items: units of a SKU, with optional attribution."""

    sku: Id
    quantity: Annotated[int, msgspec.Meta(ge=1)]
    session_id: Id | None = None
    recommendation_id: Id | None = None
    search_id: Id | None = None
    channel: Channel = "web"


class SetQuantity(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """PATCH /v1/carts/{cart_id}/items/{sku}: the new quantity (0 removes the line)."""

    quantity: Annotated[int, msgspec.Meta(ge=0)]


class LineOut(msgspec.Struct, kw_only=True):
    """A purchasable line priced now (minor units of the cart currency)."""

    sku: str
    product_id: str
    seller_id: str
    title: str
    quantity: int
    unit_price_minor: int
    line_total_minor: int
    available: int
    added_unit_price_minor: int
    price_changed: bool
    stock_short: bool


class UnavailableOut(msgspec.Struct, kw_only=True):
    """A line that cannot be bought now, and why."""

    sku: str
    product_id: str
    quantity: int
    reason: str


class CartOut(msgspec.Struct, kw_only=True):
    """A cart priced now: lines, totals and what needs the shopper's attention."""

    cart_id: str
    customer_id: str | None
    currency: str
    lines: list[LineOut]
    unavailable: list[UnavailableOut]
    item_count: int
    subtotal_minor: int
    ready_for_checkout: bool

    @classmethod
    def of(cls, view: CartView) -> CartOut:
        """The response body of a cart view."""
        return cls(
            cart_id=view.cart_id,
            customer_id=view.customer_id,
            currency=view.currency,
            lines=[
                LineOut(
                    sku=line.sku,
                    product_id=line.product_id,
                    seller_id=line.seller_id,
                    title=line.title,
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price_minor,
                    line_total_minor=line.line_total_minor,
                    available=line.available,
                    added_unit_price_minor=line.added_unit_price_minor,
                    price_changed=line.price_changed,
                    stock_short=line.stock_short,
                )
                for line in view.lines
            ],
            unavailable=[
                UnavailableOut(
                    sku=line.sku,
                    product_id=line.product_id,
                    quantity=line.quantity,
                    reason=line.reason,
                )
                for line in view.unavailable
            ],
            item_count=view.item_count,
            subtotal_minor=view.subtotal_minor,
            ready_for_checkout=view.ready_for_checkout,
        )
