"""Payment use cases over the gateway port: tokenise, authorise, capture, void, refund.

Gateway calls happen outside our database transactions (never hold a transaction open across
an external call). Each call carries an idempotency key derived from the payment, so a retry
after a timeout or a crash replays the gateway's first answer instead of moving money twice;
the answer is then applied once, under the payment's row lock, with its event.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Protocol

from schemas.common import Money
from schemas.payments import (
    PaymentRefunded,
)
from schemas.registry import REGISTRY
from transactional.payments.events import authorization_event, captured_event, voided_event
from transactional.payments.model import (
    CAPTURED_STATUSES,
    PAYMENT_METHODS,
    Card,
    GatewayAuthorization,
    GatewayRefused,
    GatewayTimeout,
    GatewayTransaction,
    IllegalPaymentTransition,
    Payment,
    PaymentGateway,
    PaymentMethod,
    PaymentNotFound,
    PaymentRepository,
    PaymentVoidedMeanwhile,
    Refund,
    RefundReason,
    UnknownInstrument,
)
from transactional.payments.threeds import cancel_action, current_answer
from transactional.shared.errors import Conflict, DomainError, InvalidRequest
from transactional.shared.regions import SUPPORTED_CURRENCIES
from transactional.shared.unit_of_work import UnitOfWork


class PaymentLedger(Protocol):
    """The ledger, booking in the payment's own transaction (``transactional/ledger``)."""

    def book_capture(self, payment: Payment, amount_minor: int) -> bool:
        """Book a recorded capture (a no-op if booked already)."""

    def book_refund(self, payment: Payment, refund: Refund) -> bool:
        """Book a refund recorded on ``payment`` (a no-op if booked already)."""


class PaymentsUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the payment repository and the ledger attached."""

    payments: PaymentRepository
    ledger: PaymentLedger


class PaymentService:
    """Card payments of orders through one gateway."""

    def __init__(
        self,
        uow: Callable[[], PaymentsUnitOfWork],
        gateway: PaymentGateway,
        *,
        regions: Collection[str],
        default_region: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._gateway = gateway
        self._regions = frozenset(regions)
        self._default_region = default_region
        self._clock = clock

    @property
    def gateway(self) -> str:
        """The name of the gateway adapter payments go through (e.g. ``sandbox``)."""
        return self._gateway.name

    def wrap_gateway(self, wrap: Callable[[PaymentGateway], PaymentGateway]) -> PaymentGateway:
        """Put an adapter in front of the gateway (wiring only, e.g. UPI beside the cards);
        the new gateway."""
        self._gateway = wrap(self._gateway)
        return self._gateway

    def gateway_for(self, method: str) -> str:
        """The name of the adapter a payment of ``method`` goes through."""
        name_for = getattr(self._gateway, "name_for", None)
        return self._gateway.name if name_for is None else str(name_for(method))

    def tokenize(self, card: Card, customer_id: str | None = None) -> str:
        """Vault a card at the gateway as ``customer_id``'s; the only place a raw card goes.

        Only that customer can pay with the token. ``None`` is for callers not yet passing
        the customer: such a token becomes the first customer's that authorises with it.
        """
        if customer_id is not None:
            _require_ids(customer_id=customer_id)
        return self._gateway.tokenize(card, customer_id)

    def token_owned_by(self, token: str, customer_id: str) -> bool:
        """Whether the vault token is this customer's (unknown, unowned or another's: False)."""
        if not _is_id(token) or not _is_id(customer_id):
            return False
        try:
            return self._gateway.owner_of(token) == customer_id
        except UnknownInstrument:
            return False

    def authorize(
        self,
        payment_id: str,
        order_id: str,
        customer_id: str,
        amount_minor: int,
        currency: str,
        instrument_token: str,
        idempotency_key: str,
        *,
        method: PaymentMethod = "card",
        region: str | None = None,
    ) -> Payment:
        """Hold the amount on the instrument; PaymentDeclined (402) after recording a decline.

        Idempotent per ``payment_id``: a repeat returns the payment (or the same decline).
        GatewayTimeout leaves the payment pending; calling again resolves it. Another
        customer's token is declined like an unknown one (PaymentDeclined, code
        ``unknown_instrument``), without saying that it exists.
        """
        _require_ids(
            payment_id=payment_id,
            order_id=order_id,
            customer_id=customer_id,
            instrument_token=instrument_token,
            idempotency_key=idempotency_key,
        )
        _require_money(amount_minor, currency)
        if method not in PAYMENT_METHODS:
            raise InvalidRequest(f"unknown payment method {method!r}", code="invalid_method")
        now = self._clock()
        request = (order_id, customer_id, amount_minor, currency, instrument_token, idempotency_key)
        created = False
        with self._uow() as uow:
            payment = uow.payments.get(payment_id)
            if payment is None:
                payment = Payment(
                    payment_id=payment_id,
                    order_id=order_id,
                    customer_id=customer_id,
                    region=self._region_for(order_id, region),
                    amount_minor=amount_minor,
                    currency=currency,
                    instrument_token=instrument_token,
                    idempotency_key=idempotency_key,
                    created_at=now,
                    updated_at=now,
                    method=method,
                    gateway=self._gateway.name,
                )
                created = uow.payments.add(payment)
                if created:
                    # Committed before the gateway call: a crash leaves a pending row to resolve.
                    uow.commit()
                else:
                    existing = uow.payments.get(payment_id)
                    if existing is None:
                        raise Conflict(
                            f"idempotency key {idempotency_key!r} belongs to another payment",
                            code="idempotency_key_reused",
                        )
                    payment = existing
        if created:
            return self._authorize_pending(payment)
        if not payment.same_request(*request):
            raise Conflict(
                f"payment {payment_id} already exists with other parameters",
                code="payment_id_reused",
            )
        if payment.status == "declined":
            raise payment.declined()
        if payment.status == "pending":
            return self._authorize_pending(payment, retry=True)
        return _still_authorized(self._settled(payment))

    def hold(self, payment: Payment) -> None:
        """Ask the gateway to hold a pending payment's amount and apply its answer to
        ``payment`` in memory (authorised or declined); the caller writes it.

        For callers that record the payment in a transaction of their own (the checkout's
        hot path). GatewayTimeout: the outcome is unknown, ask :meth:`resolve` later.
        """
        try:
            result = self._gateway.authorize(
                payment.instrument_token,
                payment.amount_minor,
                payment.currency,
                payment.idempotency_key,
                owner=payment.customer_id,
            )
        except GatewayTimeout:
            raise
        except DomainError as error:
            # Refused outright (unknown instrument, key clash): a decline, as in authorize().
            payment.record_failure(error.code, self._clock())
            return
        payment.record_authorization(result, self._clock())

    def collect(self, payment: Payment) -> int:
        """Capture an authorised payment in full at the gateway and apply it to ``payment``
        in memory; the amount captured. The caller writes it (see :meth:`hold`)."""
        transaction = self._gateway.capture(
            _reference(payment), payment.amount_minor, f"{payment.payment_id}:capture"
        )
        payment.record_capture(transaction.amount_minor, self._clock())
        return transaction.amount_minor

    def capture(self, payment_id: str, amount_minor: int | None = None) -> Payment:
        """Collect the authorised amount (or part of it); a second capture is a no-op."""
        # No capture lookup first: the capture below is idempotent by the same key.
        payment = self._resolved(payment_id, captures=False)
        if payment.status in CAPTURED_STATUSES:
            return payment
        if payment.status != "authorized":
            raise IllegalPaymentTransition(
                f"cannot capture payment {payment_id}: it is {payment.status}",
                code="payment_not_capturable",
                payment_status=payment.status,
            )
        amount = payment.amount_minor if amount_minor is None else amount_minor
        if not 0 < amount <= payment.amount_minor:
            raise InvalidRequest(
                f"capture {amount} must be between 1 and the authorised {payment.amount_minor}",
                code="amount_exceeds_authorized",
            )
        transaction = self._gateway.capture(_reference(payment), amount, f"{payment_id}:capture")
        return self._record_capture(payment_id, transaction)

    def _record_capture(self, payment_id: str, transaction: GatewayTransaction) -> Payment:
        """Apply a capture the gateway made, with its event, once (under the row lock)."""
        with self._uow() as uow:
            payment = self._locked(uow, payment_id)
            if payment.status == "authorized":
                payment.record_capture(transaction.amount_minor, self._clock())
                uow.payments.save(payment)
                uow.ledger.book_capture(payment, transaction.amount_minor)
                uow.emit(captured_event(payment, transaction.amount_minor))
                uow.commit()
        return payment

    def _captured_at_gateway(self, payment: Payment) -> Payment:
        """An authorised payment, with a capture the gateway made (answer lost) recorded."""
        if payment.status != "authorized":
            return payment
        known = self._gateway.lookup(f"{payment.payment_id}:capture")
        if isinstance(known, GatewayTransaction) and known.kind == "capture":
            return self._record_capture(payment.payment_id, known)
        return payment

    def void(self, payment_id: str) -> Payment:
        """Release an uncaptured hold; a no-op if voided or declined already."""
        payment = self._resolved(payment_id)
        if payment.status in ("voided", "declined"):
            return payment
        if payment.status in CAPTURED_STATUSES:
            raise _not_voidable(payment)
        if payment.awaiting_action:
            # Waiting on the payer: close the action; an approval that came first is voided.
            closed = cancel_action(self._gateway, _reference(payment))
            if closed is not None and closed.status == "authorized":
                payment = self._record(payment_id, closed, None)
        # Pending here means the gateway never saw the authorisation: nothing to release.
        if payment.status == "authorized":
            try:
                self._gateway.void(_reference(payment), f"{payment_id}:void")
            except GatewayRefused:
                # Captured meanwhile (a capture whose answer was lost, or a racing one):
                # record it, so the caller refunds instead of leaving the money taken.
                captured = self._captured_at_gateway(payment)
                if captured.status not in CAPTURED_STATUSES:
                    raise
                raise _not_voidable(captured) from None
        with self._uow() as uow:
            payment = self._locked(uow, payment_id)
            if payment.status in ("authorized", "pending"):
                payment.record_void(self._clock())
                uow.payments.save(payment)
                uow.emit(voided_event(payment))
                uow.commit()
        return payment

    def refund(
        self,
        payment_id: str,
        amount_minor: int | None = None,
        *,
        reason: RefundReason = "cancellation",
        idempotency_key: str | None = None,
        return_id: str | None = None,
    ) -> Payment:
        """Give back captured money, all that is left when ``amount_minor`` is None.

        With None a repeat is a no-op (nothing left); a retry after a crash or timeout
        replays the same gateway refund instead of refunding twice. A caller with its own
        ``idempotency_key`` (a return's refund) gets that refund once however often it
        calls, even after other refunds; ``return_id`` names the return on the event.
        """
        with self._uow() as uow:
            payment = uow.payments.get(payment_id)
            if payment is None:
                raise PaymentNotFound(f"no payment {payment_id}")
            refunds = uow.payments.refund_count(payment_id)
        if payment.status not in CAPTURED_STATUSES:
            raise IllegalPaymentTransition(
                f"cannot refund payment {payment_id}: it is {payment.status} "
                "(only captured money can be refunded)",
                code="payment_not_refundable",
                payment_status=payment.status,
            )
        # A keyed refund the gateway made already (its answer or its recording lost) is
        # recorded, not checked again: what is left no longer includes it.
        known = self._gateway.lookup(idempotency_key) if idempotency_key else None
        if isinstance(known, GatewayTransaction) and known.kind == "refund":
            transaction = known
        else:
            if amount_minor is None:
                if payment.refundable_minor == 0:
                    return payment
                amount = payment.refundable_minor
            else:
                amount = amount_minor
            if not 0 < amount <= payment.refundable_minor:
                raise InvalidRequest(
                    f"refund {amount} must be between 1 and the {payment.refundable_minor} "
                    "captured and not yet refunded",
                    code="refund_exceeds_captured",
                )
            # Numbered by the refunds recorded: a retry reuses the key, a new refund not.
            transaction = self._gateway.refund(
                _reference(payment), amount, idempotency_key or f"{payment_id}:refund:{refunds + 1}"
            )
        with self._uow() as uow:
            payment = self._locked(uow, payment_id)
            now = self._clock()
            refund = Refund(
                refund_id=transaction.transaction_id,
                payment_id=payment_id,
                amount_minor=transaction.amount_minor,
                currency=payment.currency,
                reason=reason,
                created_at=now,
            )
            if uow.payments.add_refund(refund):
                payment.record_refund(refund.amount_minor, now)
                uow.payments.save(payment)
                uow.ledger.book_refund(payment, refund)
                uow.emit(
                    REGISTRY.new_event(
                        "payment.refunded",
                        PaymentRefunded(
                            payment_id=payment_id,
                            refund_id=refund.refund_id,
                            order_id=payment.order_id,
                            customer_id=payment.customer_id,
                            amount=_money(refund.amount_minor, payment.currency),
                            return_id=return_id,
                            reason=reason,
                            gateway_reference=payment.gateway_reference,
                        ),
                        region=payment.region,
                    )
                )
                uow.commit()
        return payment

    def find(self, payment_id: str) -> Payment | None:
        """A payment by id, or None."""
        with self._uow() as uow:
            return uow.payments.get(payment_id)

    def resolve(self, payment_id: str) -> Payment | None:
        """The payment, a pending one settled from what the gateway recorded; None if unknown.

        For callers that crashed or timed out mid-call: the gateway is asked by the payment's
        idempotency key, so its answer is applied (with its event) exactly once.
        """
        try:
            return self._resolved(payment_id)
        except PaymentNotFound:
            return None

    def _authorize_pending(self, payment: Payment, *, retry: bool = False) -> Payment:
        key = payment.idempotency_key
        try:
            # After a timeout or crash, ask first what the gateway already did.
            known = self._gateway.lookup(key) if retry else None
            if known is not None and not isinstance(known, GatewayAuthorization):
                raise Conflict(
                    f"idempotency key {key!r} names a {known.kind}, not an authorisation",
                    code="idempotency_key_reused",
                )
            result = known or self._gateway.authorize(
                payment.instrument_token,
                payment.amount_minor,
                payment.currency,
                key,
                owner=payment.customer_id,
            )
        except GatewayTimeout:
            raise
        except DomainError as error:
            # Refused outright (unknown instrument, key clash): a failed payment like a decline,
            # so the first call and every replay answer the same 402.
            recorded = self._record(payment.payment_id, None, error.code)
            raise recorded.declined() from error
        recorded = self._record(payment.payment_id, result, None)
        if recorded.status == "declined":
            raise recorded.declined()
        return _still_authorized(recorded)

    def _record(
        self, payment_id: str, result: GatewayAuthorization | None, failure: str | None
    ) -> Payment:
        if result is not None:
            # A challenged authorisation: the payer may have answered since (threeds.py).
            result = current_answer(self._gateway, result)
        with self._uow() as uow:
            payment = self._locked(uow, payment_id)
            if payment.status == "pending" and not _noted_action(payment, result):
                now = self._clock()
                if result is not None:
                    payment.record_authorization(result, now)
                else:
                    payment.record_failure(failure or "gateway_error", now)
                uow.payments.save(payment)
                uow.emit(authorization_event(payment))
                uow.commit()
        if result is not None and _late_hold(payment, result):
            return self._release_late_hold(payment, result)
        return payment

    def _release_late_hold(self, payment: Payment, result: GatewayAuthorization) -> Payment:
        """The gateway authorised after the payment was given up on: void that hold too.

        Otherwise the money stays held on the shopper's card until the hold lapses.
        """
        self._gateway.void(result.reference, f"{payment.payment_id}:void")
        with self._uow() as uow:
            payment = self._locked(uow, payment.payment_id)
            if _late_hold(payment, result):
                # A voided payment announced its void already: one payment.voided per payment.
                announced = payment.status == "voided"
                payment.record_released_hold(result, self._clock())
                uow.payments.save(payment)
                if not announced:
                    uow.emit(voided_event(payment))
                uow.commit()
        return payment

    def _resolved(self, payment_id: str, *, captures: bool = True) -> Payment:
        """The payment, with a pending authorisation (and, with ``captures``, a capture whose
        answer was lost) settled from what the gateway recorded."""
        with self._uow() as uow:
            payment = uow.payments.get(payment_id)
        if payment is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        if payment.status == "pending":
            known = self._gateway.lookup(payment.idempotency_key)
            if not isinstance(known, GatewayAuthorization):
                return payment
            payment = self._record(payment_id, known, None)
        if captures and payment.status == "authorized":
            # A capture whose answer was lost is on the gateway's record: apply it.
            return self._captured_at_gateway(payment)
        return self._settled(payment)

    def _settled(self, payment: Payment) -> Payment:
        """A payment given up on without a gateway charge: release a hold the gateway made late.

        Retries land here, so a void that failed the first time is completed.
        """
        if payment.status not in _GIVEN_UP or payment.gateway_reference is not None:
            return payment
        known = self._gateway.lookup(payment.idempotency_key)
        if isinstance(known, GatewayAuthorization) and _late_hold(payment, known):
            return self._release_late_hold(payment, known)
        return payment

    @staticmethod
    def _locked(uow: PaymentsUnitOfWork, payment_id: str) -> Payment:
        payment = uow.payments.get(payment_id, for_update=True)
        if payment is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        return payment

    def _region_for(self, order_id: str, region: str | None) -> str:
        """The given region, else the one an ``ord_<region>_…`` id names, else the default."""
        if region is not None:
            if region not in self._regions:
                raise InvalidRequest(f"unknown region {region!r}", code="unknown_region")
            return region
        parts = order_id.split("_")
        if len(parts) == 3 and parts[1] in self._regions:
            return parts[1]
        return self._default_region


_GIVEN_UP = frozenset({"voided", "declined"})


def _late_hold(payment: Payment, result: GatewayAuthorization) -> bool:
    """Whether the gateway holds money for a payment we gave up on (voided or failed)."""
    return (
        result.status == "authorized"
        and payment.status in _GIVEN_UP
        and payment.gateway_reference != result.reference
    )


def _noted_action(payment: Payment, result: GatewayAuthorization | None) -> bool:
    """Whether this answer is the payer's pending action the payment already records."""
    return (
        result is not None
        and result.status == "requires_action"
        and payment.gateway_reference == result.reference
    )


def _still_authorized(payment: Payment) -> Payment:
    """The payment, unless it was voided while being authorised (PaymentVoidedMeanwhile)."""
    if payment.status == "voided":
        raise PaymentVoidedMeanwhile(
            f"payment {payment.payment_id} was voided (its order cancelled) while it was "
            "being authorised; nothing is charged",
            payment_id=payment.payment_id,
            payment_status=payment.status,
        )
    return payment


def _not_voidable(payment: Payment) -> IllegalPaymentTransition:
    return IllegalPaymentTransition(
        f"payment {payment.payment_id} is {payment.status}: refund it instead of voiding",
        code="payment_not_voidable",
        payment_status=payment.status,
    )


def _is_id(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 128


def _reference(payment: Payment) -> str:
    if payment.gateway_reference is None:
        raise IllegalPaymentTransition(
            f"payment {payment.payment_id} has no gateway charge", payment_status=payment.status
        )
    return payment.gateway_reference


def _money(amount_minor: int, currency: str) -> Money:
    return Money(amount_minor=amount_minor, currency=currency)


def _require_money(amount_minor: int, currency: str) -> None:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise InvalidRequest(
            f"the amount must be a positive integer of minor units, got {amount_minor!r}",
            code="invalid_amount",
        )
    if currency not in SUPPORTED_CURRENCIES:
        raise InvalidRequest(
            f"unsupported currency {currency!r}; use one of "
            f"{', '.join(sorted(SUPPORTED_CURRENCIES))}",
            code="unsupported_currency",
        )


def _require_ids(**ids: str) -> None:
    for name, value in ids.items():
        if not isinstance(value, str) or not value.strip() or len(value) > 128:
            raise InvalidRequest(f"{name} must be a non-empty id", code="invalid_id")
