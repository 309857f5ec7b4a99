"""The double-entry journal: accounts, postings and balanced transactions. Pure Python, no I/O.

A :class:`LedgerTransaction` is a set of :class:`Posting` s, each moving an amount of one
currency on one account: positive is a debit, negative a credit. Every transaction sums to
zero in each of its currencies (else :class:`UnbalancedTransaction`), so the sum of all
balances is always zero. The journal is append-only: a mistake is corrected by a reversal
(the same postings negated), never by an edit.

Accounts are strings ``<type>`` or ``<type>:<qualifier>`` (``seller_payable:sel_1``); each
balance is kept per currency. Sign of a healthy balance per type:

- assets, debit (positive): ``processor_clearing:{gateway}`` (money the processor owes us),
  ``seller_payouts_cash`` would go negative as cash leaves (it is the bank side of payouts);
- liabilities and income, credit (negative): ``seller_payable:{seller}``, ``tax_payable:{region}``,
  ``wallet_liability:{customer}`` (minus the customer's wallet balance), ``platform_revenue``,
  ``shipping_revenue``;
- expenses, debit: ``processor_fees``.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from transactional.shared.errors import InvalidRequest

# Kinds of transaction the bookings build; others may be added (a lowercase word).
CAPTURE = "capture"
REFUND = "refund"
WALLET_TOPUP = "wallet_topup"
WALLET_SPEND = "wallet_spend"
PAYOUT = "payout"
PROCESSOR_FEE = "processor_fee"
REVERSAL = "reversal"

# Account types whose postings are the customer's money entering or leaving: per order, their
# sum over the order's capture/refund/reversal transactions is what the ledger holds for it.
FUNDING_TYPES: frozenset[str] = frozenset(
    {"processor_clearing", "wallet_liability", "customer_funds"}
)

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_ACCOUNT = re.compile(r"^[a-z][a-z_]*(:[^\s]+)?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class UnbalancedTransaction(InvalidRequest):
    """A ledger transaction's postings do not sum to zero in some currency (or are malformed)."""

    code = "unbalanced_transaction"


# --- accounts -------------------------------------------------------------------------------


def _qualified(kind: str, qualifier: str) -> str:
    if not qualifier or any(ch.isspace() for ch in qualifier):
        raise UnbalancedTransaction(
            f"account {kind!r} needs a non-empty qualifier without spaces, got {qualifier!r}"
        )
    return f"{kind}:{qualifier}"


def customer_funds(customer_id: str) -> str:
    """Money a customer paid in by an outside method (e.g. cash on delivery)."""
    return _qualified("customer_funds", customer_id)


def processor_clearing(gateway: str) -> str:
    """What a payment processor collected for us and still owes (an asset)."""
    return _qualified("processor_clearing", gateway)


def platform_revenue() -> str:
    """The platform's commission income."""
    return "platform_revenue"


def shipping_revenue() -> str:
    """Shipping charged to customers."""
    return "shipping_revenue"


def seller_payable(seller_id: str) -> str:
    """What the platform owes a seller (a liability, credit balance)."""
    return _qualified("seller_payable", seller_id)


def tax_payable(region: str) -> str:
    """Tax collected for a tax authority (a liability)."""
    return _qualified("tax_payable", region)


def wallet_liability(customer_id: str) -> str:
    """A customer's stored-value wallet: minus its balance is what the customer may spend."""
    return _qualified("wallet_liability", customer_id)


def processor_fees() -> str:
    """Fees the payment processors charge (an expense)."""
    return "processor_fees"


def seller_payouts_cash() -> str:
    """The bank account payouts to sellers leave from."""
    return "seller_payouts_cash"


def suspense() -> str:
    """Money booked before it could be attributed (e.g. a capture of an unknown order)."""
    return "suspense"


def account_type(account: str) -> str:
    """The type part of an account name (``seller_payable`` of ``seller_payable:sel_1``)."""
    return account.partition(":")[0]


def account_qualifier(account: str) -> str | None:
    """The qualifier of an account name (``sel_1`` of ``seller_payable:sel_1``), or None."""
    _kind, sep, qualifier = account.partition(":")
    return qualifier if sep else None


# --- postings and transactions --------------------------------------------------------------


@dataclass(frozen=True)
class Posting:
    """An amount of one currency on one account: positive debits it, negative credits it."""

    account: str
    amount_minor: int
    currency: str


def transaction_id_for(kind: str, reference: str) -> str:
    """A transaction's id derived from its (kind, reference): re-building it gives the same id."""
    digest = hashlib.sha256(f"{kind}\x00{reference}".encode()).hexdigest()
    return f"ltx_{digest[:24]}"


@dataclass(frozen=True)
class LedgerTransaction:
    """Balanced postings booked together; (kind, reference) names it once and for all."""

    transaction_id: str
    kind: str
    reference: str
    postings: tuple[Posting, ...]
    occurred_at: datetime
    order_id: str | None = None
    payment_id: str | None = None
    reverses: str | None = None  # the transaction_id a reversal undoes
    memo: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "postings", tuple(self.postings))
        validate(self)

    def totals(self) -> dict[str, int]:
        """The sum of the postings per currency (all zero for a valid transaction)."""
        return sums_per_currency(self.postings)

    def amount(self, currency: str | None = None) -> int:
        """The total debited (= total credited) in a currency (the only one if not given)."""
        currencies = self.currencies()
        if currency is None:
            if len(currencies) != 1:
                raise ValueError(
                    f"transaction {self.transaction_id} has {len(currencies)} currencies"
                )
            currency = currencies[0]
        return sum(
            p.amount_minor for p in self.postings if p.currency == currency and p.amount_minor > 0
        )

    def currencies(self) -> list[str]:
        """The currencies the transaction moves, sorted."""
        return sorted({p.currency for p in self.postings})

    def on(self, account: str, currency: str | None = None) -> int:
        """The net amount the transaction posts on an account (in one currency, if given)."""
        return sum(
            p.amount_minor
            for p in self.postings
            if p.account == account and (currency is None or p.currency == currency)
        )


def sums_per_currency(postings: Iterable[Posting]) -> dict[str, int]:
    """The sum of postings per currency."""
    totals: dict[str, int] = defaultdict(int)
    for posting in postings:
        totals[posting.currency] += posting.amount_minor
    return dict(totals)


def validate(tx: LedgerTransaction) -> None:
    """UnbalancedTransaction unless the transaction is well-formed and sums to zero per currency."""
    where = f"ledger transaction {tx.kind}/{tx.reference}"
    if not _KIND.match(tx.kind):
        raise UnbalancedTransaction(f"{where}: kind must be a lowercase word", reason="kind")
    if not tx.reference or not tx.transaction_id:
        raise UnbalancedTransaction(f"{where}: reference and id are required", reason="reference")
    if not tx.postings:
        raise UnbalancedTransaction(f"{where}: has no postings", reason="empty")
    for posting in tx.postings:
        amount = posting.amount_minor
        if isinstance(amount, bool) or not isinstance(amount, int) or amount == 0:
            raise UnbalancedTransaction(
                f"{where}: posting on {posting.account} must be a non-zero integer of minor "
                f"units, got {amount!r}",
                reason="amount",
            )
        if not _CURRENCY.match(posting.currency):
            raise UnbalancedTransaction(
                f"{where}: currency {posting.currency!r} is not an ISO 4217 code",
                reason="currency",
            )
        if not _ACCOUNT.match(posting.account):
            raise UnbalancedTransaction(
                f"{where}: account {posting.account!r} is not '<type>' or '<type>:<qualifier>'",
                reason="account",
            )
    off = {currency: total for currency, total in tx.totals().items() if total != 0}
    if off:
        raise UnbalancedTransaction(
            f"{where}: postings do not sum to zero ({_signed(off)})",
            reason="unbalanced",
            off=off,
        )


def _signed(amounts: Mapping[str, int]) -> str:
    return ", ".join(f"{currency} {total:+d}" for currency, total in sorted(amounts.items()))


def merged(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    """One posting per (account, currency), zeros dropped, in first-seen order."""
    totals: dict[tuple[str, str], int] = {}
    for posting in postings:
        key = (posting.account, posting.currency)
        totals[key] = totals.get(key, 0) + posting.amount_minor
    return tuple(
        Posting(account, amount, currency)
        for (account, currency), amount in totals.items()
        if amount != 0
    )


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` over ``weights`` proportionally and exactly (largest remainder first).

    The parts sum to ``total``; all-zero weights split nothing (ValueError if total is not 0).
    """
    weight_sum = sum(weights)
    if weight_sum == 0:
        if total != 0:
            raise ValueError(f"cannot allocate {total} over zero weights")
        return [0 for _ in weights]
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    parts = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    left = magnitude - sum(parts)
    for index in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[index] += 1
    return [sign * part for part in parts]


def balances_of(transactions: Iterable[LedgerTransaction]) -> Mapping[tuple[str, str], int]:
    """The balance per (account, currency) the transactions add up to."""
    balances: dict[tuple[str, str], int] = defaultdict(int)
    for tx in transactions:
        for posting in tx.postings:
            balances[(posting.account, posting.currency)] += posting.amount_minor
    return dict(balances)
