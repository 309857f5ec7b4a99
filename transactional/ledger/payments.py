"""Booking of the payment slice's captures and refunds, on the payment's own transaction.

:class:`SqlPaymentLedger` is what a payments unit of work carries as ``ledger``: when the
payment service records a capture or a refund under the payment's row lock, it books the
ledger transaction on the same connection, so the money movement and its entries commit (or
roll back) together. A capture's sale side is read from the order (its lines, their product
categories, its discount, tax and shipping) on that connection too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from sqlalchemy import Connection

from transactional.ledger.bookings import (
    Sale,
    SaleLine,
    SoldItem,
    capture_of_sale,
    refund,
    refund_lines,
    sale_lines,
    unallocated_capture,
)
from transactional.ledger.commission import CommissionRates, current_rates
from transactional.ledger.model import (
    CAPTURE,
    REFUND,
    LedgerTransaction,
    Posting,
    processor_clearing,
    suspense,
    transaction_id_for,
    wallet_liability,
)
from transactional.ledger.repository import SqlLedgerRepository
from transactional.orders.model import OrderNotFound, region_of
from transactional.payments.instruments import wallet_part
from transactional.payments.model import Payment, Refund
from transactional.shared.db import sql

log = logging.getLogger(__name__)

# The order's lines with their product's category; ``position`` keeps the order's line order.
SALE_ITEMS = (
    "SELECT o.currency, o.customer_id, o.discount_minor, o.shipping_minor, "
    "o.tax_minor AS order_tax_minor, l.seller_id, "
    "l.quantity * l.unit_price_minor AS total_minor, l.tax_minor AS line_tax_minor, "
    "l.tax_included, p.category_id "
    "FROM orders o JOIN order_lines l ON l.region = o.region AND l.order_id = o.order_id "
    "LEFT JOIN products p ON p.product_id = l.product_id "
    "WHERE o.region = :region AND o.order_id = :order_id ORDER BY l.position"
)


def funding_account(payment: Payment) -> str:
    """Where a payment's money comes from: the customer's wallet, else the processor (for a
    split payment, the processor side: see :func:`funding_of`)."""
    if payment.method == "wallet" and payment.gateway != "split":
        return wallet_liability(payment.customer_id)
    return processor_clearing(payment.gateway)


def funding_of(payment: Payment, amount_minor: int) -> list[tuple[str, int]]:
    """Where ``amount_minor`` of a payment comes from: one account, or for a split payment
    the wallet's part and the card's (``processor_clearing:split``, the adapter that took it)."""
    if payment.gateway != "split":
        return [(funding_account(payment), amount_minor)]
    wallet = wallet_part(payment.instrument_token, amount_minor)
    parts = [(wallet_liability(payment.customer_id), wallet)] if wallet else []
    if amount_minor > wallet:
        parts.append((processor_clearing(payment.gateway), amount_minor - wallet))
    return parts


def split_refund_funding(
    payment: Payment, amount_minor: int, refunded_before_minor: int
) -> list[tuple[str, int]]:
    """Where a split payment's refund goes: back to the wallet first, then to the card (as the
    split adapter refunds), so the ledger's wallet liability follows the wallet's balance."""
    wallet_captured = wallet_part(payment.instrument_token, payment.captured_minor or 0)
    wallet = min(amount_minor, max(0, wallet_captured - refunded_before_minor))
    parts = [(wallet_liability(payment.customer_id), wallet)] if wallet else []
    if amount_minor > wallet:
        parts.append((processor_clearing(payment.gateway), amount_minor - wallet))
    return parts


def sale_of_rows(order_id: str, region: str, rows: Sequence[Any]) -> Sale | None:
    """The sale of an order from :data:`SALE_ITEMS` rows (None: no such order)."""
    if not rows:
        return None
    head = rows[0]
    items = [
        SoldItem(
            seller_id=row.seller_id,
            total_minor=int(row.total_minor),
            category=row.category_id,
            tax_minor=int(row.line_tax_minor or 0),
            tax_included=bool(row.tax_included),
        )
        for row in rows
    ]
    return Sale(
        order_id=order_id,
        region=region,
        currency=head.currency.strip(),
        customer_id=head.customer_id,
        lines=tuple(
            sale_lines(
                items, discount_minor=int(head.discount_minor), tax_minor=int(head.order_tax_minor)
            )
        ),
        shipping_minor=int(head.shipping_minor),
    )


def capture_of_payment(
    payment: Payment, amount_minor: int, sale: Sale | None, rates: CommissionRates
) -> LedgerTransaction:
    """The capture booking of a payment: its share of the order's sale (suspense if unknown)."""
    account = funding_account(payment)
    if payment.gateway == "split":
        # Booked as one funding account, then that posting spread over the two parts.
        placeholder = replace(payment, gateway="split-placeholder")
        return _split_funded(
            capture_of_payment(placeholder, amount_minor, sale, rates),
            funding_account(placeholder),
            payment,
        )
    if sale is None or sale.currency != payment.currency or sale.total_minor < amount_minor:
        log.warning(
            "payment %s: order %s has no matching lines; its capture goes to suspense",
            payment.payment_id,
            payment.order_id,
        )
        return unallocated_capture(
            payment_id=payment.payment_id,
            order_id=payment.order_id,
            currency=payment.currency,
            amount_minor=amount_minor,
            funding_account=account,
            occurred_at=payment.updated_at,
        )
    return capture_of_sale(
        sale,
        payment_id=payment.payment_id,
        amount_minor=amount_minor,
        funding_account=account,
        rates=rates,
        occurred_at=payment.updated_at,
    )


def _split_funded(tx: LedgerTransaction, placeholder: str, payment: Payment) -> LedgerTransaction:
    """``tx`` with its single funding posting (on ``placeholder``) spread over the split
    payment's wallet and card parts."""
    postings = [p for p in tx.postings if p.account != placeholder]
    (funded,) = [p for p in tx.postings if p.account == placeholder]
    parts = funding_of(payment, funded.amount_minor)
    postings += [Posting(account, amount, funded.currency) for account, amount in parts]
    return replace(tx, postings=tuple(postings))


class Journal(Protocol):
    """Where bookings go: :class:`SqlLedgerRepository`, or an in-memory one in unit tests."""

    def append(self, tx: LedgerTransaction) -> bool:
        """Book a transaction; False if its (kind, reference) is booked already."""

    def find(self, kind: str, reference: str) -> LedgerTransaction | None:
        """The transaction booked under (kind, reference), or None."""


class PaymentBookkeeper:
    """Books payments' captures and refunds in a journal; sales are looked up by order id."""

    def __init__(
        self,
        journal: Journal,
        sales: Callable[[str], Sale | None],
        rates: CommissionRates | None = None,
    ) -> None:
        self.journal = journal
        self._sales = sales
        self._rates = rates

    @property
    def rates(self) -> CommissionRates:
        """The commission rates bookings use (the process's current ones by default)."""
        return self._rates or current_rates()

    def sale(self, order_id: str) -> Sale | None:
        """What the order sold, or None if unknown."""
        return self._sales(order_id)

    def book_capture(self, payment: Payment, amount_minor: int) -> bool:
        """Book a recorded capture (idempotent: False if it was booked already)."""
        sale = self.sale(payment.order_id)
        return self.journal.append(capture_of_payment(payment, amount_minor, sale, self.rates))

    def book_refund(
        self, payment: Payment, refund_: Refund, lines: Sequence[SaleLine] | None = None
    ) -> bool:
        """Book a recorded refund (after ``payment.record_refund``): reversing its capture
        proportionally, or the given returned ``lines``; False if booked already."""
        captured = self.journal.find(CAPTURE, payment.payment_id)
        at = refund_.created_at
        if captured is None:
            log.warning("payment %s: refund of an unbooked capture", payment.payment_id)
            tx = LedgerTransaction(
                transaction_id=transaction_id_for(REFUND, refund_.refund_id),
                kind=REFUND,
                reference=refund_.refund_id,
                postings=(
                    Posting(suspense(), refund_.amount_minor, refund_.currency),
                    Posting(funding_account(payment), -refund_.amount_minor, refund_.currency),
                ),
                occurred_at=at,
                order_id=payment.order_id,
                payment_id=payment.payment_id,
                memo="refund of a capture the ledger does not hold",
            )
        elif lines is not None:
            tx = refund_lines(
                captured,
                lines=lines,
                region=payment.region,
                rates=self.rates,
                reference=refund_.refund_id,
                occurred_at=at,
            )
        else:
            before = payment.refunded_minor - refund_.amount_minor
            tx = refund(
                captured,
                amount_minor=refund_.amount_minor,
                refunded_before_minor=before,
                reference=refund_.refund_id,
                occurred_at=at,
                funding=split_refund_funding(payment, refund_.amount_minor, before)
                if payment.gateway == "split"
                else None,
            )
        return self.journal.append(tx)


class SqlPaymentLedger(PaymentBookkeeper):
    """The bookkeeper of a payments unit of work: journal and orders on its connection."""

    def __init__(self, connection: Connection, rates: CommissionRates | None = None) -> None:
        self._connection = connection
        super().__init__(SqlLedgerRepository(connection), self._sale, rates)

    def _sale(self, order_id: str) -> Sale | None:
        try:
            region = region_of(order_id)
        except OrderNotFound:
            return None
        rows = self._connection.execute(
            sql(SALE_ITEMS), {"region": region, "order_id": order_id}
        ).all()
        return sale_of_rows(order_id, region, rows)
