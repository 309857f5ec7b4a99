"""The saga's slow path: compensation, recovery, and every anomaly of the hot path.

The hot path (``service.py``) places and completes a checkout in two commits. Whatever
leaves it (a lost lease, an unknown processor answer, a cancel racing the payment, a
refused capture) and every saga a crashed process left behind is driven from here, one
durable step at a time: each step is saved (fenced by the lease) before the next runs, and a
failure undoes the earlier steps through the other slices' own services.

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
from datetime import UTC, datetime, timedelta

from schemas.envelope import Envelope
from transactional.checkout.events import completed_event, failed_event
from transactional.checkout.model import (
    Authorization,
    Checkout,
    CheckoutInterrupted,
    CheckoutNotCompleted,
    Failure,
    FraudSuspected,
    NotOnHold,
    OrderCancelled,
    PaymentActionExpired,
    PaymentLookup,
    PaymentOutcomeUnknown,
    PaymentState,
    Plan,
    Recovery,
    ReviewExpired,
    Stage,
    Step,
    StoredResponse,
    authorize_key,
    recovery_after_lookup,
    recovery_for,
)
from transactional.checkout.ports import (
    Carts,
    CheckoutUnitOfWork,
    HotUnitOfWork,
    Orders,
    Payments,
    Stock,
)
from transactional.shared.errors import DomainError, PaymentDeclined, StoreUnavailable
from transactional.shared.failpoints import failpoint

log = logging.getLogger(__name__)

# Recovery takes a saga over at most this often (one lease apart) before giving it up.
MAX_RECOVERY_ATTEMPTS = 5
# How long an order held for fraud review waits for a person before recovery voids its
# authorization and cancels it (card authorizations lapse after about a week).
REVIEW_TTL_S = 3 * 24 * 3600.0
# Why a held order was put on hold (its transition's cause).
REVIEW_CAUSE = "fraud_review"
# How long a checkout waits on the payer (3-D Secure, UPI collect) before recovery voids the
# attempt and cancels the order.
ACTION_TTL_S = 15 * 60.0

# Turns a finished saga (and the error that ended it, if any) into the HTTP response that
# is stored for its idempotency key; the HTTP edge provides it (dto.render).
Render = Callable[[Checkout, DomainError | None], StoredResponse]


class Abandon(Exception):
    """Give the saga up to recovery (outcome unknown, or a lost lease)."""


class SagaDriver:
    """Drives sagas one durable step at a time (see the module docstring)."""

    def __init__(
        self,
        uow: Callable[[], CheckoutUnitOfWork],
        hot: Callable[[], HotUnitOfWork],
        *,
        carts: Carts,
        stock: Stock,
        orders: Orders,
        payments: Payments,
        render: Render,
        lease_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        recovery_batch: int = 100,
        max_recovery_attempts: int = MAX_RECOVERY_ATTEMPTS,
        review_ttl_s: float = REVIEW_TTL_S,
        action_ttl_s: float = ACTION_TTL_S,
    ) -> None:
        self._review_ttl = timedelta(seconds=review_ttl_s)
        self._action_ttl = timedelta(seconds=action_ttl_s)
        self._uow = uow
        self._hot = hot
        self._carts = carts
        self._stock = stock
        self._orders = orders
        self._payments = payments
        self._render = render
        self._lease = timedelta(seconds=lease_s)
        self._clock = clock
        self._recovery_batch = recovery_batch
        self._max_attempts = max_recovery_attempts

    def recover(self) -> int:
        """Complete or compensate sagas whose lease ran out; purge expired keys. Returns how
        many sagas were finished."""
        owner = lease_owner()
        with self._uow() as uow:
            purged = uow.idempotency.purge_expired(self._clock())
            uow.commit()
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        finished = 0
        # One at a time, so each lease is fresh when its saga is driven.
        self._sweep_claims()
        while finished < self._recovery_batch:
            now = self._clock()
            with self._uow() as uow:
                claimed = uow.checkouts.claim_stale(now, owner, now + self._lease, 1)
                uow.commit()
            if not claimed:
                break
            try:
                if self.resume(claimed[0], owner):
                    finished += 1
            except Abandon:
                log.warning("checkout %s: not settled yet; will retry", claimed[0])
            except Exception:
                log.exception("checkout %s: recovery failed; will retry", claimed[0])
        return finished

    def clear_cart(self, cart_id: str, checkout_id: str, order_id: str, plan: Plan) -> None:
        """Take the bought lines out of the cart, then free the cart for the next checkout.

        The claim outlives a cart that could not be reached: the lines are still there, and
        a second checkout must not buy them again. The claim sweep of :meth:`recover`
        retries it.
        """
        try:
            self._carts.checked_out(
                cart_id, order_id, [(line.sku, line.quantity) for line in plan.lines]
            )
            with self._hot() as hot:  # one statement, committed alone
                hot.claims.release(cart_id, checkout_id, bought=order_id)
                hot.sync()
        except (DomainError, StoreUnavailable) as error:
            log.info("checkout %s: cart not emptied yet: %s", checkout_id, error)
        except Exception:  # the purchase is complete either way: never fail its answer
            log.exception("checkout %s: cart not emptied yet", checkout_id)

    def _sweep_claims(self) -> None:
        """Finish the cart step of sagas that ended without it (a crash, Redis away)."""
        with self._uow() as uow:
            # Claimed a lease ago and ended: left by a crash between the end and the cart.
            left = uow.claims.settled(self._clock() - self._lease, self._recovery_batch)
        for cart_id, checkout_id, status in left:
            try:
                checkout = self.saga(checkout_id)
                if status == "completed" and checkout is not None and checkout.plan is not None:
                    assert checkout.order_id is not None
                    self.clear_cart(cart_id, checkout_id, checkout.order_id, checkout.plan)
                else:
                    with self._uow() as uow:
                        uow.claims.release(cart_id, checkout_id)
                        uow.commit()
            except Exception:
                log.exception("checkout %s: cart claim not settled; will retry", checkout_id)

    def saga(self, checkout_id: str) -> Checkout | None:
        """A saga as stored, or None."""
        with self._uow() as uow:
            return uow.checkouts.get(checkout_id)

    def record_authorization(self, checkout: Checkout) -> None:
        """The processor holds the money: repeat the call (same key, same answer) so the
        payment slice records it too."""
        try:
            self._payments.authorize(_authorization(checkout))
        except PaymentOutcomeUnknown:
            raise Abandon(checkout.checkout_id) from None

    def release_hold(self, payment_id: str) -> None:
        """Void an authorization nobody will capture (a no-op if it was captured meanwhile)."""
        try:
            self._payments.void(payment_id)
        except DomainError as error:  # captured by the saga's new driver: theirs to settle
            log.info("payment %s not voided: %s", payment_id, error.detail)

    def capture_and_finish(
        self, checkout: Checkout, owner: str, *, uncertain: bool = False
    ) -> StoredResponse:
        """AUTHORIZED (in memory at least) → sell the stock → capture → finish.
        ``uncertain``: the payment may have moved further than the saga recorded (recovery,
        or a hot path that left its happy path)."""
        order_id = _order_id(checkout)
        if not self._orders.is_payable(order_id):
            undone = self.undo(checkout, owner, uncertain=uncertain)
            cancelled = self._cancelled_meanwhile(order_id, charged_maybe=uncertain)
            return self.fail(checkout, owner, cancelled, "payment", undone)
        try:
            # Sold before any money is taken: a reservation lost meanwhile (expired and swept)
            # fails here, and the shopper's hold is voided instead of charged and refunded.
            self._stock.commit(checkout.checkout_id, order_id)
        except DomainError as error:
            undone = self.undo(checkout, owner, uncertain=uncertain)
            return self.fail(checkout, owner, error, "reserve", undone)
        self._fence(checkout, owner)
        try:
            self._payments.capture(_payment_id(checkout))
        except PaymentOutcomeUnknown:
            # Capture is idempotent: recovery captures again and finishes.
            raise Abandon(checkout.checkout_id) from None
        except DomainError as error:
            failure: DomainError = error
            if not self._orders.is_payable(order_id):
                # Cancelled between the check above and the capture: say so, not the symptom.
                failure = self._cancelled_meanwhile(order_id)
            undone = self.undo(checkout, owner, uncertain=uncertain)
            return self.fail(checkout, owner, failure, "payment", undone)
        checkout.captured(self._clock())
        self._save(checkout, owner)
        return self.finish(checkout, owner)

    @staticmethod
    def _cancelled_meanwhile(order_id: str, *, charged_maybe: bool = False) -> OrderCancelled:
        # In recovery a capture whose answer was lost may have taken the money: the cancel
        # refunded it then.
        outcome = "any payment taken was given back" if charged_maybe else "nothing was charged"
        return OrderCancelled(
            f"the order was cancelled while it was being paid for; {outcome}",
            order_id=order_id,
        )

    def finish(self, checkout: Checkout, owner: str) -> StoredResponse:
        """CAPTURED → the order marked paid, the saga completed, the cart's bought lines
        removed."""
        order_id = _order_id(checkout)
        totals, plan = checkout.totals, checkout.plan
        assert totals is not None and plan is not None
        try:
            self._orders.mark_paid(
                order_id, _payment_id(checkout), totals.grand_total_minor, checkout.payment_method
            )
        except DomainError as error:
            # The order cannot take the money (cancelled meanwhile): it goes back.
            undone = self.undo(checkout, owner)
            refused = OrderCancelled(
                f"the order could not be paid ({error.detail}); the payment was refunded",
                order_id=order_id,
                cause=error.code,
            )
            return self.fail(checkout, owner, refused, "finish", undone)
        checkout.completed(self._clock())
        response = self._settle(checkout, owner, None, completed_event(checkout))
        self.clear_cart(checkout.cart_id, checkout.checkout_id, order_id, plan)
        return response

    # -- fraud review ------------------------------------------------------------------------

    def hold_for_review(self, checkout: Checkout, owner: str) -> StoredResponse:
        """The processor authorized a checkout the fraud screen sent to review: record the
        authorization (the same call again, same key), then hold the order (see _hold)."""
        self.record_authorization(checkout)
        checkout.authorized(self._clock())
        self._save(checkout, owner)  # durable: recovery holds it again, never captures it
        return self._hold(checkout, owner)

    def _hold(self, checkout: Checkout, owner: str) -> StoredResponse:
        """AUTHORIZED → the stock sold to the order (a hold must outlive the reservations'
        expiry), the order on hold, the saga HELD until its review deadline with the 201
        (status ``on_hold``) stored, the cart's bought lines removed. Nothing captured."""
        order_id = _order_id(checkout)
        if not self._orders.is_payable(order_id):
            undone = self.undo(checkout, owner)
            return self.fail(
                checkout, owner, self._cancelled_meanwhile(order_id), "payment", undone
            )
        try:
            self._stock.commit(checkout.checkout_id, order_id)
        except DomainError as error:
            undone = self.undo(checkout, owner)
            return self.fail(checkout, owner, error, "reserve", undone)
        self._fence(checkout, owner)
        self._orders.hold(order_id, REVIEW_CAUSE)
        now = self._clock()
        checkout.held(now)
        # Nobody drives it until a reviewer claims it, or recovery once the deadline passed.
        checkout.lease_until = now + self._review_ttl
        response = self._render(checkout, None)
        with self._uow() as uow:
            if not uow.checkouts.save(checkout, owner):
                raise Abandon(checkout.checkout_id)
            uow.idempotency.finish(
                checkout.customer_id, checkout.idempotency_key, checkout.checkout_id, response
            )
            uow.commit()
        plan = checkout.plan
        assert plan is not None
        self.clear_cart(checkout.cart_id, checkout.checkout_id, order_id, plan)
        return response

    def review(self, checkout_id: str, approve: bool, actor: str) -> StoredResponse:
        """A reviewer's decision on a HELD saga: approve → capture and complete; reject →
        void, cancel the order (``fraud_suspected``), stock back. NotOnHold (409) else."""
        owner = lease_owner()
        now = self._clock()
        with self._uow() as uow:
            claimed = uow.checkouts.claim_held(checkout_id, owner, now + self._lease)
            uow.commit()
        checkout = self.saga(checkout_id) if claimed else None
        if checkout is None:
            raise NotOnHold(
                f"checkout {checkout_id} is not on hold for a fraud review", checkout_id=checkout_id
            )
        log.info("checkout %s: review by %s: %s", checkout_id, actor, approve)
        if approve:
            checkout.released(self._clock())
            self._save(checkout, owner)
            return self.capture_and_finish(checkout, owner)
        rejected = FraudSuspected(
            "the payment was declined (fraud_suspected) after a review; nothing was charged",
            decline_code="fraud_suspected",
        )
        undone = self.undo(checkout, owner, cancel_reason="fraud_suspected")
        return self.fail(checkout, owner, rejected, "payment", undone, payment_status="voided")

    # -- waiting on the payer (3-D Secure, UPI collect) ---------------------------------------

    def await_action(
        self, checkout: Checkout, owner: str, lookup: PaymentLookup | None = None
    ) -> StoredResponse:
        """ORDERED, the processor waits on the payer: the payment slice records it (asked by
        ``lookup``: payment.action_required), the stock is sold to the order (the wait may
        outlive the reservations) and the saga waits in ACTION_REQUIRED until the payer's
        answer or its deadline, with the 202 ``requires_action`` stored for the key. The cart
        keeps its lines (an expired attempt can be bought again)."""
        if lookup is None:
            lookup = self._payments.lookup(
                _payment_id(checkout), authorize_key(checkout.checkout_id)
            )
        action = recovery_after_lookup(lookup)
        if action is Recovery.COMPENSATE:
            return self.fail_after_lookup(checkout, owner, lookup)
        if action is not Recovery.AWAIT_ACTION:  # the payer answered already
            checkout.authorized(self._clock())
            self._save(checkout, owner)
            return self._go_on(checkout, owner)
        order_id = _order_id(checkout)
        known = PaymentState.ACTION_REQUIRED
        if not self._orders.is_payable(order_id):
            undone = self.undo(checkout, owner, known=known)
            return self.fail(
                checkout, owner, self._cancelled_meanwhile(order_id), "payment", undone
            )
        try:
            self._stock.commit(checkout.checkout_id, order_id)
        except DomainError as error:
            undone = self.undo(checkout, owner, known=known)
            return self.fail(checkout, owner, error, "reserve", undone)
        self._fence(checkout, owner)
        now = self._clock()
        checkout.action_required(now)
        # Nobody drives it until the payer's answer claims it, or recovery at the deadline.
        checkout.lease_until = now + self._action_ttl
        response = self._render(checkout, None)
        with self._uow() as uow:
            if not uow.checkouts.save(checkout, owner):
                raise Abandon(checkout.checkout_id)
            uow.idempotency.finish(
                checkout.customer_id, checkout.idempotency_key, checkout.checkout_id, response
            )
            uow.commit()
        return response

    def settle_action(self, checkout_id: str) -> bool:
        """The payer answered (a confirmed challenge, a webhook): drive the waiting saga on.
        False if it was not waiting (settled already, or not this kind of saga)."""
        owner = lease_owner()
        now = self._clock()
        with self._uow() as uow:
            claimed = uow.checkouts.claim_action(checkout_id, owner, now + self._lease)
            uow.commit()
        checkout = self.saga(checkout_id) if claimed else None
        if checkout is None:
            return False
        try:
            self._settle_action(checkout, owner)
        except Abandon:
            log.warning("checkout %s: not settled yet; recovery will", checkout_id)
        return True

    def _settle_action(self, checkout: Checkout, owner: str) -> StoredResponse | None:
        """ACTION_REQUIRED → the payer's answer, as the payment slice has it now: approved →
        capture and finish (or hold for review); declined → roll back; none yet → wait on
        until the deadline, past it → void the attempt, cancel the order, stock back."""
        lookup = self._payments.lookup(_payment_id(checkout), authorize_key(checkout.checkout_id))
        now = self._clock()
        if lookup.state in (PaymentState.AUTHORIZED, PaymentState.CAPTURED):
            checkout.action_completed(now)
            self._save(checkout, owner)
            failpoint("checkout.after_action_completed")
            return self._go_on(checkout, owner)
        deadline = checkout.action_deadline(self._action_ttl)
        waiting = lookup.state in (PaymentState.ACTION_REQUIRED, PaymentState.PENDING)
        if waiting and deadline is not None and now < deadline:
            checkout.lease_until = deadline  # back to waiting: nobody answered yet
            with self._uow() as uow:
                if not uow.checkouts.save(checkout, owner):
                    raise Abandon(checkout.checkout_id)
                uow.commit()
            return None
        # Voided: expired before (a crash after the void); collect_expired: the gateway's own.
        if (
            waiting
            or lookup.state is PaymentState.VOIDED
            or lookup.decline_code == "collect_expired"
        ):
            expired = PaymentActionExpired(
                "the payment was not confirmed in time; the order was cancelled and nothing "
                "was charged; start again with a new Idempotency-Key",
                order_id=checkout.order_id,
            )
            undone = self.undo(checkout, owner, known=lookup.state)
            failpoint("checkout.after_action_expired")
            status = "declined" if lookup.state is PaymentState.DECLINED else "voided"
            return self.fail(checkout, owner, expired, "payment", undone, payment_status=status)
        return self.fail_after_lookup(checkout, owner, lookup)

    def _go_on(self, checkout: Checkout, owner: str) -> StoredResponse:
        """AUTHORIZED after the payer approved: held for review, or captured and finished."""
        if checkout.fraud is not None and checkout.fraud.review:
            return self._hold(checkout, owner)
        return self.capture_and_finish(checkout, owner)

    # -- compensation and recovery -----------------------------------------------------------

    def undo(
        self,
        checkout: Checkout,
        owner: str,
        *,
        uncertain: bool = False,
        known: PaymentState | None = None,
        left: list[Step] | None = None,
        cancel_reason: str = "payment_failed",
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
        elif state in (
            PaymentState.AUTHORIZED,
            PaymentState.PENDING,
            PaymentState.ACTION_REQUIRED,
        ):
            attempt("payment", lambda: self._void(checkout))
        elif state in (PaymentState.REFUNDED, PaymentState.VOIDED):
            checkout.payment_status = state.value  # given back already (e.g. by a cancel)
        order_id = checkout.order_id
        if order_id is None and uncertain and stage is Stage.RESERVED:
            order_id = self._orders.order_of_checkout(checkout.checkout_id)
        reserved = stage not in (Stage.STARTED, Stage.VALIDATED)
        if order_id is not None:
            cancel_id = order_id
            cancelled = attempt("order", lambda: self._orders.cancel(cancel_id, cancel_reason))
            if not cancelled and left is not None and "payment" in left:
                # The money may still be out: no unit goes back on sale before it comes back
                # (the order's pending cancel returns both, in that order).
                if reserved:
                    left.append("reserve")
                return undone
        if reserved or (uncertain and stage is Stage.VALIDATED):
            reason = "payment_failed" if payment_failed else "checkout_abandoned"
            # Sold before the capture, or when the order went on hold for review.
            sold = (
                order_id
                if stage in (Stage.AUTHORIZED, Stage.HELD, Stage.ACTION_REQUIRED, Stage.CAPTURED)
                else None
            )

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
        if checkout.stage in (Stage.AUTHORIZED, Stage.HELD):
            return PaymentState.AUTHORIZED
        if checkout.stage is Stage.ACTION_REQUIRED:
            return PaymentState.ACTION_REQUIRED
        return PaymentState.NONE  # declined, or settled by the caller's lookup

    def _refund(self, checkout: Checkout) -> None:
        self._payments.refund(_payment_id(checkout))
        checkout.payment_status = "refunded"

    def _void(self, checkout: Checkout) -> None:
        self._payments.void(_payment_id(checkout))
        checkout.payment_status = "voided"

    def resume(self, checkout_id: str, owner: str) -> bool:
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
                self.fail_after_lookup(checkout, owner, lookup)
                return
            if action is Recovery.AWAIT_ACTION:
                self.await_action(checkout, owner, lookup)
                return
            self.record_authorization(checkout)
            checkout.authorized(self._clock())
            self._save(checkout, owner)
            action = Recovery.CAPTURE  # captured already: capturing again is a no-op
        if action is Recovery.COMPENSATE:
            step = checkout.next_step
            error = CheckoutInterrupted(
                f"the checkout was interrupted at the {step} step and rolled back; nothing "
                "was charged; start again with a new Idempotency-Key"
            )
            self.fail(checkout, owner, error, step, self.undo(checkout, owner, uncertain=True))
        elif action is Recovery.CAPTURE and checkout.fraud is not None and checkout.fraud.review:
            self._hold(checkout, owner)  # authorized, but a person decides: never captured
        elif action is Recovery.CAPTURE:
            self.capture_and_finish(checkout, owner, uncertain=True)
        elif action is Recovery.SETTLE_ACTION:
            self._settle_action(checkout, owner)
        elif action is Recovery.EXPIRE_REVIEW:
            expired = ReviewExpired(
                "nobody reviewed the order in time; its payment hold was released and the "
                "order cancelled; nothing was charged",
                order_id=checkout.order_id,
            )
            undone = self.undo(checkout, owner, cancel_reason="fraud_suspected")
            self.fail(checkout, owner, expired, "payment", undone, payment_status="voided")
        else:
            self.finish(checkout, owner)

    def _give_up(self, checkout_id: str, owner: str, cause: str) -> None:
        """Stop retrying: compensate what can be, settle as failed, store the final answer."""
        with self._uow() as uow:
            checkout = uow.checkouts.get(checkout_id)  # as durable, not as half-driven
        if checkout is None or checkout.status != "pending":
            return
        left: list[Step] = []
        undone = self.undo(checkout, owner, uncertain=True, left=left)
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
        self.fail(checkout, owner, error, checkout.next_step, undone)

    def fail_after_lookup(
        self, checkout: Checkout, owner: str, lookup: PaymentLookup
    ) -> StoredResponse:
        """The processor holds no money for the saga (declined, never saw the call, no answer
        yet, whose hold is then voided, or given back by a cancel already): roll back."""
        error: DomainError
        order_id = checkout.order_id
        if lookup.state is PaymentState.DECLINED:
            code = lookup.decline_code or "card_declined"
            error = PaymentDeclined(
                f"the payment was declined ({code}); try another card",
                code=code,
                decline_code=code,
            )
        elif order_id is not None and not self._orders.is_payable(order_id):
            # Cancelled (by support) while being paid for: say so, not the symptom.
            given_back = lookup.state in (PaymentState.CAPTURED, PaymentState.REFUNDED)
            error = self._cancelled_meanwhile(order_id, charged_maybe=given_back)
        else:
            error = CheckoutInterrupted(
                "the payment processor did not confirm the payment; nothing was charged; "
                "start again with a new Idempotency-Key"
            )
        undone = self.undo(checkout, owner, known=lookup.state)
        status = {
            PaymentState.DECLINED: "declined",
            PaymentState.PENDING: "voided",
            PaymentState.ACTION_REQUIRED: "voided",
            PaymentState.VOIDED: "voided",
            PaymentState.REFUNDED: "refunded",
        }.get(lookup.state, "failed")
        return self.fail(checkout, owner, error, "payment", undone, payment_status=status)

    # -- persistence ------------------------------------------------------------------------

    def fail(
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
                raise Abandon(checkout.checkout_id)
            uow.emit(event)
            uow.idempotency.finish(
                checkout.customer_id, checkout.idempotency_key, checkout.checkout_id, response
            )
            if checkout.status == "failed":  # the cart keeps its lines: free to buy again
                uow.claims.release(checkout.cart_id, checkout.checkout_id)
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
            raise Abandon(checkout.checkout_id)

    def _fence(self, checkout: Checkout, owner: str) -> None:
        """Renew the lease before a side effect; Abandon if someone else holds it now."""
        until = self._clock() + self._lease
        with self._uow() as uow:
            held = uow.checkouts.renew(checkout.checkout_id, owner, until)
            uow.commit()
        if not held:
            raise Abandon(checkout.checkout_id)
        checkout.lease_until = until

    def hand_over(self, checkout: Checkout, owner: str) -> None:
        """Something unexpected broke the saga: let recovery take it over at once."""
        try:
            with self._uow() as uow:
                uow.checkouts.hand_over(checkout.checkout_id, owner, self._clock())
                uow.commit()
        except Exception:  # the store may be what failed; the lease then runs out by itself
            log.warning("checkout %s: could not hand over to recovery", checkout.checkout_id)

    def final_response(self, customer_id: str, key: str, checkout_id: str) -> StoredResponse | None:
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


def lease_owner() -> str:
    """A fresh lease-holder name for one driver."""
    return f"lease-{secrets.token_hex(8)}"


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


__all__ = ["Abandon", "Render", "SagaDriver", "lease_owner"]
