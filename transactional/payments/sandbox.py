"""The sandbox card gateway: a card processor's test mode, for development and tests only.

It behaves like a real processor's test mode (Stripe's test cards):

============================  =========================================================
card number                   outcome of ``authorize``
============================  =========================================================
``4242424242424242``          authorised
``4000000000000002``          declined, ``card_declined``
``4000000000009995``          declined, ``insufficient_funds``
``4000000000000069``          declined, ``expired_card``
``4000002760003184``          requires action (3-D Secure): nothing held until the payer
                              confirms the challenge (:meth:`confirm_challenge`)
``4000000000000259``          the hold IS recorded, then :class:`GatewayTimeout` is raised:
                              the processor acted but its answer was lost, so a caller
                              must retry with the same key or ``lookup`` it (both return
                              the authorisation)
any other Luhn-valid number   authorised
============================  =========================================================

Every call that moves money is idempotent per idempotency key: the same key returns the
first result; the same key with other parameters raises :class:`IdempotencyKeyReused`.
Refusals (unknown charge, wrong state, too much) are not stored, like a 4xx that changed
nothing. State lives behind the :class:`SandboxLedger` port — PostgreSQL tables in
production wiring, written in the sandbox's own short transactions (never the caller's),
so it survives a crash of our process the way an external processor would.

The vault keeps the card number and expiry only encrypted (AES-GCM envelopes, see
transactional.payments.vault), as a processor's vault does; the CVC is checked, never kept.
Nothing outside the vault ever sees more than brand, last four digits and a fingerprint.
A vaulted card belongs to the customer it was tokenised for (like a processor's card attached
to a customer object): an authorisation on behalf of anyone else finds no such card.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from schemas.ids import new_id
from transactional.payments.model import (
    Card,
    ChargeNotFound,
    GatewayAuthorization,
    GatewayRefused,
    GatewayResult,
    GatewayTimeout,
    GatewayTransaction,
    IdempotencyKeyReused,
    UnknownInstrument,
    card_brand,
    card_expired,
    validated_card,
)
from transactional.shared.errors import InvalidRequest

APPROVED_CARD = "4242424242424242"
TIMEOUT_CARD = "4000000000000259"
THREE_DS_CARD = "4000002760003184"  # Stripe's "always authenticate" test card
CHALLENGE_DURATION = timedelta(days=1)  # a 3-D Secure challenge nobody answers lapses
DECLINING_CARDS: dict[str, str] = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
}
HOLD_DURATION = timedelta(days=7)  # an uncaptured authorisation lapses after this

ChargeStatus = Literal[
    "requires_action",
    "authorized",
    "declined",
    "captured",
    "partially_refunded",
    "refunded",
    "voided",
]


@dataclass(frozen=True)
class VaultEntry:
    """A tokenised card, opened: number and expiry in memory only (never in a repr).

    The store keeps them sealed by the card vault (transactional.payments.vault); only
    brand, last four and the fingerprint (filled in by the store) are stored in the clear.
    """

    token: str
    number: str = field(repr=False)
    brand: str
    last4: str
    exp_month: int = field(repr=False)
    exp_year: int = field(repr=False)
    holder: str
    created_at: datetime
    owner: str | None = None  # the customer it belongs to; None for a card vaulted anonymously
    fingerprint: str = ""  # keyed digest of the number: the same card under other tokens


@dataclass(frozen=True)
class Charge:
    """An authorisation attempt on a card and what happened to it since."""

    reference: str
    token: str
    amount_minor: int
    currency: str
    status: ChargeStatus
    created_at: datetime
    updated_at: datetime
    decline_code: str | None = None
    captured_minor: int = 0
    refunded_minor: int = 0


@dataclass(frozen=True)
class StoredRequest:
    """The first result of an idempotency key, and the fingerprint of its parameters."""

    idempotency_key: str
    operation: str
    fingerprint: str
    result: dict[str, Any]


class SandboxSession(Protocol):
    """One short transaction of the sandbox's own store."""

    def prefetch(
        self, *, key: str | None = None, token: str | None = None, reference: str | None = None
    ) -> None:
        """Read what a call will need (a key's result, a card, a charge) in one go."""

    def request(self, idempotency_key: str) -> StoredRequest | None:
        """The stored result of a key, or None."""

    def save_request(self, request: StoredRequest) -> None:
        """Remember the result of a key."""

    def vault_entry(self, token: str) -> VaultEntry | None:
        """A tokenised card, or None."""

    def save_vault_entry(self, entry: VaultEntry) -> None:
        """Vault a card."""

    def claim_vault_entry(self, token: str, owner: str) -> str | None:
        """Give an unowned card to ``owner`` (first come wins); the owner it has afterwards."""

    def charge(self, reference: str) -> Charge | None:
        """A charge, locked until the session ends, or None."""

    def save_charge(self, charge: Charge) -> None:
        """Insert or update a charge."""


class SandboxLedger(Protocol):
    """The sandbox's store: sessions commit when their block ends without error."""

    def session(self, lock_key: str) -> AbstractContextManager[SandboxSession]:
        """A transaction serialised with every other session of the same ``lock_key``."""

    def vault(self, entry: VaultEntry) -> None:
        """Store a new card (a fresh token: nothing to serialise with)."""


def _fingerprint(operation: str, *params: object) -> str:
    return hashlib.sha256(json.dumps([operation, *params]).encode()).hexdigest()


def _encode(result: GatewayResult) -> dict[str, Any]:
    fields = asdict(result)
    if isinstance(result, GatewayAuthorization):
        fields["type"] = "authorization"
        expires = result.expires_at
        fields["expires_at"] = expires.isoformat() if expires else None
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


class SandboxCardGateway:
    """The ``sandbox`` adapter of the PaymentGateway port (see the module docstring)."""

    name = "sandbox"

    def __init__(
        self,
        ledger: SandboxLedger,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        latency_s: float = 0.0,
    ) -> None:
        self._ledger = ledger
        self._clock = clock
        # A real processor is a network call away (SOUK_SANDBOX_LATENCY_MS): every call that
        # would go to it waits this long. Tokenising stands for the card form's client-side
        # tokenisation, and waits nothing.
        self._latency_s = latency_s

    def _network(self) -> None:
        if self._latency_s > 0:
            time.sleep(self._latency_s)

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        """Vault a card (for ``owner``) after the Luhn and expiry checks; returns its token."""
        now = self._clock()
        digits, exp_year = validated_card(card, now)
        entry = VaultEntry(
            token=new_id("tok"),
            number=digits,
            brand=card_brand(digits),
            last4=digits[-4:],
            exp_month=card.exp_month,
            exp_year=exp_year,
            holder=card.holder.strip(),
            created_at=now,
            owner=owner,
        )
        self._ledger.vault(entry)
        return entry.token

    def owner_of(self, token: str) -> str | None:
        """The customer a vaulted card belongs to, None if nobody; UnknownInstrument if none."""
        with self._ledger.session(token) as session:
            session.prefetch(token=token)
            entry = session.vault_entry(token)
        if entry is None:
            raise UnknownInstrument(f"no card in the vault for token {token!r}")
        return entry.owner

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        """Hold ``amount_minor`` on the card, or decline it as its test number says.

        With ``owner``, another customer's card looks unknown (no hint that it exists); a
        card vaulted without an owner becomes this owner's.
        """
        self._network()
        _check_money(amount_minor, currency)
        fingerprint = _fingerprint("authorize", token, amount_minor, currency)
        with self._ledger.session(idempotency_key) as session:
            session.prefetch(key=idempotency_key or None, token=token)
            if not idempotency_key:
                raise InvalidRequest(
                    "an idempotency key is required", code="missing_idempotency_key"
                )
            # Checked before the replay: another customer's call never learns a first answer.
            entry = session.vault_entry(token)
            if entry is None or not _usable_by(session, entry, owner):
                raise UnknownInstrument(f"no card in the vault for token {token!r}")
            replay = _replay(session, idempotency_key, "authorize", fingerprint)
            if replay is not None:
                assert isinstance(replay, GatewayAuthorization)
                return replay
            now = self._clock()
            decline = DECLINING_CARDS.get(entry.number)
            if decline is None and card_expired(entry.exp_month, entry.exp_year, now):
                decline = "expired_card"
            challenged = decline is None and entry.number == THREE_DS_CARD
            status: Literal["authorized", "declined", "requires_action"] = (
                "declined" if decline else "requires_action" if challenged else "authorized"
            )
            charge = Charge(
                reference=new_id("ch"),
                token=token,
                amount_minor=amount_minor,
                currency=currency,
                status=status,
                decline_code=decline,
                created_at=now,
                updated_at=now,
            )
            result = GatewayAuthorization(
                reference=charge.reference,
                status=status,
                amount_minor=amount_minor,
                currency=currency,
                card_brand=entry.brand,
                last4=entry.last4,
                decline_code=decline,
                expires_at=None
                if decline
                else now + (CHALLENGE_DURATION if challenged else HOLD_DURATION),
                action_id=new_id("tds") if challenged else None,
            )
            session.save_charge(charge)
            session.save_request(
                StoredRequest(idempotency_key, "authorize", fingerprint, _encode(result))
            )
        if entry.number == TIMEOUT_CARD:
            # Committed above: the processor acted, only the answer is lost.
            raise GatewayTimeout("authorize", idempotency_key)
        return result

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        """Collect a held amount, all of it when ``amount_minor`` is None."""
        self._network()
        fingerprint = _fingerprint("capture", reference, amount_minor)
        with self._ledger.session(idempotency_key) as session:
            session.prefetch(key=idempotency_key or None, reference=reference)
            replay = _replay(session, idempotency_key, "capture", fingerprint)
            if replay is not None:
                assert isinstance(replay, GatewayTransaction)
                return replay
            charge = _charge(session, reference)
            if charge.status != "authorized":
                raise GatewayRefused(
                    f"charge {reference} is {charge.status}; only a held charge can be captured",
                    code="charge_not_capturable",
                )
            amount = charge.amount_minor if amount_minor is None else amount_minor
            if not 0 < amount <= charge.amount_minor:
                raise GatewayRefused(
                    f"capture {amount} must be between 1 and the held {charge.amount_minor}",
                    code="amount_exceeds_authorization",
                )
            return self._transact(
                session,
                charge,
                idempotency_key,
                fingerprint,
                "capture",
                amount,
                status="captured",
                captured_minor=amount,
            )

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        """Release a held, uncaptured amount."""
        self._network()
        fingerprint = _fingerprint("void", reference)
        with self._ledger.session(idempotency_key) as session:
            session.prefetch(key=idempotency_key or None, reference=reference)
            replay = _replay(session, idempotency_key, "void", fingerprint)
            if replay is not None:
                assert isinstance(replay, GatewayTransaction)
                return replay
            charge = _charge(session, reference)
            if charge.status != "authorized":
                raise GatewayRefused(
                    f"charge {reference} is {charge.status}; only a held charge can be voided",
                    code="charge_not_voidable",
                )
            return self._transact(
                session,
                charge,
                idempotency_key,
                fingerprint,
                "void",
                charge.amount_minor,
                status="voided",
            )

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        """Give back captured money; all refunds together never exceed the capture."""
        self._network()
        fingerprint = _fingerprint("refund", reference, amount_minor)
        with self._ledger.session(idempotency_key) as session:
            session.prefetch(key=idempotency_key or None, reference=reference)
            replay = _replay(session, idempotency_key, "refund", fingerprint)
            if replay is not None:
                assert isinstance(replay, GatewayTransaction)
                return replay
            charge = _charge(session, reference)
            if charge.status not in ("captured", "partially_refunded"):
                raise GatewayRefused(
                    f"charge {reference} is {charge.status}; only captured money can be refunded",
                    code="charge_not_refundable",
                )
            left = charge.captured_minor - charge.refunded_minor
            if not 0 < amount_minor <= left:
                raise GatewayRefused(
                    f"refund {amount_minor} must be between 1 and the {left} left to refund",
                    code="refund_exceeds_capture",
                )
            refunded = charge.refunded_minor + amount_minor
            return self._transact(
                session,
                charge,
                idempotency_key,
                fingerprint,
                "refund",
                amount_minor,
                status="refunded" if refunded == charge.captured_minor else "partially_refunded",
                refunded_minor=refunded,
            )

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """The first result of this key, or None if no call with it was ever performed."""
        self._network()
        with self._ledger.session(idempotency_key) as session:
            session.prefetch(key=idempotency_key)
            stored = session.request(idempotency_key)
        return None if stored is None else _decode(stored.result)

    # -- 3-D Secure challenges: the issuer's page, in test mode ---------------------------

    def action_outcome(self, reference: str) -> GatewayAuthorization:
        """Where a challenged authorisation stands now: ``requires_action`` still, authorised
        (the payer confirmed) or declined (failed or cancelled); ChargeNotFound if unknown."""
        self._network()
        with self._ledger.session(reference) as session:
            session.prefetch(reference=reference)
            charge = _charge(session, reference)
            entry = session.vault_entry(charge.token)
        return _challenge_answer(charge, entry)

    def confirm_challenge(self, reference: str, approve: bool = True) -> GatewayAuthorization:
        """The payer answers the challenge: the amount is held, or declined
        (``authentication_failed``). Repeating the same answer returns it again;
        GatewayRefused if the challenge was cancelled or answered the other way."""
        with self._ledger.session(reference) as session:
            session.prefetch(reference=reference)
            charge = _charge(session, reference)
            wanted: ChargeStatus = "authorized" if approve else "declined"
            if charge.status == "requires_action":
                now = self._clock()
                charge = Charge(**{**asdict(charge), "status": wanted, "updated_at": now})
                session.save_charge(charge)
            elif _challenge_answer(charge, None).status != wanted:
                raise GatewayRefused(
                    f"charge {reference} is {charge.status}; its challenge cannot be answered",
                    code="challenge_closed",
                )
            entry = session.vault_entry(charge.token)
        return _challenge_answer(charge, entry)

    def cancel_action(self, reference: str) -> GatewayAuthorization:
        """Stop waiting for the payer: an unanswered challenge is closed (nothing was held);
        an answered one keeps its answer (an authorisation is then voided as usual)."""
        self._network()
        with self._ledger.session(reference) as session:
            session.prefetch(reference=reference)
            charge = _charge(session, reference)
            if charge.status == "requires_action":
                charge = Charge(
                    **{**asdict(charge), "status": "voided", "updated_at": self._clock()}
                )
                session.save_charge(charge)
            entry = session.vault_entry(charge.token)
        return _challenge_answer(charge, entry)

    def _transact(
        self,
        session: SandboxSession,
        charge: Charge,
        idempotency_key: str,
        fingerprint: str,
        kind: Literal["capture", "void", "refund"],
        amount_minor: int,
        *,
        status: ChargeStatus,
        captured_minor: int | None = None,
        refunded_minor: int | None = None,
    ) -> GatewayTransaction:
        now = self._clock()
        session.save_charge(
            Charge(
                reference=charge.reference,
                token=charge.token,
                amount_minor=charge.amount_minor,
                currency=charge.currency,
                status=status,
                created_at=charge.created_at,
                updated_at=now,
                decline_code=charge.decline_code,
                captured_minor=(
                    charge.captured_minor if captured_minor is None else captured_minor
                ),
                refunded_minor=(
                    charge.refunded_minor if refunded_minor is None else refunded_minor
                ),
            )
        )
        result = GatewayTransaction(
            transaction_id=new_id({"capture": "cap", "void": "void", "refund": "re"}[kind]),
            reference=charge.reference,
            kind=kind,
            amount_minor=amount_minor,
            currency=charge.currency,
        )
        session.save_request(StoredRequest(idempotency_key, kind, fingerprint, _encode(result)))
        return result


def _check_money(amount_minor: int, currency: str) -> None:
    if amount_minor <= 0:
        raise InvalidRequest(
            f"the amount must be positive minor units, got {amount_minor}", code="invalid_amount"
        )
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise InvalidRequest(
            f"currency must be an ISO-4217 code like EUR, got {currency!r}",
            code="invalid_currency",
        )


def _replay(
    session: SandboxSession, idempotency_key: str, operation: str, fingerprint: str
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


def _usable_by(session: SandboxSession, entry: VaultEntry, owner: str | None) -> bool:
    if owner is None or entry.owner == owner:
        return True
    if entry.owner is None:
        return session.claim_vault_entry(entry.token, owner) == owner
    return False


def _challenge_answer(charge: Charge, entry: VaultEntry | None) -> GatewayAuthorization:
    """A charge as an authorisation answer (for challenged ones: where the challenge is)."""
    status: Literal["authorized", "declined", "requires_action"]
    code = None
    if charge.status in ("requires_action", "declined"):
        status = charge.status
        if status == "declined":
            code = charge.decline_code or "authentication_failed"
    elif charge.status == "voided" and charge.captured_minor == 0:
        status, code = "declined", "action_cancelled"
    else:
        status = "authorized"
    return GatewayAuthorization(
        reference=charge.reference,
        status=status,
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        card_brand=entry.brand if entry is not None else "unknown",
        last4=entry.last4 if entry is not None else "",
        decline_code=code,
        expires_at=None if status == "declined" else charge.created_at + HOLD_DURATION,
    )


def _charge(session: SandboxSession, reference: str) -> Charge:
    charge = session.charge(reference)
    if charge is None:
        raise ChargeNotFound(f"the gateway has no charge {reference!r}")
    return charge
