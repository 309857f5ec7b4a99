"""The checkout domain: the saga's durable state machine, its ports, and request fingerprints.

Pure Python, no I/O. A checkout moves STARTED → VALIDATED → RESERVED → ORDERED → AUTHORIZED →
CAPTURED → COMPLETED, each stage made durable before the next step runs; any failure ends it
FAILED after compensating the steps already done (release stock, cancel the order, void).
The stock is sold (committed) before the money is captured, so a lost reservation is never
charged and then refunded. A saga is driven by whoever holds its lease; recovery takes over
a lapsed lease, and gives a saga up (compensated, FAILED) after a bounded number of tries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from transactional.payments.instruments import instrument_method
from transactional.shared.errors import Conflict, DomainError, InvalidRequest, PaymentDeclined

if TYPE_CHECKING:  # a type only: the domain imports no token library
    pass

# -- typed errors ------------------------------------------------------------------------


class IdempotencyKeyMissing(DomainError):
    """POST /v1/checkout needs an ``Idempotency-Key`` header (400)."""

    code = "idempotency_key_missing"


class IdempotencyKeyInvalid(DomainError):
    """The ``Idempotency-Key`` header is empty, too long or not printable ASCII (400)."""

    code = "idempotency_key_invalid"


class IdempotencyKeyReused(InvalidRequest):
    """The key was already used with a different request body."""

    code = "idempotency_key_reused"


class IdempotencyKeyInUse(Conflict):
    """A request with this key is still being processed."""

    code = "idempotency_key_in_use"


class InvalidCart(InvalidRequest):
    """The cart cannot be checked out (empty, not the caller's, unpriced...)."""

    code = "invalid_cart"


class OutOfStock(Conflict):
    """The cart asks for more units than are available (the cart view already says so)."""

    code = "insufficient_stock"


class CheckoutInterrupted(Conflict):
    """The saga was cut short (crash, processor silence) and rolled back; nothing was charged."""

    code = "checkout_interrupted"


class OrderCancelled(Conflict):
    """The order was cancelled (e.g. by support) while the checkout was paying for it."""

    code = "order_cancelled"


class CartInCheckout(Conflict):
    """Another checkout of this cart is running: a cart is checked out once at a time."""

    code = "checkout_in_progress"


class CheckoutNotCompleted(Conflict):
    """Recovery could not complete the saga after repeated tries and rolled it back."""

    code = "checkout_not_completed"


class UnknownInstrument(InvalidRequest):
    """The vault token is unknown or another customer's (the two are not told apart)."""

    code = "unknown_instrument"


class DeviceIdInvalid(DomainError):
    """The ``X-Device-Id`` header is not 1-128 characters of ``[A-Za-z0-9._:-]`` (400)."""

    code = "device_id_invalid"


class FraudSuspected(PaymentDeclined):
    """The fraud screen declined the checkout (402, ``decline_code: fraud_suspected``), or a
    reviewer rejected the held order; nothing was charged."""

    code = "fraud_suspected"


class NotOnHold(Conflict):
    """Only an order held for fraud review can be approved or rejected."""

    code = "order_not_on_hold"


class ReviewExpired(Conflict):
    """Nobody reviewed the held order in time: its hold was voided and the order cancelled."""

    code = "fraud_review_expired"


class PaymentActionExpired(Conflict):
    """The payer did not confirm the payment in time (3-D Secure, UPI collect): the order was
    cancelled and nothing was charged."""

    code = "payment_action_expired"


class PaymentOutcomeUnknown(Exception):
    """A payment call did not answer (timeout): whether it happened must be looked up."""


# -- the request ------------------------------------------------------------------------

MAX_IDEMPOTENCY_KEY_LENGTH = 255
# A UPI payment's instrument token is the payer's VPA behind this prefix (not a secret).
UPI_TOKEN_PREFIX = "upi:"


def check_idempotency_key(key: str | None) -> str:
    """The trimmed key; a typed 400 if it is missing or malformed."""
    if key is None or not key.strip():
        raise IdempotencyKeyMissing(
            "send an `Idempotency-Key` header (e.g. a UUID) so the checkout can be retried safely"
        )
    cleaned = key.strip()
    if (
        len(cleaned) > MAX_IDEMPOTENCY_KEY_LENGTH
        or not cleaned.isascii()
        or not cleaned.isprintable()
    ):
        raise IdempotencyKeyInvalid(
            f"the Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters"
        )
    return cleaned


MAX_DEVICE_ID_LENGTH = 128
_DEVICE_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_DEVICE_ID_LENGTH}}}")


def check_device_id(device_id: str | None) -> str | None:
    """The client's device id (None if it sent none); a typed 400 if it is malformed."""
    if device_id is None:
        return None
    cleaned = device_id.strip()
    if not _DEVICE_ID.fullmatch(cleaned):
        raise DeviceIdInvalid(
            f"the X-Device-Id header must be 1-{MAX_DEVICE_ID_LENGTH} characters of "
            "letters, digits and . _ : -"
        )
    return cleaned


@dataclass(frozen=True)
class ClientContext:
    """Where a request comes from, for fraud scoring: the shopper's device and network.

    Carried by the request and its in-memory saga into ``checkout.started``; not stored with
    the saga (recovery never needs it) and not part of the request's fingerprint (a retry from
    another network is the same request).
    """

    device_id: str | None = None
    client_ip: str | None = None
    ip_region: str | None = None  # the region the client IP maps to, None if unknown


NO_CONTEXT = ClientContext()


@dataclass(frozen=True)
class Card:
    """A raw card as typed by the shopper: lives in memory only until it is tokenized."""

    number: str = field(repr=False)
    exp_month: int = field(repr=False)  # the full expiry is card data too (the vault's)
    exp_year: int = field(repr=False)
    cvc: str = field(repr=False)
    holder: str | None = None

    @property
    def last4(self) -> str:
        """The last four digits, the only part of the number we keep."""
        return self.number.replace(" ", "")[-4:]


@dataclass(frozen=True)
class PaymentMethod:
    """How the shopper pays: a raw card (tokenized at once), an existing instrument token, or
    a UPI VPA (a collect request the payer approves)."""

    card: Card | None = None
    token: str | None = None
    vpa: str | None = None
    # The wallet pays it all ({type: wallet}: no card), or up to ``wallet_minor`` with the
    # card paying the rest (a split); ``emi``: (months, bank), the card pays in instalments.
    wallet: bool = False
    wallet_minor: int | None = None
    emi: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        if self.wallet or self.wallet_minor is not None or self.emi is not None:
            _check_wallet_or_emi(self)
        elif sum(value is not None for value in (self.card, self.token, self.vpa)) != 1:
            raise InvalidRequest(
                "payment_method needs exactly one of `card`, `token` or (UPI) `vpa`",
                code="invalid_payment_method",
            )


def _check_wallet_or_emi(method: PaymentMethod) -> None:
    """A wallet payment takes nothing else; a split or EMI payment exactly one card or token."""
    cards = (method.card is not None) + (method.token is not None)
    if method.wallet:
        valid = cards == 0 and method.vpa is None and method.wallet_minor is None
        valid = valid and method.emi is None
    else:
        valid = cards == 1 and method.vpa is None
        valid = valid and (method.wallet_minor is None or method.emi is None)
    if not valid:
        raise InvalidRequest(
            "payment_method: type wallet takes nothing else; a split (wallet_amount_minor) or "
            "an EMI plan takes exactly one `card` or `token`, not both together",
            code="invalid_payment_method",
        )


@dataclass(frozen=True)
class ShippingAddress:
    """A full delivery address (from the address book or typed in at checkout)."""

    full_name: str
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None
    subdivision: str | None = None
    phone: str | None = None
    address_id: str | None = None


@dataclass(frozen=True)
class CheckoutRequest:
    """POST /v1/checkout: the cart, where to ship (saved id or typed address), how to pay."""

    cart_id: str
    payment: PaymentMethod
    address_id: str | None = None
    address: ShippingAddress | None = None
    context: ClientContext = NO_CONTEXT

    def __post_init__(self) -> None:
        if (self.address_id is None) == (self.address is None):
            raise InvalidRequest(
                "shipping_address needs either `address_id` or a full address, not both",
                code="invalid_shipping_address",
            )

    def canonical(self, card_key: bytes) -> dict[str, Any]:
        """Every field of the request, with the card replaced by a keyed fingerprint."""
        payment: dict[str, Any] = {"type": "card"}
        if self.payment.card is not None:
            payment["card"] = {"fingerprint": card_fingerprint(self.payment.card, card_key)}
        elif self.payment.vpa is not None:
            payment = {"type": "upi", "vpa": self.payment.vpa}
        elif self.payment.wallet:
            payment = {"type": "wallet"}
        else:
            payment["token"] = self.payment.token
        if self.payment.wallet_minor is not None:
            payment["wallet_amount_minor"] = self.payment.wallet_minor
        if self.payment.emi is not None:
            payment["type"] = "emi"
            payment["emi"] = {"months": self.payment.emi[0], "bank": self.payment.emi[1]}
        shipping: dict[str, Any]
        if self.address is not None:
            shipping = {
                "full_name": self.address.full_name,
                "line1": self.address.line1,
                "line2": self.address.line2,
                "city": self.address.city,
                "subdivision": self.address.subdivision,
                "postal_code": self.address.postal_code,
                "country": self.address.country,
                "phone": self.address.phone,
            }
        else:
            shipping = {"address_id": self.address_id}
        return {"cart_id": self.cart_id, "shipping_address": shipping, "payment_method": payment}


_VPA = re.compile(r"[A-Za-z0-9._-]{2,64}@[A-Za-z][A-Za-z0-9]{1,32}")


def upi_instrument(vpa: str, currency: str) -> str:
    """The instrument token of a UPI payment from ``vpa`` (``name@bank``); UPI collects
    rupees only (422 ``upi_unavailable`` for another currency, ``invalid_vpa`` for a bad id)."""
    cleaned = vpa.strip()
    if not _VPA.fullmatch(cleaned):
        raise InvalidRequest("the UPI id (VPA) must look like name@bank", code="invalid_vpa")
    if currency != "INR":
        raise InvalidRequest(
            f"UPI pays in INR (India) only; this cart is in {currency}: pay by card",
            code="upi_unavailable",
        )
    return UPI_TOKEN_PREFIX + cleaned


def card_fingerprint(card: Card, key: bytes) -> str:
    """HMAC-SHA256 of every card field: equal cards match, the number cannot be brute-forced."""
    number = card.number.replace(" ", "")
    material = "|".join(
        [number, str(card.exp_month), str(card.exp_year), card.cvc, card.holder or ""]
    )
    return hmac.new(key, material.encode(), hashlib.sha256).hexdigest()


def instrument_id_of(card: Card, key: bytes) -> str:
    """The card's stable, non-secret id (``checkout.started``'s ``instrument_id``).

    Vault tokens are minted per tokenization and per customer, so they cannot tell that two
    customers pay with one card; this can: a keyed HMAC of what identifies the card to its
    issuer (the number and the expiry), so the same card gives the same id for every customer
    and every checkout, a reissued card a new one, and the number cannot be recovered or
    brute-forced from it without the key. Holder name and CVC are left out: a fraudster varies
    them freely.
    """
    number = "".join(ch for ch in card.number if ch not in " -")
    year = card.exp_year + 2000 if 0 <= card.exp_year < 100 else card.exp_year
    material = f"instrument|{number}|{card.exp_month:02d}|{year:04d}"
    return "card_" + hmac.new(key, material.encode(), hashlib.sha256).hexdigest()[:32]


def request_fingerprint(canonical: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a request body (sorted keys, no whitespace)."""
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


# -- what the saga is made of (its ports are in ports.py) ---------------------------


@dataclass(frozen=True)
class Allocation:
    """Units of a SKU held for this checkout in one warehouse."""

    reservation_id: str
    sku: str
    warehouse_id: str
    quantity: int


@dataclass(frozen=True)
class Totals:
    """An order's money breakdown in minor units of one currency."""

    currency: str
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    tax_minor: int
    grand_total_minor: int


@dataclass(frozen=True)
class PlanLine:
    """A cart line frozen at validation time: what will be reserved, ordered and paid."""

    sku: str
    product_id: str
    seller_id: str
    title: str
    quantity: int
    unit_price_minor: int
    # Billing's rate for the line where it ships (percent, a decimal string: the plan is
    # stored as JSON), inside the price or added on top; the catalog category it came from.
    tax_rate: str = "0"
    tax_included: bool = False
    category_id: str | None = None


@dataclass(frozen=True)
class Plan:
    """What the shopper agreed to buy, where it ships, in which currency."""

    currency: str
    lines: tuple[PlanLine, ...]
    subtotal_minor: int
    ship_region: str
    shipping: ShippingAddress


@dataclass(frozen=True)
class PlacedOrder:
    """An order the order slice created (or already had) for the checkout."""

    order_id: str
    totals: Totals


class PaymentState(StrEnum):
    """What the processor knows of a payment."""

    NONE = "none"  # never saw it
    PENDING = "pending"  # we asked, the processor has no answer recorded: outcome unknown
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"
    VOIDED = "voided"
    REFUNDED = "refunded"
    ACTION_REQUIRED = "action_required"  # the processor waits on the payer; nothing held yet


@dataclass(frozen=True)
class PaymentLookup:
    """The processor's answer about a payment whose outcome we did not see."""

    state: PaymentState
    decline_code: str | None = None


@dataclass(frozen=True)
class Authorization:
    """An authorization request; the idempotency key makes repeats return the first result."""

    payment_id: str
    order_id: str
    customer_id: str
    amount_minor: int
    currency: str
    instrument_token: str
    idempotency_key: str


# -- the saga -----------------------------------------------------------------------------


class Stage(StrEnum):
    """The last durable point a checkout reached."""

    STARTED = "started"
    VALIDATED = "validated"
    RESERVED = "reserved"
    ORDERED = "ordered"
    AUTHORIZED = "authorized"
    HELD = "held"  # authorized, the order on hold for a fraud review (not captured)
    # The processor waits on the payer (3-D Secure, UPI collect) until a deadline
    ACTION_REQUIRED = "action_required"
    CAPTURED = "captured"
    COMPLETED = "completed"
    FAILED = "failed"


Status = Literal["pending", "completed", "failed"]
# The steps a client sees in a failure's `step` (the one that failed).
Step = Literal["validate", "reserve", "order", "payment", "finish"]
_NEXT_STEP: dict[Stage, Step] = {
    Stage.STARTED: "validate",
    Stage.VALIDATED: "reserve",
    Stage.RESERVED: "order",
    Stage.ORDERED: "payment",
    Stage.AUTHORIZED: "payment",
    Stage.HELD: "payment",
    Stage.ACTION_REQUIRED: "payment",
    Stage.CAPTURED: "finish",
}


FraudDecision = Literal["approve", "review", "decline"]


@dataclass(frozen=True)
class FraudVerdict:
    """What the fraud screen said of a checkout, kept with its saga (recovery needs it: a
    checkout under review is held after authorization, never captured)."""

    decision: FraudDecision
    score: float
    rules: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    model_version: str | None = None

    @property
    def review(self) -> bool:
        """Whether the order waits for a person before its money is taken."""
        return self.decision == "review"


def authorize_key(checkout_id: str) -> str:
    """The processor idempotency key of the checkout's authorization."""
    return f"{checkout_id}:authorize"


def payment_id_of(checkout_id: str) -> str:
    """The checkout's payment id (the payment slice derives its capture and void keys from it)."""
    return "pay_" + checkout_id.removeprefix("chk_")


def checkout_id_of(payment_id: str) -> str:
    """The checkout a payment id was derived from (see :func:`payment_id_of`)."""
    return "chk_" + payment_id.removeprefix("pay_")


@dataclass(frozen=True)
class StepRecord:
    """One step outcome in the saga's history: done, failed, or compensated."""

    step: str
    outcome: Literal["done", "failed", "compensated"]
    at: datetime


@dataclass(frozen=True)
class Failure:
    """Why a checkout failed: the step, a stable code, one human line and structured facts."""

    step: Step
    code: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkout:
    """The durable state of one checkout saga."""

    checkout_id: str
    customer_id: str
    cart_id: str
    idempotency_key: str
    region: str
    created_at: datetime
    updated_at: datetime
    stage: Stage = Stage.STARTED
    plan: Plan | None = None
    instrument_token: str | None = None
    card_last4: str | None = None
    allocations: tuple[Allocation, ...] = ()
    order_id: str | None = None
    totals: Totals | None = None
    payment_id: str | None = None
    payment_status: str | None = None  # authorized, captured, declined, voided, refunded...
    failure: Failure | None = None
    history: list[StepRecord] = field(default_factory=list)
    lease_owner: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0  # times recovery took the saga over
    # For checkout.started only, in the request's own saga: not stored (a saga read back
    # has neither).
    context: ClientContext = NO_CONTEXT
    instrument_id: str | None = None  # the card's stable id (see instrument_id_of)
    fraud: FraudVerdict | None = None  # the fraud screen's verdict (None: not screened)

    @property
    def status(self) -> Status:
        """pending while the saga runs, then completed or failed."""
        if self.stage is Stage.COMPLETED:
            return "completed"
        if self.stage is Stage.FAILED:
            return "failed"
        return "pending"

    @property
    def payment_method(self) -> Literal["card", "upi", "wallet", "emi"]:
        """How the checkout pays, from its instrument (a UPI one names the payer's VPA; wallet,
        split and EMI ones are payments/instruments.py's)."""
        token = self.instrument_token
        if token is not None and token.startswith(UPI_TOKEN_PREFIX):
            return "upi"
        return "card" if token is None else instrument_method(token)

    @property
    def next_step(self) -> Step:
        """The step that runs (or ran, if we crashed) after the current stage."""
        return _NEXT_STEP.get(self.stage, "finish")

    def _advance(self, expected: Stage, to: Stage, step: str, at: datetime) -> None:
        if self.stage is not expected:
            raise Conflict(
                f"checkout {self.checkout_id} is {self.stage}, not {expected}",
                code="illegal_checkout_transition",
            )
        self.stage = to
        self.history.append(StepRecord(step, "done", at))
        self.updated_at = at

    def validated(
        self,
        plan: Plan,
        instrument_token: str,
        card_last4: str | None,
        at: datetime,
        instrument_id: str | None = None,
    ) -> None:
        """The cart, address and instrument are good; freeze the plan."""
        self.plan = plan
        self.instrument_token = instrument_token
        self.card_last4 = card_last4
        self.instrument_id = instrument_id
        self._advance(Stage.STARTED, Stage.VALIDATED, "validate", at)

    def reserved(self, allocations: Sequence[Allocation], at: datetime) -> None:
        """Stock is held."""
        self.allocations = tuple(allocations)
        self._advance(Stage.VALIDATED, Stage.RESERVED, "reserve", at)

    def ordered(self, order: PlacedOrder, payment_id: str, at: datetime) -> None:
        """The order exists; the payment id is chosen before any processor call."""
        self.order_id = order.order_id
        self.totals = order.totals
        self.payment_id = payment_id
        self._advance(Stage.RESERVED, Stage.ORDERED, "order", at)

    def authorized(self, at: datetime) -> None:
        """The amount is held on the instrument."""
        self.payment_status = "authorized"
        self._advance(Stage.ORDERED, Stage.AUTHORIZED, "authorize", at)

    def held(self, at: datetime) -> None:
        """Authorized, the order on hold for a fraud review; nothing captured."""
        self._advance(Stage.AUTHORIZED, Stage.HELD, "hold", at)

    def released(self, at: datetime) -> None:
        """A reviewer approved the held order: back to authorized, to be captured."""
        self._advance(Stage.HELD, Stage.AUTHORIZED, "review", at)

    def action_required(self, at: datetime) -> None:
        """The processor waits on the payer (a challenge, a collect request): nothing held."""
        self._advance(Stage.ORDERED, Stage.ACTION_REQUIRED, "action_required", at)

    def action_completed(self, at: datetime) -> None:
        """The payer approved: the amount is held on the instrument."""
        self.payment_status = "authorized"
        self._advance(Stage.ACTION_REQUIRED, Stage.AUTHORIZED, "authorize", at)

    def action_deadline(self, ttl: timedelta) -> datetime | None:
        """When the payer's time to act runs out (None unless it was asked to act)."""
        asked = [r.at for r in self.history if r.step == "action_required" and r.outcome == "done"]
        return asked[-1] + ttl if asked else None

    def captured(self, at: datetime) -> None:
        """The money is collected."""
        self.payment_status = "captured"
        self._advance(Stage.AUTHORIZED, Stage.CAPTURED, "capture", at)

    def completed(self, at: datetime) -> None:
        """Order paid, stock sold, cart emptied."""
        self._advance(Stage.CAPTURED, Stage.COMPLETED, "finish", at)

    def failed(
        self,
        failure: Failure,
        compensated: Sequence[Step],
        at: datetime,
        payment_status: str | None = None,
    ) -> None:
        """End the saga after compensating ``compensated`` (in the order they were undone)."""
        if self.stage in (Stage.COMPLETED, Stage.FAILED):
            raise Conflict(
                f"checkout {self.checkout_id} is already {self.stage}",
                code="illegal_checkout_transition",
            )
        self.history.append(StepRecord(failure.step, "failed", at))
        self.history.extend(StepRecord(step, "compensated", at) for step in compensated)
        self.failure = failure
        if payment_status is not None:
            self.payment_status = payment_status
        self.stage = Stage.FAILED
        self.updated_at = at


class Recovery(StrEnum):
    """What recovery does with a saga whose driver vanished."""

    COMPENSATE = "compensate"  # nothing was charged: undo what was done
    LOOKUP_PAYMENT = "lookup_payment"  # an authorization may have happened: ask the processor
    CAPTURE = "capture"  # authorized: collect, then finish
    FINISH = "finish"  # captured: mark paid, commit stock, empty the cart
    EXPIRE_REVIEW = "expire_review"  # held for review past its deadline: void and cancel
    AWAIT_ACTION = "await_action"  # the processor waits on the payer: wait with it
    SETTLE_ACTION = "settle_action"  # waiting on the payer: go on with the answer, or expire


def recovery_for(stage: Stage) -> Recovery:
    """Roll forward once money is held; before that, roll back (the card is not stored)."""
    if stage in (Stage.STARTED, Stage.VALIDATED, Stage.RESERVED):
        return Recovery.COMPENSATE
    if stage is Stage.ORDERED:
        return Recovery.LOOKUP_PAYMENT
    if stage is Stage.AUTHORIZED:
        return Recovery.CAPTURE
    if stage is Stage.CAPTURED:
        return Recovery.FINISH
    if stage is Stage.HELD:
        return Recovery.EXPIRE_REVIEW
    if stage is Stage.ACTION_REQUIRED:
        return Recovery.SETTLE_ACTION
    raise ValueError(f"a {stage} checkout needs no recovery")


def recovery_after_lookup(lookup: PaymentLookup) -> Recovery:
    """An ORDERED saga: continue if the processor holds or took the money, else roll back.

    A PENDING payment rolls back too, but its hold is voided: the void is recorded first, so
    an authorization that lands late is released rather than left on the card.
    """
    if lookup.state is PaymentState.AUTHORIZED:
        return Recovery.CAPTURE
    if lookup.state is PaymentState.CAPTURED:
        return Recovery.FINISH
    if lookup.state is PaymentState.ACTION_REQUIRED:
        return Recovery.AWAIT_ACTION
    return Recovery.COMPENSATE


# -- idempotency ------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    """The first response given for an idempotency key, replayed verbatim for retries."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class CartClaim:
    """A cart's claim row: the checkout holding it (None: free) and the last order bought."""

    holder: str | None
    last_order_id: str | None


@dataclass(frozen=True)
class IdempotencyRecord:
    """A customer's idempotency key: the request it stands for and, once final, its response."""

    customer_id: str
    key: str
    fingerprint: str
    checkout_id: str
    created_at: datetime
    expires_at: datetime
    response: StoredResponse | None = None


# -- persistence ports --------------------------------------------------------------------


class CheckoutRepository(Protocol):
    """Stores sagas; every write after the first is fenced by the writer's lease."""

    def add(self, checkout: Checkout) -> None:
        """Insert a new saga."""

    def get(self, checkout_id: str) -> Checkout | None:
        """A saga by id, or None."""

    def save(self, checkout: Checkout, owner: str) -> bool:
        """Write the saga if ``owner`` still holds its lease; False if someone took it over."""

    def renew(self, checkout_id: str, owner: str, lease_until: datetime) -> bool:
        """Extend ``owner``'s lease of a pending saga; False if it is no longer theirs."""

    def claim_stale(
        self, now: datetime, owner: str, lease_until: datetime, limit: int
    ) -> list[str]:
        """Take the lease of pending sagas whose lease ran out (skipping locked ones); each
        claim counts one more recovery attempt."""

    def claim_held(self, checkout_id: str, owner: str, lease_until: datetime) -> bool:
        """Take the lease of a saga held for fraud review; False if it is not held."""

    def claim_action(self, checkout_id: str, owner: str, lease_until: datetime) -> bool:
        """Take the lease of a saga waiting on the payer; False if it is not waiting."""

    def hand_over(self, checkout_id: str, owner: str, at: datetime) -> None:
        """End ``owner``'s lease of a pending saga at ``at`` (recovery may take it then)."""


class IdempotencyKeys(Protocol):
    """Stores idempotency keys per customer."""

    def claim(self, record: IdempotencyRecord) -> IdempotencyRecord | None:
        """Insert the key (or take over an expired one): None if claimed, else the live record."""

    def get(self, customer_id: str, key: str) -> IdempotencyRecord | None:
        """A customer's key, or None."""

    def finish(
        self, customer_id: str, key: str, checkout_id: str, response: StoredResponse
    ) -> None:
        """Store the final response of the key's request."""

    def purge_expired(self, now: datetime) -> int:
        """Delete finished keys past their expiry; how many went."""
