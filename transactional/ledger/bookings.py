"""Builders of the ledger transactions Souk books: pure functions returning LedgerTransaction.

Every builder derives the transaction id from its (kind, reference), so building the same
booking twice gives the same transaction and the repository's (kind, reference) key makes
the second append a no-op. References used by Souk's services:

- capture: the payment id (a payment is captured once);
- refund: the refund id (the gateway's refund transaction);
- wallet_topup / wallet_spend / payout / processor_fee: the caller's idempotency key or id;
- reversal: the reversed transaction's id (a transaction is reversed at most once).

The *funding side* of a capture is a list of ``(account, amount_minor)`` debits: a card
capture debits ``processor_clearing:{gateway}``, a wallet payment ``wallet_liability:{customer}``,
a split payment both. The *sale side* credits each seller's share to ``seller_payable:{seller}``,
the commission to ``platform_revenue``, tax to ``tax_payable:{region}`` and shipping to
``shipping_revenue``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from transactional.ledger.commission import CommissionRates
from transactional.ledger.model import (
    CAPTURE,
    PAYOUT,
    PROCESSOR_FEE,
    REFUND,
    REVERSAL,
    WALLET_SPEND,
    WALLET_TOPUP,
    LedgerTransaction,
    Posting,
    UnbalancedTransaction,
    allocate,
    merged,
    platform_revenue,
    processor_clearing,
    processor_fees,
    seller_payable,
    seller_payouts_cash,
    shipping_revenue,
    suspense,
    tax_payable,
    transaction_id_for,
    wallet_liability,
)
from transactional.orders.model import Order

Funding = Sequence[tuple[str, int]]


@dataclass(frozen=True)
class SaleLine:
    """What one order line sold: its seller, category, net amount (after discount, before tax)
    and its tax (owed to ``tax_region``, or to the booking's region if None)."""

    seller_id: str
    net_minor: int
    tax_minor: int = 0
    category: str | None = None
    tax_region: str | None = None


@dataclass(frozen=True)
class SoldItem:
    """An order line as sold: its seller, category and total before discount, and its own
    tax (inside the total for tax-inclusive prices, else added on top)."""

    seller_id: str
    total_minor: int
    category: str | None = None
    tax_minor: int = 0
    tax_included: bool = False


@dataclass(frozen=True)
class Sale:
    """What an order sold, split into sale lines, plus its shipping: the capture's sale side."""

    order_id: str
    region: str
    currency: str
    customer_id: str
    lines: tuple[SaleLine, ...]
    shipping_minor: int = 0

    @property
    def total_minor(self) -> int:
        """What the customer pays for it: nets, taxes and shipping."""
        return sum(line.net_minor + line.tax_minor for line in self.lines) + self.shipping_minor


def sale_lines(items: Sequence[SoldItem], *, discount_minor: int, tax_minor: int) -> list[SaleLine]:
    """Sale lines of an order: its discount spread over the lines by their totals, each
    line's own tax (taken out of a tax-inclusive total). An order whose lines carry no tax
    but which has ``tax_minor`` (added on top) has it spread over the net amounts."""
    totals = [item.total_minor for item in items]
    discounts = allocate(discount_minor, totals) if sum(totals) else [0] * len(totals)
    nets = [
        item.total_minor - discount - (item.tax_minor if item.tax_included else 0)
        for item, discount in zip(items, discounts, strict=True)
    ]
    taxes = [item.tax_minor for item in items]
    if not any(taxes) and tax_minor and sum(nets):
        taxes = allocate(tax_minor, nets)
    return [
        SaleLine(seller_id=item.seller_id, net_minor=net, tax_minor=tax, category=item.category)
        for item, net, tax in zip(items, nets, taxes, strict=True)
    ]


def order_sale(order: Order, categories: Mapping[str, str | None] | None = None) -> Sale:
    """The sale of an order held in memory; ``categories`` maps product ids to category ids."""
    items = [
        SoldItem(
            seller_id=line.seller_id,
            total_minor=line.total_minor,
            category=(categories or {}).get(line.product_id),
            tax_minor=line.tax_minor,
            tax_included=line.tax_included,
        )
        for line in order.lines
    ]
    return Sale(
        order_id=order.order_id,
        region=order.region,
        currency=order.currency,
        customer_id=order.customer_id,
        lines=tuple(
            sale_lines(
                items, discount_minor=order.totals.discount_minor, tax_minor=order.totals.tax_minor
            )
        ),
        shipping_minor=order.totals.shipping_minor,
    )


def sale_postings(
    lines: Sequence[SaleLine],
    *,
    currency: str,
    region: str,
    rates: CommissionRates,
    shipping_minor: int = 0,
) -> tuple[Posting, ...]:
    """The credits of a sale: each seller's share, the commission, tax and shipping."""
    postings: list[Posting] = []
    for line in lines:
        if line.net_minor < 0 or line.tax_minor < 0:
            raise UnbalancedTransaction(
                f"sale line of {line.seller_id}: net and tax must not be negative", reason="amount"
            )
        commission = rates.commission(line.net_minor, line.seller_id, line.category)
        postings.append(
            Posting(seller_payable(line.seller_id), -(line.net_minor - commission), currency)
        )
        postings.append(Posting(platform_revenue(), -commission, currency))
        postings.append(Posting(tax_payable(line.tax_region or region), -line.tax_minor, currency))
    if shipping_minor < 0:
        raise UnbalancedTransaction("shipping must not be negative", reason="amount")
    postings.append(Posting(shipping_revenue(), -shipping_minor, currency))
    return merged(postings)


def funding_postings(funding: Funding, currency: str, *, sign: int = 1) -> tuple[Posting, ...]:
    """Debits (``sign`` 1) or credits (-1) of the funding accounts; amounts must be positive."""
    for account, amount in funding:
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise UnbalancedTransaction(
                f"funding from {account} must be a positive integer, got {amount!r}",
                reason="amount",
            )
    return merged(Posting(account, sign * amount, currency) for account, amount in funding)


def card_funding(gateway: str, amount_minor: int) -> list[tuple[str, int]]:
    """The funding side of a card capture: the processor's clearing account."""
    return [(processor_clearing(gateway), amount_minor)]


def wallet_funding(customer_id: str, amount_minor: int) -> list[tuple[str, int]]:
    """The funding side of a wallet payment: the customer's wallet."""
    return [(wallet_liability(customer_id), amount_minor)]


def capture(
    *,
    reference: str,
    order_id: str,
    payment_id: str | None,
    currency: str,
    region: str,
    lines: Sequence[SaleLine],
    funding: Funding,
    rates: CommissionRates,
    occurred_at: datetime,
    shipping_minor: int = 0,
) -> LedgerTransaction:
    """A captured sale split per seller; UnbalancedTransaction if the funding is not its total."""
    postings = funding_postings(funding, currency) + sale_postings(
        lines, currency=currency, region=region, rates=rates, shipping_minor=shipping_minor
    )
    return LedgerTransaction(
        transaction_id=transaction_id_for(CAPTURE, reference),
        kind=CAPTURE,
        reference=reference,
        postings=postings,
        occurred_at=occurred_at,
        order_id=order_id,
        payment_id=payment_id,
    )


def capture_of_sale(
    sale: Sale,
    *,
    payment_id: str,
    amount_minor: int,
    funding_account: str,
    rates: CommissionRates,
    occurred_at: datetime,
) -> LedgerTransaction:
    """A payment's capture of (part of) a sale, referenced by the payment id.

    A payment that pays only part of its order (a partial capture, one leg of a split
    payment) books that share of every account of the sale.
    """
    whole = sale.total_minor
    if not 0 < amount_minor <= whole:
        raise UnbalancedTransaction(
            f"capture {amount_minor} of order {sale.order_id} is not within its total {whole}",
            reason="exceeds_sale",
        )
    full = capture(
        reference=payment_id,
        order_id=sale.order_id,
        payment_id=payment_id,
        currency=sale.currency,
        region=sale.region,
        lines=sale.lines,
        funding=[(funding_account, whole)],
        rates=rates,
        occurred_at=occurred_at,
        shipping_minor=sale.shipping_minor,
    )
    if amount_minor == whole:
        return full
    shares = _cumulative(full.postings, amount_minor, whole)
    return replace(
        full,
        postings=merged(
            Posting(p.account, share, p.currency)
            for p, share in zip(full.postings, shares, strict=True)
        ),
    )


def unallocated_capture(
    *,
    payment_id: str,
    order_id: str,
    currency: str,
    amount_minor: int,
    funding_account: str,
    occurred_at: datetime,
) -> LedgerTransaction:
    """A capture whose order's lines are unknown: booked to ``suspense`` to be sorted out."""
    return LedgerTransaction(
        transaction_id=transaction_id_for(CAPTURE, payment_id),
        kind=CAPTURE,
        reference=payment_id,
        postings=(
            Posting(funding_account, amount_minor, currency),
            Posting(suspense(), -amount_minor, currency),
        ),
        occurred_at=occurred_at,
        order_id=order_id,
        payment_id=payment_id,
        memo="order lines not found",
    )


def _cumulative(postings: Sequence[Posting], part: int, whole: int) -> list[int]:
    """Each posting's share of ``part``/``whole`` of the transaction, per side exact.

    Floors everywhere but one absorber per side (the platform's revenue on the credit side,
    the largest account otherwise), so every account reaches its full amount at ``whole``.
    """
    if part == whole:
        return [p.amount_minor for p in postings]
    shares = [0] * len(postings)
    for side in (1, -1):
        indexes = [i for i, p in enumerate(postings) if p.amount_minor * side > 0]
        if not indexes:
            continue
        revenue = [i for i in indexes if postings[i].account == platform_revenue()]
        absorber = (
            revenue[0]
            if side < 0 and revenue
            else max(indexes, key=lambda i: (abs(postings[i].amount_minor), -i))
        )
        for i in indexes:
            if i != absorber:
                shares[i] = side * (abs(postings[i].amount_minor) * part // whole)
        shares[absorber] = side * part - sum(shares[i] for i in indexes if i != absorber)
    return shares


def refund(
    capture_tx: LedgerTransaction,
    *,
    amount_minor: int,
    refunded_before_minor: int,
    reference: str,
    occurred_at: datetime,
    funding: Funding | None = None,
) -> LedgerTransaction:
    """Reverse ``amount_minor`` of a capture, proportionally over its accounts.

    ``refunded_before_minor`` is what earlier refunds of the same capture gave back: the
    shares are cut from the cumulative total, so a capture refunded in parts ends exactly
    reversed. ``funding`` (credits) sends the money elsewhere than the capture's funding
    accounts, e.g. a card payment refunded to the wallet.
    """
    currency = _single_currency(capture_tx)
    whole = capture_tx.amount(currency)
    if not 0 < amount_minor <= whole - refunded_before_minor or refunded_before_minor < 0:
        raise UnbalancedTransaction(
            f"refund {amount_minor} after {refunded_before_minor} exceeds the capture of {whole}",
            reason="exceeds_capture",
        )
    postings = [p for p in capture_tx.postings if p.currency == currency]
    before = _cumulative(postings, refunded_before_minor, whole)
    after = _cumulative(postings, refunded_before_minor + amount_minor, whole)
    reversed_postings = [
        Posting(p.account, -(a - b), currency)
        for p, a, b in zip(postings, after, before, strict=True)
    ]
    if funding is not None:
        reversed_postings = [p for p in reversed_postings if p.amount_minor > 0] + list(
            funding_postings(funding, currency, sign=-1)
        )
    return LedgerTransaction(
        transaction_id=transaction_id_for(REFUND, reference),
        kind=REFUND,
        reference=reference,
        postings=merged(reversed_postings),
        occurred_at=occurred_at,
        order_id=capture_tx.order_id,
        payment_id=capture_tx.payment_id,
    )


def refund_lines(
    capture_tx: LedgerTransaction,
    *,
    lines: Sequence[SaleLine],
    region: str,
    rates: CommissionRates,
    reference: str,
    occurred_at: datetime,
    shipping_minor: int = 0,
    funding: Funding | None = None,
) -> LedgerTransaction:
    """Refund given sale lines (a return): their seller shares, commission and tax come back,
    the money goes out over the capture's funding accounts (or ``funding``, credits)."""
    currency = _single_currency(capture_tx)
    sale = sale_postings(
        lines, currency=currency, region=region, rates=rates, shipping_minor=shipping_minor
    )
    amount = -sum(p.amount_minor for p in sale)
    if amount <= 0:
        raise UnbalancedTransaction("a refund of lines must give back some money", reason="amount")
    if funding is None:
        sources = [p for p in capture_tx.postings if p.amount_minor > 0 and p.currency == currency]
        parts = allocate(amount, [p.amount_minor for p in sources])
        funding = [(p.account, part) for p, part in zip(sources, parts, strict=True) if part]
    postings = tuple(Posting(p.account, -p.amount_minor, currency) for p in sale)
    return LedgerTransaction(
        transaction_id=transaction_id_for(REFUND, reference),
        kind=REFUND,
        reference=reference,
        postings=merged(postings + funding_postings(funding, currency, sign=-1)),
        occurred_at=occurred_at,
        order_id=capture_tx.order_id,
        payment_id=capture_tx.payment_id,
    )


def wallet_topup(
    *,
    customer_id: str,
    amount_minor: int,
    currency: str,
    reference: str,
    occurred_at: datetime,
    funding: Funding | None = None,
    gateway: str = "sandbox",
    payment_id: str | None = None,
    order_id: str | None = None,
) -> LedgerTransaction:
    """Money paid into a wallet: the funding (the card's processor by default) debited, the
    customer's wallet liability credited.

    A top-up charged as a row of ``payments`` must carry that row's ``order_id``: the
    checker compares each order id's captured money with its ledger transactions.
    """
    sources = funding if funding is not None else card_funding(gateway, amount_minor)
    return LedgerTransaction(
        transaction_id=transaction_id_for(WALLET_TOPUP, reference),
        kind=WALLET_TOPUP,
        reference=reference,
        postings=merged(
            (
                *funding_postings(sources, currency),
                Posting(wallet_liability(customer_id), -amount_minor, currency),
            )
        ),
        occurred_at=occurred_at,
        payment_id=payment_id,
        order_id=order_id,
    )


def wallet_spend(
    *,
    customer_id: str,
    amount_minor: int,
    currency: str,
    reference: str,
    occurred_at: datetime,
    to: Funding,
    order_id: str | None = None,
    payment_id: str | None = None,
) -> LedgerTransaction:
    """Wallet money spent outside an order capture (e.g. a cash-out): the wallet debited,
    ``to`` credited. An order paid by wallet is a :func:`capture` with :func:`wallet_funding`."""
    return LedgerTransaction(
        transaction_id=transaction_id_for(WALLET_SPEND, reference),
        kind=WALLET_SPEND,
        reference=reference,
        postings=merged(
            (
                Posting(wallet_liability(customer_id), amount_minor, currency),
                *funding_postings(to, currency, sign=-1),
            )
        ),
        occurred_at=occurred_at,
        order_id=order_id,
        payment_id=payment_id,
    )


def payout(
    *,
    seller_id: str,
    amount_minor: int,
    currency: str,
    reference: str,
    occurred_at: datetime,
    cash_account: str | None = None,
) -> LedgerTransaction:
    """A payout to a seller: what it is owed goes down, the payout bank account pays it."""
    return LedgerTransaction(
        transaction_id=transaction_id_for(PAYOUT, reference),
        kind=PAYOUT,
        reference=reference,
        postings=(
            Posting(seller_payable(seller_id), amount_minor, currency),
            Posting(cash_account or seller_payouts_cash(), -amount_minor, currency),
        ),
        occurred_at=occurred_at,
    )


def processor_fee(
    *,
    gateway: str,
    amount_minor: int,
    currency: str,
    reference: str,
    occurred_at: datetime,
    payment_id: str | None = None,
) -> LedgerTransaction:
    """A processor's fee: an expense, netted from what the processor owes us.

    Carries no order id: a fee is not money of the order's customer.
    """
    return LedgerTransaction(
        transaction_id=transaction_id_for(PROCESSOR_FEE, reference),
        kind=PROCESSOR_FEE,
        reference=reference,
        postings=(
            Posting(processor_fees(), amount_minor, currency),
            Posting(processor_clearing(gateway), -amount_minor, currency),
        ),
        occurred_at=occurred_at,
        payment_id=payment_id,
    )


def reversal(
    tx: LedgerTransaction,
    *,
    occurred_at: datetime,
    reference: str | None = None,
    memo: str | None = None,
) -> LedgerTransaction:
    """The correction of a booked transaction: its postings negated (by default once per
    transaction: the reference is the reversed transaction's id)."""
    ref = reference or tx.transaction_id
    return LedgerTransaction(
        transaction_id=transaction_id_for(REVERSAL, ref),
        kind=REVERSAL,
        reference=ref,
        postings=tuple(Posting(p.account, -p.amount_minor, p.currency) for p in tx.postings),
        occurred_at=occurred_at,
        order_id=tx.order_id,
        payment_id=tx.payment_id,
        reverses=tx.transaction_id,
        memo=memo,
    )


def _single_currency(tx: LedgerTransaction) -> str:
    currencies = tx.currencies()
    if len(currencies) != 1:
        raise UnbalancedTransaction(
            f"transaction {tx.transaction_id} moves {len(currencies)} currencies; "
            "refund one at a time",
            reason="currency",
        )
    return currencies[0]
