"""The sandbox UPI gateway: collect requests in test mode, answered by signed webhooks.

A UPI payment is a collect request to the payer's VPA (``name@bank``): the gateway answers
``requires_action`` at once, the payer approves or declines in their UPI app, and the
gateway tells us by webhook. In test mode the payer is played by :meth:`deliver`:

=====================  =====================================================================
VPA                    what the payer does when :meth:`deliver` runs
=====================  =====================================================================
``success@souk``       approves: ``payment.authorized``
``failure@souk``       declines: ``payment.failed`` (``payer_declined``)
``timeout@souk``       never answers: ``payment.expired`` (``collect_expired``) once the
                       collect request lapsed (``collect_ttl_s``)
any other valid VPA    approves
=====================  =====================================================================

Each outcome is decided once and kept with its delivery id, so a delivery sent again (a
provider's retry) carries the same id. Approved money is held (``authorized``) until our
capture, like a card's; capture, void, refund and lookup are idempotent per key. State lives
behind the :class:`UpiStore` port (PostgreSQL in ``upi_sandbox_store.py``, memory in tests).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from schemas.ids import new_id
from transactional.payments.model import (
    Card,
    ChargeNotFound,
    GatewayAuthorization,
    GatewayRefused,
    GatewayResult,
    GatewayTransaction,
    IdempotencyKeyReused,
    UnknownInstrument,
)
from transactional.payments.webhooks import (
    SignedWebhook,
    WebhookType,
    signature_header,
    webhook_body,
)
from transactional.shared.errors import InvalidRequest

PROVIDER = "sandbox-upi"
TOKEN_PREFIX = "upi:"
APPROVING_VPA = "success@souk"
DECLINING_VPA = "failure@souk"
SILENT_VPA = "timeout@souk"
# A VPA: a handle of letters, digits, dots, dashes, underscores, then @ and the bank's handle.
_VPA = re.compile(r"[A-Za-z0-9._-]{2,64}@[A-Za-z][A-Za-z0-9]{1,32}")

CollectStatus = Literal[
    "requires_action",
    "authorized",
    "declined",
    "voided",
    "captured",
    "partially_refunded",
    "refunded",
]


def check_vpa(vpa: str) -> str:
    """The VPA trimmed; InvalidRequest (``invalid_vpa``) if it is not ``handle@bank``."""
    cleaned = vpa.strip()
    if not _VPA.fullmatch(cleaned):
        raise InvalidRequest(
            "the UPI id (VPA) must look like name@bank", code="invalid_vpa", field="vpa"
        )
    return cleaned


def upi_token(vpa: str) -> str:
    """The instrument token a UPI payment carries: the payer's VPA (not a secret)."""
    return TOKEN_PREFIX + check_vpa(vpa)


def is_upi_token(token: str | None) -> bool:
    """Whether an instrument token names a UPI VPA."""
    return token is not None and token.startswith(TOKEN_PREFIX)


@dataclass(frozen=True)
class UpiCollect:
    """A collect request and what became of it."""

    reference: str
    vpa: str
    amount_minor: int
    currency: str
    status: CollectStatus
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    decline_code: str | None = None
    captured_minor: int = 0
    refunded_minor: int = 0
    event_id: str | None = None  # the delivery announcing the payer's answer, once decided
    event_type: str | None = None
    delivered: bool = False  # acknowledged by the merchant (2xx, or 409: seen already)


@dataclass(frozen=True)
class UpiRequest:
    """The first result of an idempotency key."""

    idempotency_key: str
    operation: str
    fingerprint: str
    result: dict[str, Any]


class UpiSession(Protocol):
    """One short transaction of the UPI sandbox's store."""

    def collect(self, reference: str) -> UpiCollect | None:
        """A collect request, locked until the session ends, or None."""

    def save(self, collect: UpiCollect) -> None:
        """Insert or update a collect request."""

    def request(self, idempotency_key: str) -> UpiRequest | None:
        """The stored result of a key, or None."""

    def save_request(self, request: UpiRequest) -> None:
        """Remember the result of a key."""


class UpiStore(Protocol):
    """The UPI sandbox's store: sessions commit when their block ends without error."""

    def session(self, lock_key: str) -> AbstractContextManager[UpiSession]:
        """A transaction serialised with every other session of ``lock_key``."""

    def undelivered(self, limit: int) -> list[str]:
        """Collects whose answer is not acknowledged yet (undecided ones included), oldest
        first."""


class SandboxUpiGateway:
    """The ``sandbox-upi`` adapter of the PaymentGateway port (see the module docstring)."""

    name = PROVIDER

    def __init__(
        self,
        store: UpiStore,
        *,
        secret: str,
        collect_ttl_s: float = 600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._secret = secret
        self._ttl = timedelta(seconds=collect_ttl_s)
        self._clock = clock

    # -- the gateway port -----------------------------------------------------------------

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        """UPI vaults no cards."""
        raise InvalidRequest("UPI pays from a VPA, not a card", code="invalid_payment_method")

    def owner_of(self, token: str) -> str | None:
        """A VPA belongs to nobody here (the payer's bank knows them)."""
        if not is_upi_token(token):
            raise UnknownInstrument(f"{token!r} is not a UPI instrument")
        return None

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        """Send a collect request to the VPA: ``requires_action`` until the payer answers."""
        if not is_upi_token(token):
            raise UnknownInstrument(f"{token!r} is not a UPI instrument")
        vpa = check_vpa(token.removeprefix(TOKEN_PREFIX))
        if amount_minor <= 0 or currency != "INR":
            raise InvalidRequest("UPI collects a positive amount in INR", code="invalid_amount")
        fingerprint = _fingerprint("authorize", token, amount_minor, currency)
        with self._store.session(idempotency_key) as session:
            replay = _replay(session, idempotency_key, "authorize", fingerprint)
            if replay is not None:
                assert isinstance(replay, GatewayAuthorization)
                return replay
            now = self._clock()
            collect = UpiCollect(
                reference=new_id("upi"),
                vpa=vpa,
                amount_minor=amount_minor,
                currency=currency,
                status="requires_action",
                created_at=now,
                updated_at=now,
                expires_at=now + self._ttl,
            )
            session.save(collect)
            result = _answer(collect)
            session.save_request(
                UpiRequest(idempotency_key, "authorize", fingerprint, _encode(result))
            )
        return result

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        """Settle approved money (all of it when ``amount_minor`` is None)."""

        def act(collect: UpiCollect) -> tuple[UpiCollect, int]:
            if collect.status != "authorized":
                raise GatewayRefused(
                    f"collect {reference} is {collect.status}; only approved money is captured",
                    code="charge_not_capturable",
                )
            amount = collect.amount_minor if amount_minor is None else amount_minor
            if not 0 < amount <= collect.amount_minor:
                raise GatewayRefused(
                    f"capture {amount} must be between 1 and {collect.amount_minor}",
                    code="amount_exceeds_authorization",
                )
            return replace(collect, status="captured", captured_minor=amount), amount

        return self._transact(reference, idempotency_key, "capture", amount_minor, act)

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        """Give approved, uncaptured money back to the payer."""

        def act(collect: UpiCollect) -> tuple[UpiCollect, int]:
            if collect.status != "authorized":
                raise GatewayRefused(
                    f"collect {reference} is {collect.status}; only approved money is voided",
                    code="charge_not_voidable",
                )
            return replace(collect, status="voided"), collect.amount_minor

        return self._transact(reference, idempotency_key, "void", None, act)

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        """Send captured money back (never more than was captured, over all refunds)."""

        def act(collect: UpiCollect) -> tuple[UpiCollect, int]:
            left = collect.captured_minor - collect.refunded_minor
            if collect.status not in ("captured", "partially_refunded"):
                raise GatewayRefused(
                    f"collect {reference} is {collect.status}; nothing captured to refund",
                    code="charge_not_refundable",
                )
            if not 0 < amount_minor <= left:
                raise GatewayRefused(
                    f"refund {amount_minor} must be between 1 and the {left} left",
                    code="refund_exceeds_capture",
                )
            refunded = collect.refunded_minor + amount_minor
            status: CollectStatus = (
                "refunded" if refunded == collect.captured_minor else "partially_refunded"
            )
            return replace(collect, status=status, refunded_minor=refunded), amount_minor

        return self._transact(reference, idempotency_key, "refund", amount_minor, act)

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """The first result of this key, or None if no call with it was performed."""
        with self._store.session(idempotency_key) as session:
            stored = session.request(idempotency_key)
        return None if stored is None else _decode(stored.result)

    # -- waiting on the payer (threeds.ActionGateway) ------------------------------------------

    def action_outcome(self, reference: str) -> GatewayAuthorization:
        """Where the collect stands now."""
        with self._store.session(reference) as session:
            collect = _collect(session, reference)
        return _answer(collect)

    def cancel_action(self, reference: str) -> GatewayAuthorization:
        """Withdraw an unanswered collect request; an answered one keeps its answer."""
        with self._store.session(reference) as session:
            collect = _collect(session, reference)
            if collect.status == "requires_action":
                collect = replace(
                    collect,
                    status="voided",
                    decline_code="collect_withdrawn",
                    updated_at=self._clock(),
                    delivered=True,  # nothing left to tell
                )
                session.save(collect)
        return _answer(collect)

    # -- the payer and the webhook sender (test mode) -----------------------------------------

    def deliver(self, reference: str | None = None, *, limit: int = 100) -> list[SignedWebhook]:
        """Play the payer of waiting collects (``reference``, or every one) as their VPA says,
        and return the signed webhooks of every answer not acknowledged yet."""
        references = [reference] if reference is not None else self._store.undelivered(limit)
        webhooks = []
        for ref in references:
            with self._store.session(ref) as session:
                collect = _collect(session, ref)
                decided = self._decide(collect)
                if decided is not collect:
                    session.save(decided)
            if decided.event_id is not None and not decided.delivered:
                webhooks.append(self._signed(decided))
        return webhooks

    def redeliver(self, reference: str) -> SignedWebhook:
        """The collect's answer sent again, same delivery id (a provider's retry)."""
        with self._store.session(reference) as session:
            collect = _collect(session, reference)
        if collect.event_id is None:
            raise GatewayRefused(f"collect {reference} has no answer yet", code="not_answered")
        return self._signed(collect)

    def acknowledge(self, reference: str) -> None:
        """The merchant took the collect's delivery: it is not sent again."""
        with self._store.session(reference) as session:
            collect = _collect(session, reference)
            if not collect.delivered:
                session.save(replace(collect, delivered=True))

    def deliver_to(self, post: Callable[[SignedWebhook], int], *, limit: int = 100) -> int:
        """Deliver every waiting answer through ``post`` (returns the HTTP status); a 2xx or
        a 409 (seen already) acknowledges it. Returns how many were acknowledged."""
        done = 0
        for webhook in self.deliver(limit=limit):
            status = post(webhook)
            if 200 <= status < 300 or status == 409:
                self.acknowledge(json.loads(webhook.body)["data"]["reference"])
                done += 1
        return done

    def _decide(self, collect: UpiCollect) -> UpiCollect:
        """The payer's answer, if they give one now."""
        if collect.status != "requires_action" or collect.event_id is not None:
            return collect
        now = self._clock()
        event: WebhookType
        if collect.vpa == SILENT_VPA:
            if now < collect.expires_at:
                return collect
            status, code, event = "declined", "collect_expired", "payment.expired"
        elif collect.vpa == DECLINING_VPA:
            status, code, event = "declined", "payer_declined", "payment.failed"
        else:
            status, code, event = "authorized", None, "payment.authorized"
        return replace(
            collect,
            status=status,  # type: ignore[arg-type]
            decline_code=code,
            updated_at=now,
            event_id=new_id("evt"),
            event_type=event,
        )

    def _signed(self, collect: UpiCollect) -> SignedWebhook:
        assert collect.event_id is not None and collect.event_type is not None
        now = self._clock()
        body = webhook_body(
            collect.event_id,
            collect.event_type,  # type: ignore[arg-type]
            collect.reference,
            collect.amount_minor,
            collect.currency,
            now,
            collect.decline_code,
        )
        header = signature_header(self._secret, int(now.timestamp()), body)
        return SignedWebhook(
            PROVIDER, body, {"Souk-Signature": header, "Content-Type": "application/json"}
        )

    def _transact(
        self,
        reference: str,
        idempotency_key: str,
        kind: Literal["capture", "void", "refund"],
        amount_minor: int | None,
        act: Callable[[UpiCollect], tuple[UpiCollect, int]],
    ) -> GatewayTransaction:
        fingerprint = _fingerprint(kind, reference, amount_minor)
        with self._store.session(idempotency_key) as session:
            replay = _replay(session, idempotency_key, kind, fingerprint)
            if replay is not None:
                assert isinstance(replay, GatewayTransaction)
                return replay
            collect = _collect(session, reference)
            changed, amount = act(collect)
            session.save(replace(changed, updated_at=self._clock()))
            result = GatewayTransaction(
                transaction_id=new_id({"capture": "cap", "void": "void", "refund": "re"}[kind]),
                reference=reference,
                kind=kind,
                amount_minor=amount,
                currency=collect.currency,
            )
            session.save_request(UpiRequest(idempotency_key, kind, fingerprint, _encode(result)))
        return result


class MemoryUpiStore:
    """The UPI sandbox's store in memory (unit tests); one lock for everything."""

    def __init__(self) -> None:
        self.collects: dict[str, UpiCollect] = {}
        self.requests: dict[str, UpiRequest] = {}

    @contextmanager
    def session(self, lock_key: str) -> Iterator[MemoryUpiStore]:
        """Changes apply as they are made (one thread at a time in unit tests)."""
        yield self

    def undelivered(self, limit: int) -> list[str]:
        """Collects whose answer is not acknowledged yet, oldest first."""
        waiting = [c for c in self.collects.values() if not c.delivered]
        return [c.reference for c in sorted(waiting, key=lambda c: c.created_at)][:limit]

    def collect(self, reference: str) -> UpiCollect | None:
        """A collect request, or None."""
        return self.collects.get(reference)

    def save(self, collect: UpiCollect) -> None:
        """Insert or update a collect request."""
        self.collects[collect.reference] = collect

    def request(self, idempotency_key: str) -> UpiRequest | None:
        """The stored result of a key, or None."""
        return self.requests.get(idempotency_key)

    def save_request(self, request: UpiRequest) -> None:
        """Remember the result of a key."""
        self.requests[request.idempotency_key] = request


def _answer(collect: UpiCollect) -> GatewayAuthorization:
    """The collect as an authorisation answer."""
    status: Literal["authorized", "declined", "requires_action"]
    if collect.status in ("requires_action", "declined"):
        status = collect.status
    elif collect.status == "voided" and collect.decline_code == "collect_withdrawn":
        status = "declined"
    else:
        status = "authorized"
    return GatewayAuthorization(
        reference=collect.reference,
        status=status,
        amount_minor=collect.amount_minor,
        currency=collect.currency,
        card_brand="upi",
        last4=collect.vpa[-4:],
        decline_code=collect.decline_code if status == "declined" else None,
        expires_at=collect.expires_at if status == "requires_action" else None,
        action_id=collect.reference if status == "requires_action" else None,
    )


def _collect(session: UpiSession, reference: str) -> UpiCollect:
    collect = session.collect(reference)
    if collect is None:
        raise ChargeNotFound(f"the UPI gateway has no collect request {reference!r}")
    return collect


def _fingerprint(operation: str, *params: object) -> str:
    return hashlib.sha256(json.dumps([operation, *params]).encode()).hexdigest()


def _replay(
    session: UpiSession, idempotency_key: str, operation: str, fingerprint: str
) -> GatewayResult | None:
    if not idempotency_key:
        raise InvalidRequest("an idempotency key is required", code="missing_idempotency_key")
    stored = session.request(idempotency_key)
    if stored is None:
        return None
    if (stored.operation, stored.fingerprint) != (operation, fingerprint):
        raise IdempotencyKeyReused(
            f"idempotency key {idempotency_key!r} was already used for a different "
            f"{stored.operation} request",
            idempotency_key=idempotency_key,
        )
    return _decode(stored.result)


def _encode(result: GatewayResult) -> dict[str, Any]:
    fields = asdict(result)
    if isinstance(result, GatewayAuthorization):
        fields["type"] = "authorization"
        fields["expires_at"] = result.expires_at.isoformat() if result.expires_at else None
    else:
        fields["type"] = "transaction"
    return fields


def _decode(fields: dict[str, Any]) -> GatewayResult:
    fields = dict(fields)
    if fields.pop("type") == "authorization":
        expires = fields.pop("expires_at")
        return GatewayAuthorization(
            **fields, expires_at=datetime.fromisoformat(expires) if expires else None
        )
    return GatewayTransaction(**fields)
