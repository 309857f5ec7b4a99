"""Invoices and credit notes, pure: what a seller's invoice of an order says, how a refund is
split into credit notes, and how documents are numbered. No I/O.

An invoice is issued per paid order and per seller; its lines are the seller's order lines
with net, rate, tax and gross. A credit note corrects invoices for a refund: the refund is
spread over what is still uncredited, line by line, in proportion to each line's gross, and
each share is split into net and tax at the line's rate. Numbers are sequential per (seller,
region, kind), e.g. ``INV-EU-000042`` and ``CN-EU-000007``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from transactional.billing.tax import split
from transactional.orders.model import Order, OrderLine
from transactional.shared.errors import NotFound

Kind = Literal["invoice", "credit_note"]
PREFIX: dict[Kind, str] = {"invoice": "INV", "credit_note": "CN"}


class InvoiceNotFound(NotFound):
    """The order has no invoice (yet), or not from that seller, or is not the caller's."""

    code = "invoice_not_found"


@dataclass(frozen=True)
class Party:
    """A seller or buyer as printed: name, postal address lines, country, tax id if known."""

    name: str
    address: tuple[str, ...] = ()
    country: str | None = None
    tax_id: str | None = None


@dataclass(frozen=True)
class InvoiceLine:
    """One line of a document: quantity of a SKU, its unit price (as listed), net, tax, gross."""

    line_id: str
    sku: str
    description: str
    quantity: int
    unit_price_minor: int
    tax_rate: Decimal
    net_minor: int
    tax_minor: int
    gross_minor: int


@dataclass(frozen=True)
class RateTotal:
    """The totals of one tax rate on a document."""

    rate: Decimal
    net_minor: int
    tax_minor: int
    gross_minor: int


@dataclass(frozen=True)
class Invoice:
    """An issued invoice or credit note (immutable once numbered)."""

    invoice_id: str
    kind: Kind
    number: str
    sequence: int
    seller_id: str
    region: str
    order_id: str
    reference: str  # the order (invoice) or the refund (credit note)
    currency: str
    issued_at: datetime
    supplied_at: datetime
    prices_include_tax: bool
    seller: Party
    buyer: Party
    lines: tuple[InvoiceLine, ...]
    corrects: str | None = None  # a credit note's invoice number

    @property
    def net_minor(self) -> int:
        """Sum of the lines' net amounts."""
        return sum(line.net_minor for line in self.lines)

    @property
    def tax_minor(self) -> int:
        """Sum of the lines' tax."""
        return sum(line.tax_minor for line in self.lines)

    @property
    def gross_minor(self) -> int:
        """What the buyer paid (invoice) or gets back (credit note) for these lines."""
        return sum(line.gross_minor for line in self.lines)

    def rate_totals(self) -> list[RateTotal]:
        """Net, tax and gross per tax rate, highest rate first."""
        sums: dict[Decimal, list[int]] = defaultdict(lambda: [0, 0, 0])
        for line in self.lines:
            entry = sums[line.tax_rate.normalize()]
            entry[0] += line.net_minor
            entry[1] += line.tax_minor
            entry[2] += line.gross_minor
        return [
            RateTotal(rate, net, tax, gross)
            for rate, (net, tax, gross) in sorted(sums.items(), reverse=True)
        ]


def number_of(kind: Kind, region: str, sequence: int) -> str:
    """A document number: its series' prefix, the region and the zero-padded sequence."""
    return f"{PREFIX[kind]}-{region.upper()}-{sequence:06d}"


def order_line(line: OrderLine) -> InvoiceLine:
    """An order line as an invoice line: the tax inside its total, or on top of it."""
    total = line.total_minor
    if line.tax_included:
        net, gross = total - line.tax_minor, total
    else:
        net, gross = total, total + line.tax_minor
    return InvoiceLine(
        line_id=line.line_id,
        sku=line.sku,
        description=line.title,
        quantity=line.quantity,
        unit_price_minor=line.unit_price_minor,
        tax_rate=line.tax_rate,
        net_minor=net,
        tax_minor=line.tax_minor,
        gross_minor=gross,
    )


def sellers_of(order: Order) -> list[str]:
    """The order's sellers, sorted (the order their counters are locked in)."""
    return sorted({line.seller_id for line in order.lines})


def invoice_lines(order: Order, seller_id: str) -> tuple[InvoiceLine, ...]:
    """The seller's lines of the order."""
    return tuple(order_line(line) for line in order.lines if line.seller_id == seller_id)


def _allocate(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder; sums exactly)."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * len(weights)
    shares = [total * weight // whole for weight in weights]
    remainders = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % whole), i))
    for index in remainders[: total - sum(shares)]:
        shares[index] += 1
    return shares


@dataclass(frozen=True)
class Credit:
    """The credit-note lines of one seller for a refund."""

    seller_id: str
    corrects: str  # the seller's invoice number
    lines: tuple[InvoiceLine, ...]


def credits_for(
    amount_minor: int, invoices: Sequence[Invoice], credited: Iterable[Invoice]
) -> list[Credit]:
    """The credit notes of a refund of ``amount_minor`` over an order's ``invoices``, given
    the credit notes issued before (``credited``): the refund is spread over the lines' still
    uncredited gross; a line credited in full gets back exactly its remaining net and tax.
    A refund beyond what is left (e.g. shipping) credits what is left."""
    done: Mapping[str, list[int]] = _credited(credited)
    slots: list[tuple[Invoice, InvoiceLine, int, int, int]] = []
    for invoice in sorted(invoices, key=lambda i: i.seller_id):
        for line in invoice.lines:
            net, tax, gross = done.get(line.line_id, [0, 0, 0])
            left = line.gross_minor - gross
            if left > 0:
                slots.append((invoice, line, line.net_minor - net, line.tax_minor - tax, left))
    shares = _allocate(min(amount_minor, sum(s[4] for s in slots)), [s[4] for s in slots])
    by_seller: dict[str, list[InvoiceLine]] = defaultdict(list)
    corrects: dict[str, str] = {}
    for (invoice, line, net_left, tax_left, left), share in zip(slots, shares, strict=True):
        if share == 0:
            continue
        if share == left:
            net, tax = net_left, tax_left
        else:
            parts = split(share, line.tax_rate, included=True)
            net, tax = parts.net_minor, parts.tax_minor
        by_seller[invoice.seller_id].append(
            InvoiceLine(
                line_id=line.line_id,
                sku=line.sku,
                description=line.description,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor,
                tax_rate=line.tax_rate,
                net_minor=net,
                tax_minor=tax,
                gross_minor=share,
            )
        )
        corrects[invoice.seller_id] = invoice.number
    return [Credit(seller, corrects[seller], tuple(lines)) for seller, lines in by_seller.items()]


def _credited(credit_notes: Iterable[Invoice]) -> dict[str, list[int]]:
    """Net, tax and gross already credited per order line."""
    done: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for note in credit_notes:
        for line in note.lines:
            entry = done[line.line_id]
            entry[0] += line.net_minor
            entry[1] += line.tax_minor
            entry[2] += line.gross_minor
    return done
