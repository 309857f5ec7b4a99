"""The checkout saga: validate → reserve → order → authorize → sell → capture → finish.

Each stage is committed (with its events, through the outbox) before the next step runs, so a
crash leaves a durable stage that :meth:`CheckoutService.recover` completes or rolls back.
Requests are idempotent per (customer, Idempotency-Key): the first final response is stored
in the same transaction as the saga's last stage and replayed for every retry.

Only the holder of a saga's lease drives it. The lease is renewed (a conditional update on the
holder) by every stage saved and right before the capture and every compensation, so a driver
that lost it stops before its next side effect; one that loses it just after a side effect
undoes that effect itself. Recovery gives a saga up (compensated, stored as failed) after
``max_recovery_attempts`` takeovers or on an error that a retry cannot fix.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from schemas.envelope import Envelope
from schemas.ids import new_id
from transactional.checkout.events import completed_event, failed_event, started_event
from transactional.checkout.model import (
    Addresses,
    Authorization,
    Card,
    Carts,
    Checkout,
    CheckoutInterrupted,
    CheckoutNotCompleted,
    CheckoutRepository,
    CheckoutRequest,
    Failure,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotencyKeys,
    IdempotencyRecord,
    InvalidCart,
    OrderCancelled,
    OrderRequest,
    Orders,
    OutOfStock,
    PaymentLookup,
    PaymentOutcomeUnknown,
    Payments,
    PaymentState,
    Plan,
    PlanLine,
    Recovery,
    ShippingAddress,
    Stage,
    Step,
    Stock,
    StoredResponse,
    UnknownInstrument,
    authorize_key,
    check_idempotency_key,
    payment_id_of,
    recovery_after_lookup,
    recovery_for,
    request_fingerprint,
)
from transactional.shared.auth import Principal
from transactional.shared.errors import (
    DomainError,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    StoreUnavailable,
)
from transactional.shared.failpoints import failpoint
from transactional.shared.regions import region_of_country
from transactional.shared.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

# Recovery takes a saga over at most this often (one lease apart) before giving it up.
MAX_RECOVERY_ATTEMPTS = 5


class CheckoutUnitOfWork(UnitOfWork, Protocol):
    """A transaction with the saga and idempotency-key repositories attached."""

    checkouts: CheckoutRepository
    idempotency: IdempotencyKeys


# Turns a finished saga (and the error that ended it, if any) into the HTTP response that
# is stored for its idempotency key; the HTTP edge provides it (dto.render).
Render = Callable[[Checkout, DomainError | None], StoredResponse]


@dataclass(frozen=True)
class CheckoutReply:
    """The response to give: the stored one, and whether it is a replay of an earlier one."""

    checkout_id: str
    response: StoredResponse
    replayed: bool = False


class _Abandon(Exception):
    """Give the saga up to recovery (outcome unknown, or a lost lease)."""


class CheckoutService:
    """The Checkout Service of the seed: a saga over carts, inventory, orders and payments."""

    def __init__(
        self,
        uow: Callable[[], CheckoutUnitOfWork],
        *,
        carts: Carts,
        addresses: Addresses,
        stock: Stock,
        orders: Orders,
        payments: Payments,
        render: Render,
        card_key: bytes,
        lease_s: float,
        idempotency_ttl_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        recovery_batch: int = 100,
        max_recovery_attempts: int = MAX_RECOVERY_ATTEMPTS,
    ) -> None:
        self._uow = uow
        self._carts = carts
        self._addresses = addresses
        self._stock = stock
        self._orders = orders
        self._payments = payments
        self._render = render
        self._card_key = card_key
        self._lease = timedelta(seconds=lease_s)
        self._ttl = timedelta(seconds=idempotency_ttl_s)
        self._clock = clock
        self._recovery_batch = recovery_batch
        self._max_attempts = max_recovery_attempts

    # -- use cases -------------------------------------------------------------------------

    def checkout(
        self, principal: Principal, request: CheckoutRequest, idempotency_key: str | None
    ) -> CheckoutReply:
        """Run the saga once per (customer, key); retries get the first response replayed."""
        key = check_idempotency_key(idempotency_key)
        fingerprint = request_fingerprint(request.canonical(self._card_key))
        now = self._clock()
        owner = _lease_owner()
        checkout = Checkout(
            checkout_id=new_id("chk"),
            customer_id=principal.customer_id,
            cart_id=request.cart_id,
            idempotency_key=key,
            region=principal.region,
            created_at=now,
            updated_at=now,
            lease_owner=owner,
            lease_until=now + self._lease,
        )
        record = IdempotencyRecord(
            customer_id=principal.customer_id,
            key=key,
            fingerprint=fingerprint,
            checkout_id=checkout.checkout_id,
            created_at=now,
            expires_at=now + self._ttl,
        )
        # The key and the saga are born together: recovery can always finish the key.
        with self._uow() as uow:
            existing = uow.idempotency.claim(record)
            if existing is None:
                uow.checkouts.add(checkout)
                uow.commit()
        if existing is not None:
            return _replay(existing, fingerprint)
        try:
            response = self._run(checkout, owner, principal, request)
        except _Abandon:
            self._hand_over(checkout, owner)
            # Recovery may have settled it meanwhile (we lost the lease): give that answer.
            settled = self._final_response(principal.customer_id, key, checkout.checkout_id)
            if settled is not None:
                return CheckoutReply(checkout.checkout_id, settled)
            raise IdempotencyKeyInUse(
                "the checkout is still being settled; retry with the same Idempotency-Key "
                "shortly to get its final answer",
                checkout_id=checkout.checkout_id,
            ) from None
        except Exception:
            self._hand_over(checkout, owner)
            raise
        return CheckoutReply(checkout.checkout_id, response)

    def get(self, checkout_id: str, customer_id: str) -> Checkout:
        """The caller's checkout; NotFound if unknown or someone else's."""
        with self._uow() as uow:
            checkout = uow.checkouts.get(checkout_id)
        if checkout is None or checkout.customer_id != customer_id:
            raise NotFound(f"no checkout {checkout_id}", code="checkout_not_found")
        return checkout

    def recover(self) -> int:
        """Complete or compensate sagas whose lease ran out; purge expired keys. Returns how
        many sagas were finished."""
        owner = _lease_owner()
        with self._uow() as uow:
            purged = uow.idempotency.purge_expired(self._clock())
            uow.commit()
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        finished = 0
        # One at a time, so each lease is fresh when its saga is driven.
        while finished < self._recovery_batch:
            now = self._clock()
            with self._uow() as uow:
                claimed = uow.checkouts.claim_stale(now, owner, now + self._lease, 1)
                uow.commit()
            if not claimed:
                break
            try:
                if self._resume(claimed[0], owner):
                    finished += 1
            except _Abandon:
                log.warning("checkout %s: not settled yet; will retry", claimed[0])
            except Exception:
                log.exception("checkout %s: recovery failed; will retry", claimed[0])
        return finished

    # -- the saga -------------------------------------------------------------------------

    def _run(
        self, checkout: Checkout, owner: str, principal: Principal, request: CheckoutRequest
    ) -> StoredResponse:
        checkout_id = checkout.checkout_id
        try:
            plan, token, last4 = self._validate(principal, request)
        except DomainError as error:
            return self._fail(checkout, owner, error, "validate", ())
        checkout.validated(plan, token, last4, self._clock())
        self._save(checkout, owner, started_event(checkout))

        try:
            allocations = self._stock.reserve(
                checkout_id,
                [(line.sku, line.quantity) for line in plan.lines],
                plan.ship_region,
            )
        except DomainError as error:
            # All or nothing: a refused reservation held nothing.
            return self._fail(checkout, owner, error, "reserve", ())
        checkout.reserved(allocations, self._clock())
        self._save(
            checkout, owner, undo=lambda: self._stock.release(checkout_id, "checkout_abandoned")
        )
        failpoint("checkout.after_reserve")

        try:
            order = self._orders.place(_order_request(checkout))
        except DomainError as error:
            return self._fail(checkout, owner, error, "order", self._undo(checkout, owner))
        checkout.ordered(order, payment_id_of(checkout_id), self._clock())
        self._save(
            checkout, owner, undo=lambda: self._orders.cancel(order.order_id, "payment_failed")
        )
        failpoint("checkout.after_order")

        try:
            self._payments.authorize(_authorization(checkout))
        except PaymentOutcomeUnknown:
            # The answer was lost: ask the processor what the call did.
            lookup = self._payments.lookup(_payment_id(checkout), authorize_key(checkout_id))
            if recovery_after_lookup(lookup) is Recovery.COMPENSATE:
                return self._fail_after_lookup(checkout, owner, lookup)
            self._record_authorization(checkout)
        except DomainError as error:
            refused, status = error, "declined"
            if not self._orders.is_payable(order.order_id):
                # Cancelled (e.g. by support) while authorizing: the payment was voided with it.
                refused, status = self._cancelled_meanwhile(order.order_id), "voided"
            return self._fail(
                checkout,
                owner,
                refused,
                "payment",
                self._undo(checkout, owner),
                payment_status=status,
            )
        checkout.authorized(self._clock())
        # Lost the lease while authorizing: whoever took over may have rolled back already.
        self._save(checkout, owner, undo=lambda: self._release_hold(_payment_id(checkout)))
        failpoint("checkout.after_authorize")
        return self._capture_and_finish(checkout, owner)

    def _record_authorization(self, checkout: Checkout) -> None:
        """The processor holds the money: repeat the call (same key, same answer) so the
        payment slice records it too."""
        try:
            self._payments.authorize(_authorization(checkout))
        except PaymentOutcomeUnknown:
            raise _Abandon(checkout.checkout_id) from None

    def _release_hold(self, payment_id: str) -> None:
        """Void an authorization nobody will capture (a no-op if it was captured meanwhile)."""
        try:
            self._payments.void(payment_id)
        except DomainError as error:  # captured by the saga's new driver: theirs to settle
            log.info("payment %s not voided: %s", payment_id, error.detail)

    def _capture_and_finish(
        self, checkout: Checkout, owner: str, *, uncertain: bool = False
    ) -> StoredResponse:
        """AUTHORIZED → sell the stock → capture → finish. ``uncertain``: in recovery, where
        the payment may have moved further than the saga recorded."""
        order_id = _order_id(checkout)
        try:
            # Sold before any money is taken: a reservation lost meanwhile (expired and swept)
            # fails here, and the shopper's hold is voided instead of charged and refunded.
            self._stock.commit(checkout.checkout_id, order_id)
        except DomainError as error:
            undone = self._undo(checkout, owner, uncertain=uncertain)
            return self._fail(checkout, owner, error, "reserve", undone)
        if not self._orders.is_payable(order_id):
            undone = self._undo(checkout, owner, uncertain=uncertain)
            cancelled = self._cancelled_meanwhile(order_id, charged_maybe=uncertain)
            return self._fail(checkout, owner, cancelled, "payment", undone)
        self._fence(checkout, owner)
        try:
            self._payments.capture(_payment_id(checkout))
        except PaymentOutcomeUnknown:
            # Capture is idempotent: recovery captures again and finishes.
            raise _Abandon(checkout.checkout_id) from None
        except DomainError as error:
            failure: DomainError = error
            if not self._orders.is_payable(order_id):
                # Cancelled between the check above and the capture: say so, not the symptom.
                failure = self._cancelled_meanwhile(order_id)
            undone = self._undo(checkout, owner, uncertain=uncertain)
            return self._fail(checkout, owner, failure, "payment", undone)
        checkout.captured(self._clock())
        self._save(checkout, owner)
        failpoint("checkout.after_capture")
        return self._finish(checkout, owner)

    @staticmethod
    def _cancelled_meanwhile(order_id: str, *, charged_maybe: bool = False) -> OrderCancelled:
        # In recovery a capture whose answer was lost may have taken the money: the cancel
        # refunded it then.
        outcome = "any payment taken was given back" if charged_maybe else "nothing was charged"
        return OrderCancelled(
            f"the order was cancelled while it was being paid for; {outcome}",
            order_id=order_id,
        )

    def _finish(self, checkout: Checkout, owner: str) -> StoredResponse:
        order_id = _order_id(checkout)
        totals, plan = checkout.totals, checkout.plan
        assert totals is not None and plan is not None
        try:
            self._orders.mark_paid(
                order_id, _payment_id(checkout), totals.grand_total_minor, "card"
            )
        except DomainError as error:
            # The order cannot take the money (cancelled meanwhile): it goes back.
            undone = self._undo(checkout, owner)
            refused = OrderCancelled(
                f"the order could not be paid ({error.detail}); the payment was refunded",
                order_id=order_id,
                cause=error.code,
            )
            return self._fail(checkout, owner, refused, "finish", undone)
        try:
            self._carts.checked_out(
                checkout.cart_id, order_id, [(line.sku, line.quantity) for line in plan.lines]
            )
        except (DomainError, StoreUnavailable) as error:
            # The order is paid: a cart that expired or cannot be reached keeps its lines.
            log.info("checkout %s: cart not emptied: %s", checkout.checkout_id, error)
        checkout.completed(self._clock())
        return self._settle(checkout, owner, None, completed_event(checkout))

    def _validate(
        self, principal: Principal, request: CheckoutRequest
    ) -> tuple[Plan, str, str | None]:
        try:
            cart = self._carts.snapshot(request.cart_id, principal)
        except NotFound:
            raise InvalidCart(
                f"cart {request.cart_id} does not exist or is not yours",
                reason="cart_not_found",
                cart_id=request.cart_id,
            ) from None
        if cart.customer_id not in (None, principal.customer_id):
            raise InvalidCart(
                f"cart {request.cart_id} is not yours",
                reason="cart_not_found",
                cart_id=request.cart_id,
            )
        if not cart.lines:
            raise InvalidCart("the cart is empty", reason="empty", cart_id=request.cart_id)
        unpriced = {
            line.sku: line.unavailable or "price_unavailable"
            for line in cart.lines
            if line.unit_price_minor is None or line.unavailable is not None
        }
        if unpriced:
            missing = sorted(sku for sku, why in unpriced.items() if why == "price_unavailable")
            raise InvalidCart(
                f"cannot buy {', '.join(sorted(unpriced))} now"
                + (f" (no price in {cart.currency})" if missing else ""),
                reason="price_missing" if missing else "unavailable",
                skus=sorted(unpriced),
                reasons=unpriced,
                currency=cart.currency,
            )
        bad = sorted(line.sku for line in cart.lines if line.quantity < 1)
        if bad:
            raise InvalidCart(
                f"invalid quantities for {', '.join(bad)}", reason="quantity", skus=bad
            )
        short = sorted(
            line.sku
            for line in cart.lines
            if line.available is not None and line.available < line.quantity
        )
        if short:
            raise OutOfStock(f"not enough stock for {', '.join(short)}", skus=short)
        shipping = self._shipping(principal.customer_id, request)
        ship_region = region_of_country(shipping.country)
        if ship_region is None:
            raise InvalidRequest(
                f"Souk does not ship to {shipping.country!r}", code="unserved_country"
            )
        lines = tuple(
            PlanLine(
                sku=line.sku,
                product_id=line.product_id,
                seller_id=line.seller_id,
                title=line.title,
                quantity=line.quantity,
                unit_price_minor=line.unit_price_minor or 0,
            )
            for line in cart.lines
        )
        plan = Plan(
            currency=cart.currency,
            lines=lines,
            subtotal_minor=sum(line.quantity * line.unit_price_minor for line in lines),
            ship_region=ship_region,
            shipping=shipping,
        )
        card = request.payment.card
        if card is None:
            token = request.payment.token
            assert token is not None
            # Before any stock is held: only the customer's own vaulted card can pay.
            if not self._payments.owns(token, principal.customer_id):
                raise UnknownInstrument(
                    "no such saved card; pay with another card or send the card details"
                )
            return plan, token, None
        if not card.holder:
            card = replace(card, holder=shipping.full_name)
        # The raw card goes to the processor's vault here and nowhere else.
        return plan, self._payments.tokenize(card, principal.customer_id), card.last4

    def _shipping(self, customer_id: str, request: CheckoutRequest) -> ShippingAddress:
        if request.address is not None:
            return request.address
        assert request.address_id is not None
        address = self._addresses.address(customer_id, request.address_id)
        if address is None:
            raise InvalidRequest(
                f"you have no saved address {request.address_id}",
                code="unknown_address",
                address_id=request.address_id,
            )
        return address

    # -- compensation and recovery ----------------------------------------------------------

    def _undo(
        self,
        checkout: Checkout,
        owner: str,
        *,
        uncertain: bool = False,
        known: PaymentState | None = None,
        left: list[Step] | None = None,
    ) -> list[Step]:
        """Compensate the steps done so far, newest first; returns the steps compensated.

        ``uncertain`` (recovery): the step after the stage may have run before a crash, and
        the payment's state is looked up rather than inferred. ``known``: the payment state
        a lookup just gave. ``left``: give-up mode, where every step is tried and the ones
        that failed are collected instead of raised.
        """
        self._fence(checkout, owner)  # only the lease holder compensates
        undone: list[Step] = []

        def attempt(step: Step, action: Callable[[], None]) -> bool:
            if left is None:
                action()
            else:
                try:
                    action()
                except Exception:
                    log.exception("checkout %s: %s not compensated", checkout.checkout_id, step)
                    left.append(step)
                    return False
            undone.append(step)
            return True

        stage = checkout.stage
        payment_failed = checkout.payment_id is not None
        state = known if known is not None else self._payment_state(checkout, uncertain)
        if state is PaymentState.CAPTURED:
            attempt("payment", lambda: self._refund(checkout))
        elif state in (PaymentState.AUTHORIZED, PaymentState.PENDING):
            attempt("payment", lambda: self._void(checkout))
        order_id = checkout.order_id
        if order_id is None and uncertain and stage is Stage.RESERVED:
            order_id = self._orders.order_of_checkout(checkout.checkout_id)
        reserved = stage not in (Stage.STARTED, Stage.VALIDATED)
        if order_id is not None:
            cancel_id = order_id
            cancelled = attempt("order", lambda: self._orders.cancel(cancel_id, "payment_failed"))
            if not cancelled and left is not None and "payment" in left:
                # The money may still be out: no unit goes back on sale before it comes back
                # (the order's pending cancel returns both, in that order).
                if reserved:
                    left.append("reserve")
                return undone
        if reserved or (uncertain and stage is Stage.VALIDATED):
            reason = "payment_failed" if payment_failed else "checkout_abandoned"
            sold = order_id if stage in (Stage.AUTHORIZED, Stage.CAPTURED) else None

            def give_back() -> None:
                self._stock.release(checkout.checkout_id, reason)
                if sold is not None:  # sold before the capture; the cancel restocks it too
                    self._stock.restock(sold, "order_cancelled")

            attempt("reserve", give_back)
        return undone

    def _payment_state(self, checkout: Checkout, uncertain: bool) -> PaymentState:
        """What there is to give back: by the stage, or asked of the processor."""
        if checkout.payment_id is None:
            return PaymentState.NONE
        if uncertain:
            return self._payments.lookup(
                checkout.payment_id, authorize_key(checkout.checkout_id)
            ).state
        if checkout.stage is Stage.CAPTURED:
            return PaymentState.CAPTURED
        if checkout.stage is Stage.AUTHORIZED:
            return PaymentState.AUTHORIZED
        return PaymentState.NONE  # declined, or settled by the caller's lookup

    def _refund(self, checkout: Checkout) -> None:
        self._payments.refund(_payment_id(checkout))
        checkout.payment_status = "refunded"

    def _void(self, checkout: Checkout) -> None:
        self._payments.void(_payment_id(checkout))
        checkout.payment_status = "voided"

    def _resume(self, checkout_id: str, owner: str) -> bool:
        """Drive a claimed saga to its end; False if there was nothing to do."""
        with self._uow() as uow:
            checkout = uow.checkouts.get(checkout_id)
        if checkout is None or checkout.status != "pending":
            return False
        if checkout.attempts > self._max_attempts:
            self._give_up(checkout_id, owner, "too_many_attempts")
            return True
        try:
            self._drive(checkout, owner)
        except DomainError as error:
            # Refused, not unavailable: trying again would get the same answer.
            log.warning("checkout %s: giving up: %s", checkout_id, error.detail)
            self._give_up(checkout_id, owner, error.code)
        return True

    def _drive(self, checkout: Checkout, owner: str) -> None:
        checkout_id = checkout.checkout_id
        action = recovery_for(checkout.stage)
        if action is Recovery.LOOKUP_PAYMENT:
            lookup = self._payments.lookup(_payment_id(checkout), authorize_key(checkout_id))
            action = recovery_after_lookup(lookup)
            if action is Recovery.COMPENSATE:
                self._fail_after_lookup(checkout, owner, lookup)
                return
            self._record_authorization(checkout)
            checkout.authorized(self._clock())
            self._save(checkout, owner)
            action = Recovery.CAPTURE  # captured already: capturing again is a no-op
        if action is Recovery.COMPENSATE:
            step = checkout.next_step
            error = CheckoutInterrupted(
                f"the checkout was interrupted at the {step} step and rolled back; nothing "
                "was charged; start again with a new Idempotency-Key"
            )
            self._fail(checkout, owner, error, step, self._undo(checkout, owner, uncertain=True))
        elif action is Recovery.CAPTURE:
            self._capture_and_finish(checkout, owner, uncertain=True)
        else:
            self._finish(checkout, owner)

    def _give_up(self, checkout_id: str, owner: str, cause: str) -> None:
        """Stop retrying: compensate what can be, settle as failed, store the final answer."""
        with self._uow() as uow:
            checkout = uow.checkouts.get(checkout_id)  # as durable, not as half-driven
        if checkout is None or checkout.status != "pending":
            return
        left: list[Step] = []
        undone = self._undo(checkout, owner, uncertain=True, left=left)
        detail = (
            "the checkout could not be completed and was rolled back; any payment taken was "
            "given back; start again with a new Idempotency-Key"
        )
        if left:
            # Needs a person: the failure (with `uncompensated`) is on the saga and logged.
            log.error(
                "checkout %s given up (%s) with %s not compensated",
                checkout_id,
                cause,
                ", ".join(left),
            )
        if "payment" in left:
            detail = (
                "the checkout could not be completed; it is being rolled back and any payment "
                "taken will be given back; start again with a new Idempotency-Key"
            )
        error = (
            CheckoutNotCompleted(detail, cause=cause, uncompensated=list(left))
            if left
            else CheckoutNotCompleted(detail, cause=cause)
        )
        self._fail(checkout, owner, error, checkout.next_step, undone)

    def _fail_after_lookup(
        self, checkout: Checkout, owner: str, lookup: PaymentLookup
    ) -> StoredResponse:
        """The processor did not take the money (declined, never saw the call, or has no
        answer yet, whose hold is then voided): roll back."""
        error: DomainError
        if lookup.state is PaymentState.DECLINED:
            code = lookup.decline_code or "card_declined"
            error = PaymentDeclined(
                f"the payment was declined ({code}); try another card",
                code=code,
                decline_code=code,
            )
        else:
            error = CheckoutInterrupted(
                "the payment processor did not confirm the payment; nothing was charged; "
                "start again with a new Idempotency-Key"
            )
        undone = self._undo(checkout, owner, known=lookup.state)
        status = {PaymentState.DECLINED: "declined", PaymentState.PENDING: "voided"}.get(
            lookup.state, "failed"
        )
        return self._fail(checkout, owner, error, "payment", undone, payment_status=status)

    # -- persistence ------------------------------------------------------------------------

    def _fail(
        self,
        checkout: Checkout,
        owner: str,
        error: DomainError,
        step: Step,
        compensated: Sequence[Step],
        *,
        payment_status: str | None = None,
    ) -> StoredResponse:
        extra = {key: value for key, value in error.extra.items() if _jsonable(value)}
        checkout.failed(
            Failure(step=step, code=error.code, detail=error.detail, extra=extra),
            compensated,
            self._clock(),
            payment_status=payment_status,
        )
        return self._settle(checkout, owner, error, failed_event(checkout, compensated))

    def _settle(
        self, checkout: Checkout, owner: str, error: DomainError | None, event: Envelope
    ) -> StoredResponse:
        """Write the final stage, its event and the key's stored response in one commit."""
        response = self._render(checkout, error)
        with self._uow() as uow:
            if not uow.checkouts.save(checkout, owner):
                raise _Abandon(checkout.checkout_id)
            uow.emit(event)
            uow.idempotency.finish(
                checkout.customer_id, checkout.idempotency_key, checkout.checkout_id, response
            )
            uow.commit()
        return response

    def _save(
        self,
        checkout: Checkout,
        owner: str,
        event: Envelope | None = None,
        *,
        undo: Callable[[], None] | None = None,
    ) -> None:
        """Write the stage (renewing the lease); on a lost lease, ``undo`` the step just
        done, which the saga's new driver may not know about, then give up."""
        checkout.lease_until = self._clock() + self._lease
        with self._uow() as uow:
            held = uow.checkouts.save(checkout, owner)
            if held:
                if event is not None:
                    uow.emit(event)
                uow.commit()
        if not held:
            if undo is not None:
                try:
                    undo()
                except Exception:
                    log.exception("checkout %s: not undone after losing it", checkout.checkout_id)
            raise _Abandon(checkout.checkout_id)

    def _fence(self, checkout: Checkout, owner: str) -> None:
        """Renew the lease before a side effect; _Abandon if someone else holds it now."""
        until = self._clock() + self._lease
        with self._uow() as uow:
            held = uow.checkouts.renew(checkout.checkout_id, owner, until)
            uow.commit()
        if not held:
            raise _Abandon(checkout.checkout_id)
        checkout.lease_until = until

    def _hand_over(self, checkout: Checkout, owner: str) -> None:
        """Something unexpected broke the saga: let recovery take it over at once."""
        try:
            with self._uow() as uow:
                uow.checkouts.hand_over(checkout.checkout_id, owner, self._clock())
                uow.commit()
        except Exception:  # the store may be what failed; the lease then runs out by itself
            log.warning("checkout %s: could not hand over to recovery", checkout.checkout_id)

    def _final_response(
        self, customer_id: str, key: str, checkout_id: str
    ) -> StoredResponse | None:
        try:
            with self._uow() as uow:
                record = uow.idempotency.get(customer_id, key)
        except Exception:  # the client can still retry with its key
            log.warning("checkout %s: could not read its stored response", checkout_id)
            return None
        if record is None or record.checkout_id != checkout_id:
            return None
        return record.response


# -- helpers ----------------------------------------------------------------------------------


def _lease_owner() -> str:
    return f"lease-{secrets.token_hex(8)}"


def _replay(existing: IdempotencyRecord, fingerprint: str) -> CheckoutReply:
    if existing.fingerprint != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body; use a new key",
            checkout_id=existing.checkout_id,
        )
    if existing.response is None:
        raise IdempotencyKeyInUse(
            "a request with this Idempotency-Key is still in progress; retry shortly",
            checkout_id=existing.checkout_id,
        )
    return CheckoutReply(existing.checkout_id, existing.response, replayed=True)


def _jsonable(value: object) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_jsonable(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


def _order_id(checkout: Checkout) -> str:
    assert checkout.order_id is not None, "no order yet"
    return checkout.order_id


def _payment_id(checkout: Checkout) -> str:
    assert checkout.payment_id is not None, "no payment yet"
    return checkout.payment_id


def _order_request(checkout: Checkout) -> OrderRequest:
    assert checkout.plan is not None
    return OrderRequest(
        checkout_id=checkout.checkout_id,
        customer_id=checkout.customer_id,
        region=checkout.region,
        plan=checkout.plan,
        allocations=checkout.allocations,
        payment_id=payment_id_of(checkout.checkout_id),
    )


def _authorization(checkout: Checkout) -> Authorization:
    assert checkout.totals is not None and checkout.instrument_token is not None
    return Authorization(
        payment_id=_payment_id(checkout),
        order_id=_order_id(checkout),
        customer_id=checkout.customer_id,
        amount_minor=checkout.totals.grand_total_minor,
        currency=checkout.totals.currency,
        instrument_token=checkout.instrument_token,
        idempotency_key=authorize_key(checkout.checkout_id),
    )


__all__ = ["Card", "CheckoutReply", "CheckoutService", "CheckoutUnitOfWork", "Render"]
