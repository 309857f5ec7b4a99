"""Signed gateway webhooks: verify, refuse replays, apply each delivery's news exactly once.

A provider signs ``f"{timestamp}."`` + the raw body with HMAC-SHA256 under a secret shared
per provider and sends ``Souk-Signature: t=<unix seconds>,v1=<hex>`` (Stripe's scheme).
A delivery is accepted only if a signature matches, its timestamp is within the tolerance
(an old capture replayed later is refused), and its id was never seen: the id is stored in
the same transaction as the state change it causes, so a duplicate (or a concurrent twin)
finds it and books nothing. Deliveries that arrive out of order (``failed`` after
``authorized``, ``authorized`` after ``captured``) meet the payment's state-machine guard
and are recorded as ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from transactional.payments.events import authorization_event
from transactional.payments.model import GatewayAuthorization, Payment, PaymentRepository
from transactional.shared.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from transactional.shared.failpoints import failpoint
from transactional.shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Souk-Signature"
WebhookType = Literal["payment.authorized", "payment.failed", "payment.expired", "payment.captured"]
WEBHOOK_TYPES: frozenset[str] = frozenset(
    {"payment.authorized", "payment.failed", "payment.expired", "payment.captured"}
)
Outcome = Literal["applied", "ignored"]
MAX_BODY_BYTES = 64 * 1024


class UnknownProvider(NotFound):
    """No webhook secret is configured for this provider."""

    code = "unknown_webhook_provider"


class BadSignature(Unauthorized):
    """The signature is missing, malformed, wrong, or its timestamp out of tolerance."""

    code = "webhook_signature_invalid"


class UnknownCharge(NotFound):
    """No payment has this gateway reference (yet): nothing is recorded, so the provider's
    retry is applied once the payment knows its charge."""

    code = "unknown_charge"


class WebhookReplayed(Conflict):
    """This delivery id was received before: nothing is applied twice."""

    code = "webhook_replayed"


class InvalidWebhook(InvalidRequest):
    """A signed body that is not a delivery we understand."""

    code = "invalid_webhook"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` + body under the provider's secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Souk-Signature`` value a provider sends with ``body``."""
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def verify(secret: str, header: str | None, body: bytes, now: datetime, tolerance_s: float) -> int:
    """The signed timestamp; BadSignature unless a ``v1`` signature matches within tolerance."""
    if not header:
        raise BadSignature(f"the {SIGNATURE_HEADER} header is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise BadSignature(f"the {SIGNATURE_HEADER} header needs t=<seconds> and v1=<hex>")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise BadSignature("the webhook signature does not match")
    if abs(now.timestamp() - timestamp) > tolerance_s:
        raise BadSignature(
            f"the webhook timestamp is more than {tolerance_s:.0f} s away from now",
            reason="stale_timestamp",
        )
    return timestamp


@dataclass(frozen=True)
class SignedWebhook:
    """One delivery as a provider sends it: the raw body and its headers."""

    provider: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Delivery:
    """A verified delivery's content."""

    delivery_id: str
    type: WebhookType
    reference: str
    amount_minor: int
    currency: str
    failure_code: str | None = None


def parse(body: bytes) -> Delivery:
    """The delivery in a verified body; InvalidWebhook if it is not one."""
    try:
        raw = json.loads(body)
        data = raw["data"]
        delivery = Delivery(
            delivery_id=_text(raw["id"]),
            type=raw["type"],
            reference=_text(data["reference"]),
            amount_minor=int(data["amount_minor"]),
            currency=_text(data["currency"]),
            failure_code=None if data.get("failure_code") is None else _text(data["failure_code"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidWebhook(f"not a webhook delivery: {error}") from None
    if delivery.type not in WEBHOOK_TYPES:
        raise InvalidWebhook(f"unknown webhook type {delivery.type!r}", known=sorted(WEBHOOK_TYPES))
    return delivery


def _text(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise ValueError(f"expected an id, got {value!r}")
    return value


def webhook_body(
    delivery_id: str,
    type_: WebhookType,
    reference: str,
    amount_minor: int,
    currency: str,
    created: datetime,
    failure_code: str | None = None,
) -> bytes:
    """The JSON body a provider sends for one delivery."""
    return json.dumps(
        {
            "id": delivery_id,
            "type": type_,
            "created": int(created.timestamp()),
            "data": {
                "reference": reference,
                "amount_minor": amount_minor,
                "currency": currency,
                "failure_code": failure_code,
            },
        },
        separators=(",", ":"),
    ).encode()


class WebhookDeliveries(Protocol):
    """Delivery ids already received, per provider."""

    def add(
        self, provider: str, delivery_id: str, type_: str, reference: str, at: datetime
    ) -> bool:
        """Record a delivery; False if its id was received before (it is a replay)."""

    def settle(self, provider: str, delivery_id: str, outcome: Outcome) -> None:
        """Note what the delivery did."""


class WebhookUnitOfWork(UnitOfWork, Protocol):
    """A transaction with payments and webhook deliveries."""

    payments: PaymentRepository
    deliveries: WebhookDeliveries

    def payment_of_reference(self, reference: str) -> str | None:
        """The id of the payment charged under this gateway reference, if any."""


@dataclass(frozen=True)
class WebhookResult:
    """What a delivery did: applied, or ignored (stale news for the payment's state)."""

    delivery_id: str
    outcome: Outcome
    payment_id: str | None
    payment_status: str | None


class WebhookService:
    """Receives signed deliveries (``POST /v1/payments/webhooks/{provider}``)."""

    def __init__(
        self,
        uow: Callable[[], WebhookUnitOfWork],
        secrets: Mapping[str, str],
        *,
        tolerance_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_settled: Callable[[Payment], None] = lambda payment: None,
    ) -> None:
        self._uow = uow
        self._secrets = dict(secrets)
        self._tolerance_s = tolerance_s
        self._clock = clock
        # The checkout waiting on the payment goes on (wired in souk.services).
        self._on_settled = on_settled

    def receive(self, provider: str, signature: str | None, body: bytes) -> WebhookResult:
        """Verify and apply one delivery; UnknownProvider (404), BadSignature (401),
        InvalidWebhook (422), UnknownCharge (404), WebhookReplayed (409): nothing changes on
        any of them."""
        secret = self._secrets.get(provider)
        if secret is None:
            raise UnknownProvider(f"no webhooks are expected from {provider!r}")
        if len(body) > MAX_BODY_BYTES:
            raise InvalidWebhook("the webhook body is too large")
        now = self._clock()
        verify(secret, signature, body, now, self._tolerance_s)
        delivery = parse(body)
        with self._uow() as uow:
            payment_id = uow.payment_of_reference(delivery.reference)
            if payment_id is None:
                raise UnknownCharge(
                    f"no payment has the charge {delivery.reference} (yet); retry later",
                    reference=delivery.reference,
                )
            # Recorded first: a concurrent twin waits on this row, then finds it taken.
            if not uow.deliveries.add(
                provider, delivery.delivery_id, delivery.type, delivery.reference, now
            ):
                raise WebhookReplayed(
                    f"delivery {delivery.delivery_id} was received already",
                    delivery_id=delivery.delivery_id,
                )
            payment = uow.payments.get(payment_id, for_update=True)
            outcome: Outcome = "ignored"
            if payment is not None and _applies(payment, delivery):
                payment.record_authorization(_answer(payment, delivery), now)
                uow.payments.save(payment)
                uow.emit(authorization_event(payment))
                outcome = "applied"
            uow.deliveries.settle(provider, delivery.delivery_id, outcome)
            uow.commit()
        log.info("webhook %s %s %s: %s", provider, delivery.delivery_id, delivery.type, outcome)
        failpoint("payments.after_webhook")
        if payment is not None and outcome == "applied":
            try:
                self._on_settled(payment)
            except Exception:  # committed: recovery drives the checkout at its deadline
                log.exception("payment %s: its checkout did not go on yet", payment.payment_id)
        return WebhookResult(
            delivery.delivery_id,
            outcome,
            None if payment is None else payment.payment_id,
            None if payment is None else payment.status,
        )


def _applies(payment: Payment, delivery: Delivery) -> bool:
    """The state-machine guard: only a payment still waiting on the payer takes an answer;
    anything else (a duplicate, news older than the state) is ignored."""
    if not payment.awaiting_action or delivery.type == "payment.captured":
        return False
    return (delivery.amount_minor, delivery.currency) == (payment.amount_minor, payment.currency)


def _answer(payment: Payment, delivery: Delivery) -> GatewayAuthorization:
    approved = delivery.type == "payment.authorized"
    code = None
    if not approved:
        code = delivery.failure_code or (
            "collect_expired" if delivery.type == "payment.expired" else "payer_declined"
        )
    return GatewayAuthorization(
        reference=delivery.reference,
        status="authorized" if approved else "declined",
        amount_minor=delivery.amount_minor,
        currency=delivery.currency,
        card_brand=payment.card_brand or "unknown",
        last4=payment.last4 or "",
        decline_code=code,
        expires_at=payment.authorization_expires_at,
    )
