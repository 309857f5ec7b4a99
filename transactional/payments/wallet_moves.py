"""Moving money in and out of a wallet inside a unit of work: the balance, its append-only
entry and its event, together (the caller commits them with whatever else it writes).

A movement is recorded once per (kind, reference): repeating one returns the first entry.
Callers serialise movements of one reference (``uow.wallets.lock``) before calling.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from schemas.common import Money
from schemas.envelope import Envelope
from schemas.ids import new_id
from schemas.payments import WalletCredited, WalletDebited, WalletToppedUp
from schemas.registry import REGISTRY
from transactional.payments.wallet import EntryKind, WalletBalance, WalletEntry
from transactional.shared.errors import Conflict
from transactional.shared.regions import REGION_CURRENCY

CreditKind = EntryKind
_REGION_OF_CURRENCY = {currency: region for region, currency in REGION_CURRENCY.items()}


def region_of_currency(currency: str, default: str = "eu") -> str:
    """The region whose currency this is (GBP and others: ``default``)."""
    return _REGION_OF_CURRENCY.get(currency, default)


class WalletRows(Protocol):
    """The wallet rows a movement touches."""

    def debit(self, customer_id: str, currency: str, amount_minor: int, at: datetime) -> int | None:
        """Take the amount if covered: the balance after, else None."""

    def credit(self, customer_id: str, currency: str, amount_minor: int, at: datetime) -> int:
        """Add the amount (opening the wallet); the balance after."""

    def add_entry(self, entry: WalletEntry) -> bool:
        """Append an entry; False if its (kind, reference) exists."""

    def entry(self, kind: str, reference: str) -> WalletEntry | None:
        """The entry of a kind with this reference, or None."""

    def balance(self, customer_id: str, currency: str) -> WalletBalance | None:
        """The wallet, or None."""


class MovesUnitOfWork(Protocol):
    """A transaction with wallet rows that queues events."""

    @property
    def wallets(self) -> WalletRows:
        """The wallet rows of this transaction."""

    def emit(self, *envelopes: Envelope) -> None:
        """Queue events for the outbox."""


def debit(
    uow: MovesUnitOfWork,
    customer_id: str,
    currency: str,
    amount_minor: int,
    reference: str,
    at: datetime,
) -> WalletEntry | None:
    """Take money for a spend (``reference``); None if the balance cannot cover it."""
    existing = uow.wallets.entry("debit", reference)
    if existing is not None:
        return existing
    balance = uow.wallets.debit(customer_id, currency, amount_minor, at)
    if balance is None:
        return None
    entry = _entry(customer_id, currency, "debit", -amount_minor, balance, reference, at)
    _append(uow, entry)
    uow.emit(
        REGISTRY.new_event(
            "wallet.debited",
            WalletDebited(
                customer_id=customer_id,
                entry_id=entry.entry_id,
                reference=reference,
                amount=_money(amount_minor, currency),
                balance_after=_money(balance, currency),
            ),
            region=region_of_currency(currency),
        )
    )
    return entry


def credit(
    uow: MovesUnitOfWork,
    customer_id: str,
    currency: str,
    amount_minor: int,
    reference: str,
    at: datetime,
    *,
    kind: CreditKind,
    reason: str,
) -> WalletEntry:
    """Put money back (a released hold, a refund, a credit), opening the wallet if needed."""
    existing = uow.wallets.entry(kind, reference)
    if existing is not None:
        return existing
    balance = uow.wallets.credit(customer_id, currency, amount_minor, at)
    entry = _entry(customer_id, currency, kind, amount_minor, balance, reference, at)
    _append(uow, entry)
    uow.emit(
        REGISTRY.new_event(
            "wallet.credited",
            WalletCredited(
                customer_id=customer_id,
                entry_id=entry.entry_id,
                reference=reference,
                amount=_money(amount_minor, currency),
                balance_after=_money(balance, currency),
                reason=reason,  # type: ignore[arg-type]  # checked by the event schema
            ),
            region=region_of_currency(currency),
        )
    )
    return entry


def top_up(
    uow: MovesUnitOfWork,
    customer_id: str,
    currency: str,
    amount_minor: int,
    topup_id: str,
    at: datetime,
    *,
    gateway: str,
    gateway_reference: str | None,
) -> WalletEntry:
    """Credit money paid in by card (the top-up ``topup_id``)."""
    existing = uow.wallets.entry("topup", topup_id)
    if existing is not None:
        return existing
    balance = uow.wallets.credit(customer_id, currency, amount_minor, at)
    entry = _entry(customer_id, currency, "topup", amount_minor, balance, topup_id, at)
    _append(uow, entry)
    uow.emit(
        REGISTRY.new_event(
            "wallet.topped_up",
            WalletToppedUp(
                customer_id=customer_id,
                topup_id=topup_id,
                entry_id=entry.entry_id,
                amount=_money(amount_minor, currency),
                balance_after=_money(balance, currency),
                gateway=gateway,
                gateway_reference=gateway_reference,
            ),
            region=region_of_currency(currency),
        )
    )
    return entry


def _entry(
    customer_id: str,
    currency: str,
    kind: EntryKind,
    amount_minor: int,
    balance: int,
    reference: str,
    at: datetime,
) -> WalletEntry:
    return WalletEntry(
        entry_id=new_id("wen"),
        customer_id=customer_id,
        currency=currency,
        kind=kind,
        amount_minor=amount_minor,
        balance_after=balance,
        reference=reference,
        created_at=at,
    )


def _append(uow: MovesUnitOfWork, entry: WalletEntry) -> None:
    if not uow.wallets.add_entry(entry):
        # A concurrent movement with this reference committed first: roll this one back.
        raise Conflict(
            f"wallet {entry.kind} {entry.reference} was recorded concurrently; retry",
            code="wallet_movement_in_use",
        )


def _money(amount_minor: int, currency: str) -> Money:
    return Money(amount_minor=amount_minor, currency=currency)
