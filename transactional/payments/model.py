"""The payment domain: cards, the gateway port, and a payment's lifecycle. Pure Python, no I/O.

A payment is authorised (money held), then captured (collected) or voided (hold released);
captured money can be refunded, in parts, never beyond what was captured. Raw card numbers
exist only on their way into :meth:`PaymentGateway.tokenize`; everything after is a token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, get_args

from transactional.shared.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    StoreUnavailable,
)

PaymentStatus = Literal[
    "pending",  # sent to the gateway, answer not yet recorded (timeout or crash)
    "authorized",
    "declined",
    "captured",
    "partially_refunded",
    "refunded",
    "voided",
]
PaymentMethod = Literal["card", "wallet", "emi", "upi", "net_banking", "cod", "gift_card"]
PAYMENT_METHODS: frozenset[str] = frozenset(get_args(PaymentMethod))
CardBrand = Literal["visa", "mastercard", "amex", "discover", "unknown"]
RefundReason = Literal["return", "cancellation", "goodwill", "duplicate", "fraud"]
CAPTURED_STATUSES: frozenset[str] = frozenset({"captured", "partially_refunded", "refunded"})


class InvalidCard(InvalidRequest):
    """The card data cannot be a usable card (bad number, Luhn, expiry or CVC)."""

    code = "invalid_card"


class UnknownInstrument(InvalidRequest):
    """The instrument token is not in the gateway's vault."""

    code = "unknown_instrument"


class IdempotencyKeyReused(Conflict):
    """The same idempotency key was sent again with different parameters."""

    code = "idempotency_key_reused"


class GatewayRefused(Conflict):
    """The gateway refused an operation on a charge in its current state."""

    code = "gateway_refused"


class ChargeNotFound(NotFound):
    """The gateway has no charge with this reference."""

    code = "charge_not_found"


class GatewayTimeout(StoreUnavailable):
    """The gateway did not answer in time; it may or may not have acted.

    Retryable: call again with the same idempotency key, or ``lookup`` it. A subclass of
    StoreUnavailable so one that escapes to HTTP is a 503 "retry later", not a 500.
    """

    def __init__(self, operation: str, idempotency_key: str) -> None:
        super().__init__(
            f"the payment gateway timed out on {operation}; retry with the same idempotency key"
        )
        self.operation = operation
        self.idempotency_key = idempotency_key


class PaymentNotFound(NotFound):
    """No payment with this id."""

    code = "payment_not_found"


class IllegalPaymentTransition(Conflict):
    """The payment is not in a state that allows this operation."""

    code = "illegal_payment_transition"


class PaymentVoidedMeanwhile(Conflict):
    """The payment was voided (its order cancelled) while its authorisation was in flight.

    Any hold the gateway made is released; nothing is charged.
    """

    code = "payment_voided"


@dataclass(frozen=True)
class Card:
    """Raw card data as a shopper typed it; repr hides the number, expiry and CVC."""

    number: str = field(repr=False)
    exp_month: int = field(repr=False)  # the full expiry is card data too (the vault's)
    exp_year: int = field(repr=False)
    cvc: str = field(repr=False)
    holder: str


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def card_brand(digits: str) -> CardBrand:
    """The card network of a number, from its leading digits."""
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"34", "37"}:
        return "amex"
    if 51 <= int(digits[:2] or 0) <= 55 or 2221 <= int(digits[:4] or 0) <= 2720:
        return "mastercard"
    if digits.startswith(("6011", "65")):
        return "discover"
    return "unknown"


def card_expired(exp_month: int, exp_year: int, now: datetime) -> bool:
    """A card is valid through the last day of its expiry month."""
    return (exp_year, exp_month) < (now.year, now.month)


def validated_card(card: Card, now: datetime) -> tuple[str, int]:
    """The card's bare digits and four-digit expiry year; InvalidCard if it cannot be used.

    Error messages never contain the number.
    """
    digits = "".join(ch for ch in card.number if ch not in " -")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise InvalidCard("the card number must be 12 to 19 digits", reason="number")
    if not luhn_valid(digits):
        raise InvalidCard("the card number is mistyped (checksum failed)", reason="luhn")
    year = card.exp_year + 2000 if 0 <= card.exp_year < 100 else card.exp_year
    if not 1 <= card.exp_month <= 12 or not now.year - 50 <= year <= now.year + 20:
        raise InvalidCard("the expiry date is not a valid month and year", reason="expiry")
    if card_expired(card.exp_month, year, now):
        raise InvalidCard("the card has expired", reason="expired")
    cvc_length = 4 if card_brand(digits) == "amex" else 3
    if not card.cvc.isdigit() or len(card.cvc) != cvc_length:
        raise InvalidCard(f"the security code must be {cvc_length} digits", reason="cvc")
    if not card.holder.strip():
        raise InvalidCard("the cardholder name is missing", reason="holder")
    return digits, year


@dataclass(frozen=True)
class GatewayAuthorization:
    """The gateway's answer to an authorisation: a held amount, or a decline with its code."""

    reference: str
    # requires_action: the payer must confirm first (3-D Secure, a UPI collect request)
    status: Literal["authorized", "declined", "requires_action"]
    amount_minor: int
    currency: str
    card_brand: str
    last4: str
    decline_code: str | None = None
    expires_at: datetime | None = None  # when an uncaptured hold (or a pending action) lapses
    action_id: str | None = None  # the challenge or collect request the payer answers


@dataclass(frozen=True)
class GatewayTransaction:
    """A capture, void or refund the gateway performed on a charge."""

    transaction_id: str
    reference: str
    kind: Literal["capture", "void", "refund"]
    amount_minor: int
    currency: str


GatewayResult = GatewayAuthorization | GatewayTransaction


class PaymentGateway(Protocol):
    """A card processor. Every money-moving call is idempotent per ``idempotency_key``."""

    @property
    def name(self) -> str:
        """The gateway's name, as events report it."""

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        """Vault a card for its owner (a customer id); an instrument token. InvalidCard if bad."""

    def owner_of(self, token: str) -> str | None:
        """The customer a vaulted card belongs to (None: nobody yet); UnknownInstrument if none."""

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        """Hold an amount on the card (or decline); GatewayTimeout if the answer was lost.

        With ``owner``, another customer's card is an UnknownInstrument (a card nobody owns
        yet becomes the owner's).
        """

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        """Collect (part of) a held amount; None captures all of it."""

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        """Release an uncaptured hold."""

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        """Give back captured money (at most what was captured, over all refunds)."""

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """What the call with this key did, or None if the gateway never performed it."""


@dataclass(frozen=True)
class Refund:
    """Money given back on a captured payment; the id is the gateway's refund transaction."""

    refund_id: str
    payment_id: str
    amount_minor: int
    currency: str
    reason: RefundReason
    created_at: datetime


@dataclass
class Payment:
    """One card payment of an order, from authorisation to capture, void or refunds."""

    payment_id: str
    order_id: str
    customer_id: str
    region: str
    amount_minor: int
    currency: str
    instrument_token: str
    idempotency_key: str
    created_at: datetime
    updated_at: datetime
    method: PaymentMethod = "card"
    gateway: str = "sandbox"
    status: PaymentStatus = "pending"
    gateway_reference: str | None = None
    card_brand: str | None = None
    last4: str | None = None
    decline_code: str | None = None
    authorization_expires_at: datetime | None = None
    captured_minor: int = 0
    refunded_minor: int = 0
    # An EMI payment's plan as shown before paying (None otherwise): see payments/emi.py.
    emi_months: int | None = None
    emi_bank: str | None = None
    emi_rate_bp: int | None = None  # annual rate, basis points
    emi_monthly_minor: int | None = None
    emi_interest_minor: int | None = None

    @property
    def awaiting_action(self) -> bool:
        """Pending at a gateway that waits on the payer (3-D Secure, a UPI collect)."""
        return self.status == "pending" and self.gateway_reference is not None

    @property
    def refundable_minor(self) -> int:
        """Captured money not yet given back."""
        return self.captured_minor - self.refunded_minor

    def same_request(
        self,
        order_id: str,
        customer_id: str,
        amount_minor: int,
        currency: str,
        instrument_token: str,
        idempotency_key: str,
    ) -> bool:
        """Whether a repeated authorise call asks for exactly this payment."""
        return (
            self.order_id,
            self.customer_id,
            self.amount_minor,
            self.currency,
            self.instrument_token,
            self.idempotency_key,
        ) == (order_id, customer_id, amount_minor, currency, instrument_token, idempotency_key)

    def declined(self) -> PaymentDeclined:
        """The error a caller gets for this declined payment (first time and on replays)."""
        code = self.decline_code or "card_declined"
        return PaymentDeclined(
            f"the payment was declined ({code}); try another card",
            code=code,
            decline_code=code,
            payment_id=self.payment_id,
        )

    def record_authorization(self, result: GatewayAuthorization, at: datetime) -> None:
        """Apply the gateway's authorise answer to a pending payment.

        ``requires_action`` keeps it pending (the gateway has not decided yet), with the
        gateway's charge noted: the payment then awaits the payer (see ``awaiting_action``).
        """
        self._require({"pending"}, "record an authorisation")
        if result.status == "requires_action":
            self.gateway_reference = result.reference
            self.card_brand = result.card_brand
            self.last4 = result.last4
            self.authorization_expires_at = result.expires_at
            self.updated_at = at
            return
        if result.status == "authorized" and result.amount_minor != self.amount_minor:
            raise IllegalPaymentTransition(
                f"payment {self.payment_id}: the gateway held {result.amount_minor}, "
                f"not {self.amount_minor}"
            )
        self.status = result.status
        self.gateway_reference = result.reference
        self.card_brand = result.card_brand
        self.last4 = result.last4
        self.decline_code = result.decline_code
        self.authorization_expires_at = result.expires_at
        self.updated_at = at

    def record_released_hold(self, result: GatewayAuthorization, at: datetime) -> None:
        """A late authorisation of a payment already given up on was voided at the gateway."""
        self._require({"voided", "declined"}, "record a released hold")
        self.gateway_reference = result.reference
        self.card_brand = result.card_brand
        self.last4 = result.last4
        self.authorization_expires_at = None
        self.updated_at = at

    def record_failure(self, code: str, at: datetime) -> None:
        """The gateway refused the authorisation outright (e.g. an unknown instrument)."""
        self._require({"pending"}, "record a failure")
        self.status = "declined"
        self.decline_code = code
        self.updated_at = at

    def record_capture(self, amount_minor: int, at: datetime) -> None:
        """Money was collected: at most the authorised amount, once."""
        self._require({"authorized"}, "capture")
        if not 0 < amount_minor <= self.amount_minor:
            raise InvalidRequest(
                f"capture {amount_minor} must be between 1 and the authorised {self.amount_minor}",
                code="amount_exceeds_authorized",
            )
        self.status = "captured"
        self.captured_minor = amount_minor
        self.updated_at = at

    def record_void(self, at: datetime) -> None:
        """The hold was released (or never existed, for a payment still pending)."""
        self._require({"authorized", "pending"}, "void")
        self.status = "voided"
        self.updated_at = at

    def record_refund(self, amount_minor: int, at: datetime) -> None:
        """Captured money went back: never more than what is left to refund."""
        self._require(set(CAPTURED_STATUSES), "refund")
        if not 0 < amount_minor <= self.refundable_minor:
            raise InvalidRequest(
                f"refund {amount_minor} must be between 1 and the {self.refundable_minor} "
                "captured and not yet refunded",
                code="refund_exceeds_captured",
            )
        self.refunded_minor += amount_minor
        self.status = (
            "refunded" if self.refunded_minor == self.captured_minor else "partially_refunded"
        )
        self.updated_at = at

    def _require(self, allowed: set[str], action: str) -> None:
        if self.status not in allowed:
            raise IllegalPaymentTransition(
                f"cannot {action} payment {self.payment_id}: it is {self.status}",
                payment_status=self.status,
            )


class PaymentRepository(Protocol):
    """Stores payments and their refunds."""

    def add(self, payment: Payment) -> bool:
        """Insert a new payment; False if its id or idempotency key is already taken."""

    def get(self, payment_id: str, *, for_update: bool = False) -> Payment | None:
        """A payment (locked for this transaction if asked), or None."""

    def save(self, payment: Payment) -> None:
        """Write back a payment's status and amounts."""

    def add_refund(self, refund: Refund) -> bool:
        """Record a refund; False if this refund id was already recorded."""

    def refund_count(self, payment_id: str) -> int:
        """How many refunds the payment has."""
