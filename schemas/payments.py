"""Payments domain (aggregate ``payment``): authorisation, capture, failure, refund.

Card data never appears here: only vault tokens (PCI scope stays inside the vault).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from schemas.common import CountryCode, Id, Money, PaymentMethod, Timestamp
from schemas.spec import EventSpec

__all__ = [
    "SPECS",
    "PaymentActionRequired",
    "PaymentAuthorized",
    "PaymentCaptured",
    "PaymentFailed",
    "PaymentRefunded",
    "PaymentVoided",
    "WalletCredited",
    "WalletDebited",
    "WalletToppedUp",
]


class PaymentAuthorized(msgspec.Struct, frozen=True, kw_only=True):
    """payment.authorized: the gateway approved (held) the amount."""

    payment_id: Id
    order_id: Id
    customer_id: Id
    amount: Money
    method: PaymentMethod
    gateway: Id  # regional gateway name, e.g. "stripe-eu", "razorpay-in"
    gateway_reference: str | None = None
    instrument_token: Id | None = None  # vault token; never a PAN
    # Fraud features ("location mismatch"): issuing country vs shipping/IP country.
    instrument_country: CountryCode | None = None
    emi_months: Annotated[int, msgspec.Meta(ge=1, le=60)] | None = None
    expires_at: Timestamp | None = None  # when the hold lapses if not captured


class PaymentActionRequired(msgspec.Struct, frozen=True, kw_only=True):
    """payment.action_required: the gateway waits on the payer before it decides (a 3-D
    Secure challenge, a UPI collect request); nothing is held yet."""

    payment_id: Id
    order_id: Id
    customer_id: Id
    amount: Money
    method: PaymentMethod
    gateway: Id
    action: Literal["three_d_secure", "upi_collect"]
    gateway_reference: str | None = None
    expires_at: Timestamp | None = None  # when the gateway stops waiting


class PaymentCaptured(msgspec.Struct, frozen=True, kw_only=True):
    """payment.captured: authorised money was actually collected."""

    payment_id: Id
    order_id: Id
    customer_id: Id
    amount: Money
    method: PaymentMethod
    gateway_reference: str | None = None


class PaymentFailed(msgspec.Struct, frozen=True, kw_only=True):
    """payment.failed: an authorisation or capture attempt failed."""

    payment_id: Id
    order_id: Id
    customer_id: Id
    amount: Money
    method: PaymentMethod
    stage: Literal["authorization", "capture"]
    error_code: Id
    error_message: str = ""
    # Drives retry logic: retryable failures are retried with backoff, others cancel.
    retryable: bool = False
    attempt: Annotated[int, msgspec.Meta(ge=1)] = 1


class PaymentRefunded(msgspec.Struct, frozen=True, kw_only=True):
    """payment.refunded: money went back to the instrument (ledger credit)."""

    payment_id: Id
    refund_id: Id
    order_id: Id
    customer_id: Id
    amount: Money
    return_id: Id | None = None  # None for cancellation refunds
    reason: Literal["return", "cancellation", "goodwill", "duplicate", "fraud"] = "return"
    gateway_reference: str | None = None


class PaymentVoided(msgspec.Struct, frozen=True, kw_only=True):
    """payment.voided: an uncaptured authorisation was released; no money moved."""

    payment_id: Id
    order_id: Id
    customer_id: Id
    amount: Money  # the hold that was released
    method: PaymentMethod
    gateway_reference: str | None = None


# --- wallet (stored value per customer and currency; aggregate ``wallet``, keyed by customer) ---


class WalletToppedUp(msgspec.Struct, frozen=True, kw_only=True):
    """wallet.topped_up: money paid in by card was credited to the wallet."""

    customer_id: Id
    topup_id: Id
    entry_id: Id
    amount: Money
    balance_after: Money
    gateway: Id
    gateway_reference: str | None = None


class WalletDebited(msgspec.Struct, frozen=True, kw_only=True):
    """wallet.debited: a payment took money from the wallet (held until captured or voided)."""

    customer_id: Id
    entry_id: Id
    reference: Id  # the wallet spend (the payment's gateway reference)
    amount: Money
    balance_after: Money


class WalletCredited(msgspec.Struct, frozen=True, kw_only=True):
    """wallet.credited: money went back into the wallet (a released hold, a refund, a credit)."""

    customer_id: Id
    entry_id: Id
    reference: Id  # the spend released or refunded, or the caller's credit reference
    amount: Money
    balance_after: Money
    reason: Literal["release", "refund", "return", "cancellation", "goodwill", "adjustment"]


SPECS = (
    EventSpec(
        "payment.action_required", 1, "payments", "payment", PaymentActionRequired, "payment_id"
    ),
    EventSpec("payment.authorized", 1, "payments", "payment", PaymentAuthorized, "payment_id"),
    EventSpec("payment.captured", 1, "payments", "payment", PaymentCaptured, "payment_id"),
    EventSpec("payment.failed", 1, "payments", "payment", PaymentFailed, "payment_id"),
    EventSpec("payment.refunded", 1, "payments", "payment", PaymentRefunded, "payment_id"),
    EventSpec("payment.voided", 1, "payments", "payment", PaymentVoided, "payment_id"),
    EventSpec("wallet.credited", 1, "payments", "wallet", WalletCredited, "customer_id"),
    EventSpec("wallet.debited", 1, "payments", "wallet", WalletDebited, "customer_id"),
    EventSpec("wallet.topped_up", 1, "payments", "wallet", WalletToppedUp, "customer_id"),
)
