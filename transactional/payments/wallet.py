"""The wallet domain: a stored-value balance per customer and currency. Pure Python, no I/O.

Every movement is an append-only :class:`WalletEntry` (signed amount, the balance after it,
and a reference unique per kind, so a repeated movement is recorded once). The balance never
goes below zero: a debit the balance cannot cover is refused (:class:`InsufficientWalletBalance`);
PostgreSQL checks it again with a conditional update, so concurrent spends cannot overdraw.

A wallet *spend* (the wallet gateway's charge) debits the balance when authorised; voiding
it releases the money, capturing makes it final, refunding credits it back. A *top-up* is
paid by card (authorised and captured at the card gateway) before the wallet is credited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from transactional.shared.errors import Conflict, InvalidRequest, NotFound, PaymentDeclined

EntryKind = Literal["topup", "debit", "release", "refund", "credit"]
CREDITS: frozenset[str] = frozenset({"topup", "release", "refund", "credit"})
SpendStatus = Literal["authorized", "captured", "partially_refunded", "refunded", "voided"]
TopUpStatus = Literal["pending", "succeeded", "failed"]
CreditReason = Literal["return", "cancellation", "goodwill", "adjustment"]
MAX_TOPUP_MINOR = 1_000_000  # per top-up, in minor units (10 000.00)


class InsufficientWalletBalance(PaymentDeclined):
    """The wallet's balance cannot cover the spend (402)."""

    code = "insufficient_wallet_balance"


class WalletNotFound(NotFound):
    """The customer has no wallet in this currency."""

    code = "wallet_not_found"


class TopUpFailed(PaymentDeclined):
    """The card paying for a top-up was declined; the wallet was not credited."""

    code = "topup_declined"


class TopUpInProgress(Conflict):
    """A top-up with this idempotency key has no final answer yet; retry with the same key."""

    code = "idempotency_key_in_use"


class TopUpKeyReused(InvalidRequest):
    """The idempotency key was used for a different top-up."""

    code = "idempotency_key_reused"


@dataclass(frozen=True)
class WalletEntry:
    """One movement of a wallet: positive credits it, negative debits it."""

    entry_id: str
    customer_id: str
    currency: str
    kind: EntryKind
    amount_minor: int
    balance_after: int
    reference: str
    created_at: datetime

    def __post_init__(self) -> None:
        if self.amount_minor == 0 or (self.amount_minor > 0) != (self.kind in CREDITS):
            raise InvalidRequest(
                f"a {self.kind} entry cannot move {self.amount_minor}", code="invalid_entry"
            )
        if self.balance_after < 0:
            raise InsufficientWalletBalance(
                "the wallet balance cannot go below zero", decline_code="insufficient_funds"
            )


@dataclass(frozen=True)
class WalletBalance:
    """A wallet as its owner sees it."""

    customer_id: str
    currency: str
    balance_minor: int
    updated_at: datetime | None = None


@dataclass
class WalletSpend:
    """Money taken from a wallet for a payment: held (debited), then captured or voided."""

    reference: str
    customer_id: str
    currency: str
    amount_minor: int
    created_at: datetime
    updated_at: datetime
    status: SpendStatus = "authorized"
    captured_minor: int = 0
    refunded_minor: int = 0

    @property
    def refundable_minor(self) -> int:
        """Captured money not yet given back."""
        return self.captured_minor - self.refunded_minor

    def capture(self, amount_minor: int, at: datetime) -> None:
        """Make (part of) the debit final; the rest, if any, is released by the caller."""
        if self.status != "authorized":
            raise Conflict(
                f"wallet spend {self.reference} is {self.status}; only a held spend is captured",
                code="charge_not_capturable",
            )
        if not 0 < amount_minor <= self.amount_minor:
            raise Conflict(
                f"capture {amount_minor} must be between 1 and the held {self.amount_minor}",
                code="amount_exceeds_authorization",
            )
        self.status = "captured"
        self.captured_minor = amount_minor
        self.updated_at = at

    def void(self, at: datetime) -> None:
        """Release the held debit."""
        if self.status != "authorized":
            raise Conflict(
                f"wallet spend {self.reference} is {self.status}; only a held spend is voided",
                code="charge_not_voidable",
            )
        self.status = "voided"
        self.updated_at = at

    def refund(self, amount_minor: int, at: datetime) -> None:
        """Give back captured money, never more than is left."""
        if self.status not in ("captured", "partially_refunded"):
            raise Conflict(
                f"wallet spend {self.reference} is {self.status}; only captured money is refunded",
                code="charge_not_refundable",
            )
        if not 0 < amount_minor <= self.refundable_minor:
            raise Conflict(
                f"refund {amount_minor} must be between 1 and the {self.refundable_minor} left",
                code="refund_exceeds_capture",
            )
        self.refunded_minor += amount_minor
        self.status = (
            "refunded" if self.refunded_minor == self.captured_minor else ("partially_refunded")
        )
        self.updated_at = at


@dataclass
class TopUp:
    """Money paid into a wallet by card: pending until the card is captured, then credited."""

    topup_id: str
    customer_id: str
    idempotency_key: str
    fingerprint: str
    amount_minor: int
    currency: str
    instrument_token: str
    gateway: str
    created_at: datetime
    updated_at: datetime
    status: TopUpStatus = "pending"
    gateway_reference: str | None = None
    decline_code: str | None = None

    def succeeded(self, reference: str, at: datetime) -> None:
        """The card was captured and the wallet credited."""
        self.status = "succeeded"
        self.gateway_reference = reference
        self.updated_at = at

    def failed(self, decline_code: str, at: datetime) -> None:
        """The card was declined; nothing was credited."""
        self.status = "failed"
        self.decline_code = decline_code
        self.updated_at = at

    def declined(self) -> TopUpFailed:
        """The error a caller gets for this failed top-up (first time and on replays)."""
        code = self.decline_code or "card_declined"
        return TopUpFailed(
            f"the card was declined ({code}); the wallet was not topped up",
            decline_code=code,
            topup_id=self.topup_id,
        )


def require_amount(amount_minor: int, *, limit: int | None = None) -> None:
    """InvalidRequest unless ``amount_minor`` is a positive integer (at most ``limit``)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise InvalidRequest(
            f"the amount must be a positive integer of minor units, got {amount_minor!r}",
            code="invalid_amount",
        )
    if limit is not None and amount_minor > limit:
        raise InvalidRequest(
            f"the amount must be at most {limit} minor units", code="amount_too_large"
        )
