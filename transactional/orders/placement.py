"""Placing an order, pure: the command a checkout sends, validated into a new :class:`Order`.

Shared by :class:`~transactional.orders.service.OrderService` (its own transaction) and the
checkout's hot path (the order written in the checkout's transaction).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple, get_args

from schemas.common import Address, PaymentMethod
from schemas.ids import uuid7
from transactional.orders.model import (
    Order,
    OrderLine,
    ShippingAddress,
    Totals,
    Transition,
    order_id_for,
    split_into_groups,
)
from transactional.shared.errors import InvalidRequest
from transactional.shared.regions import SUPPORTED_CURRENCIES

_PAYMENT_METHODS: frozenset[str] = frozenset(get_args(PaymentMethod))
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class NewLine(NamedTuple):
    """One line of an order to place (plain tuples in this field order work too; the tax
    fields may be left out: untaxed)."""

    sku: str
    product_id: str
    seller_id: str
    title: str
    quantity: int
    unit_price_minor: int
    warehouse_id: str
    tax_rate: Decimal = Decimal(0)  # percent
    tax_minor: int = 0  # the whole line's tax
    tax_included: bool = False  # inside the price, or added on top (into totals.tax_minor)


@dataclass(frozen=True)
class PlaceOrder:
    """Everything a checkout knows when it turns reserved stock into an order."""

    checkout_id: str
    customer_id: str
    region: str
    currency: str
    lines: Sequence[tuple[str, str, str, str, int, int, str] | NewLine]
    shipping_address: Address
    payment_method: PaymentMethod = "card"
    totals: Totals | None = None  # None: the lines' subtotal and their tax added on top
    payment_id: str | None = None  # an authorisation made before the order, voided on cancel


def new_order(command: PlaceOrder, regions: Collection[str], now: datetime) -> Order:
    """A new placed order for the command (validated), with its placement transition."""
    if command.region not in regions:
        raise InvalidRequest(
            f"unknown region {command.region!r}; Souk serves {', '.join(sorted(regions))}",
            code="unknown_region",
        )
    if command.currency not in SUPPORTED_CURRENCIES:
        raise InvalidRequest(
            f"unsupported currency {command.currency!r}", code="unsupported_currency"
        )
    if command.payment_method not in _PAYMENT_METHODS:
        raise InvalidRequest(
            f"unknown payment method {command.payment_method!r}", code="invalid_method"
        )
    for name in ("checkout_id", "customer_id"):
        if not _is_id(getattr(command, name)):
            raise InvalidRequest(f"{name} must be a non-empty id", code="invalid_id")
    address = command.shipping_address
    if not _COUNTRY.match(str(address.country)) or (
        address.address_id is not None and not _is_id(address.address_id)
    ):
        raise InvalidRequest(
            "the shipping address needs an ISO country code like DE", code="invalid_address"
        )
    if not command.lines:
        raise InvalidRequest("an order needs at least one line", code="empty_order")
    order_id = order_id_for(command.region, uuid7().hex)
    lines = [_line(order_id, index, raw) for index, raw in enumerate(command.lines, 1)]
    subtotal = sum(line.total_minor for line in lines)
    added = sum(line.tax_minor for line in lines if not line.tax_included)
    totals = command.totals or Totals(subtotal_minor=subtotal, tax_minor=added)
    totals.check(subtotal)
    order = Order(
        order_id=order_id,
        region=command.region,
        checkout_id=command.checkout_id,
        customer_id=command.customer_id,
        currency=command.currency,
        lines=lines,
        groups=split_into_groups(order_id, lines),
        totals=Totals(
            subtotal_minor=totals.subtotal_minor,
            discount_minor=totals.discount_minor,
            shipping_minor=totals.shipping_minor,
            tax_minor=totals.tax_minor,
            grand_total_minor=totals.grand_total,
        ),
        shipping_address=ShippingAddress(
            country=address.country,
            subdivision=address.subdivision,
            city=address.city,
            postal_code=address.postal_code,
            address_id=address.address_id,
        ),
        payment_method=command.payment_method,
        placed_at=now,
        updated_at=now,
        payment_id=command.payment_id,
    )
    order.history.append(
        Transition(order_id, None, "placed", now, f"checkout {command.checkout_id}", "system")
    )
    return order


def _line(
    order_id: str, index: int, raw: tuple[str, str, str, str, int, int, str] | NewLine
) -> OrderLine:
    required = len(NewLine._fields) - len(NewLine._field_defaults)
    if not required <= len(raw) <= len(NewLine._fields):
        raise InvalidRequest(
            f"line {index} must have the fields {', '.join(NewLine._fields)}",
            code="invalid_line",
        )
    line = NewLine(*raw)
    for name in ("sku", "product_id", "seller_id", "warehouse_id"):
        if not _is_id(getattr(line, name)):
            raise InvalidRequest(
                f"line {index}: {name} must be a non-empty id", code="invalid_line"
            )
    if not isinstance(line.title, str) or not line.title.strip():
        raise InvalidRequest(f"line {index}: title is required", code="invalid_line")
    if isinstance(line.quantity, bool) or not isinstance(line.quantity, int) or line.quantity < 1:
        raise InvalidRequest(
            f"line {index}: quantity must be a positive integer, got {line.quantity!r}",
            code="invalid_quantity",
        )
    price = line.unit_price_minor
    if isinstance(price, bool) or not isinstance(price, int) or price < 0:
        raise InvalidRequest(
            f"line {index}: unit_price_minor must be a non-negative integer, got {price!r}",
            code="invalid_price",
        )
    _check_tax(index, line)
    return OrderLine(
        line_id=f"{order_id}_l{index}",
        sku=line.sku,
        product_id=line.product_id,
        seller_id=line.seller_id,
        title=line.title,
        quantity=line.quantity,
        unit_price_minor=line.unit_price_minor,
        warehouse_id=line.warehouse_id,
        tax_rate=line.tax_rate,
        tax_minor=line.tax_minor,
        tax_included=line.tax_included,
    )


def _check_tax(index: int, line: NewLine) -> None:
    """A line's tax is a rate in [0, 100), a non-negative amount, at most the price if inside
    it."""
    tax, rate = line.tax_minor, line.tax_rate
    if (
        not isinstance(rate, Decimal)
        or not rate.is_finite()
        or not Decimal(0) <= rate < Decimal(100)
        or isinstance(tax, bool)
        or not isinstance(tax, int)
        or tax < 0
        or not isinstance(line.tax_included, bool)
        or (line.tax_included and tax > line.quantity * line.unit_price_minor)
    ):
        raise InvalidRequest(
            f"line {index}: tax must be a rate in [0, 100) and an amount within the line",
            code="invalid_tax",
        )


def _is_id(value: object) -> bool:
    # The events' Id type: 1 to 128 characters.
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 128
