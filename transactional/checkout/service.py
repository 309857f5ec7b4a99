"""The checkout: turn a cart into a paid order in two commits, every guarantee kept.

The hot path, in order:

1. **Reads**, no locks, one round trip: the idempotency key, the cart's claim, offers, stock
   levels and the saved address (the cart itself comes from Redis first).
2. **Validate** the priced cart (pure) and **tokenize** the card (the vault), with no
   transaction open.
3. **The Redis gate** takes the units, with no transaction open.
4. **T1**, one commit: the key, the cart's claim, the saga at ``ordered``, the order, the
   pending payment, the conditional stock updates and reservations, and their events.
   PostgreSQL's conditional update has the last word; a refusal rolls T1 back, gives the
   units back to Redis and tries again.
5. **Authorize**, check the order is still payable and the lease still ours (one read),
   then **capture**: processor calls, never inside a transaction.
6. **T2**, one commit: the saga completed (fenced by its lease), the payment captured, the
   stock sold, the order paid, the stored response, and their events.
7. The cart's bought lines are removed, then its claim is released.

A decline is one commit too (the saga failed, the order cancelled, the stock released, the
402 stored). Anything else off this path (an unknown processor answer, a cancel racing the
payment, a lost lease, a refused capture) is handed to :class:`SagaDriver`, the step-by-step
slow path that also recovers sagas a crashed process left behind.

Requests are idempotent per (customer, Idempotency-Key), Stripe-style: the first final
response is stored with the saga's last commit and replayed for every retry. A cart is
checked out once at a time: its claim (taken in T1) turns a concurrent checkout with another
key away with 409 ``checkout_in_progress``, and a later one finds the lines bought.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from schemas.envelope import Envelope
from schemas.ids import new_id
from transactional.billing.tax import TaxRules
from transactional.carts.model import Cart
from transactional.checkout.events import failed_event, fraud_alert_event, started_event
from transactional.checkout.model import (
    Allocation,
    CartInCheckout,
    Checkout,
    CheckoutRequest,
    Failure,
    FraudSuspected,
    FraudVerdict,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotencyRecord,
    InvalidCart,
    OrderCancelled,
    OutOfStock,
    PaymentOutcomeUnknown,
    Recovery,
    Step,
    StoredResponse,
    UnknownInstrument,
    authorize_key,
    check_idempotency_key,
    checkout_id_of,
    instrument_id_of,
    recovery_after_lookup,
    request_fingerprint,
    upi_instrument,
)
from transactional.checkout.plan import (
    order_of,
    payment_of,
    placed_of,
    plan_of,
    priced,
    shipping_of,
    taxed,
)
from transactional.checkout.ports import (
    Carts,
    CheckoutUnitOfWork,
    FraudScreen,
    HotUnitOfWork,
    Orders,
    Payments,
    Stock,
)
from transactional.checkout.saga import (
    ACTION_TTL_S,
    MAX_RECOVERY_ATTEMPTS,
    REVIEW_TTL_S,
    Abandon,
    Render,
    SagaDriver,
    lease_owner,
)
from transactional.checkout.transactions import (
    complete_events,
    decline_events,
    place_events,
    queue_capture_booking,
    queue_complete,
    queue_decline,
    queue_place,
)
from transactional.inventory.model import (
    InsufficientStock,
    Pick,
    StockKey,
    StockLevel,
    StockRefused,
)
from transactional.orders.model import Order
from transactional.payments.emi import current_emi_rates
from transactional.payments.events import authorization_event, captured_event
from transactional.payments.instruments import emi_token, split_token, wallet_token
from transactional.payments.model import Payment
from transactional.payments.wallet_moves import region_of_currency
from transactional.shared.auth import Principal
from transactional.shared.deferred import Deferred
from transactional.shared.errors import DomainError, NotFound, PaymentDeclined
from transactional.shared.failpoints import failpoint

log = logging.getLogger(__name__)

CHECKOUT_ACTOR = "system:checkout"


@dataclass(frozen=True)
class CheckoutReply:
    """The response to give: the stored one, and whether it is a replay of an earlier one."""

    checkout_id: str
    response: StoredResponse
    replayed: bool = False


@dataclass
class _Placed:
    """What T1 made durable, kept in memory for T2."""

    checkout: Checkout
    order: Order
    payment: Payment


class _KeyTaken(Exception):
    """A live request with the same key committed first."""


class _CartBought(Exception):
    """Another checkout bought the cart's lines after this one read them."""

    def __init__(self, cart_id: str, order_id: str | None) -> None:
        super().__init__(cart_id)
        self.refusal = InvalidCart(
            f"cart {cart_id} was checked out meanwhile (order {order_id}); its lines are gone",
            reason="already_checked_out",
            cart_id=cart_id,
            order_id=order_id,
        )


class CheckoutService:
    """The Checkout Service of the seed: validate, reserve, order, pay, fulfil."""

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
        card_key: bytes,
        lease_s: float,
        idempotency_ttl_s: float,
        regions: Collection[str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        recovery_batch: int = 100,
        max_recovery_attempts: int = MAX_RECOVERY_ATTEMPTS,
        fraud: FraudScreen | None = None,
        review_ttl_s: float = REVIEW_TTL_S,
        tax: TaxRules | None = None,
        action_ttl_s: float = ACTION_TTL_S,
    ) -> None:
        self._uow = uow
        self._hot = hot
        self._fraud = fraud
        # Billing's tax rules (loaded once); None: lines untaxed. Public: the wiring's
        # billing block sets it (SOUK_TAX_ENABLED).
        self.tax = tax
        # Book the capture in T2 (the wiring's ledger block turns it off for a benchmark's
        # baseline only, SOUK_LEDGER_HOT_PATH: the ledger's invariants then fail).
        self.book_ledger = True
        self._carts = carts
        self._stock = stock
        self._payments = payments
        self._render = render
        self._card_key = card_key
        self._lease = timedelta(seconds=lease_s)
        self._ttl = timedelta(seconds=idempotency_ttl_s)
        self._regions = frozenset(regions)
        self._clock = clock
        self._saga = SagaDriver(
            uow,
            hot,
            carts=carts,
            stock=stock,
            orders=orders,
            payments=payments,
            render=render,
            lease_s=lease_s,
            clock=clock,
            recovery_batch=recovery_batch,
            max_recovery_attempts=max_recovery_attempts,
            review_ttl_s=review_ttl_s,
            action_ttl_s=action_ttl_s,
        )

    # -- use cases -------------------------------------------------------------------------

    def checkout(
        self, principal: Principal, request: CheckoutRequest, idempotency_key: str | None
    ) -> CheckoutReply:
        """Run the checkout once per (customer, key); retries get the first response."""
        key = check_idempotency_key(idempotency_key)
        fingerprint = request_fingerprint(request.canonical(self._card_key))
        customer_id = principal.customer_id
        try:
            cart: Cart | None = self._carts.contents(request.cart_id, principal)
        except NotFound:
            cart = None
        skus = sorted(cart.lines) if cart is not None else []
        # 1. Reads: one round trip, no locks, no transaction.
        with self._hot() as uow:
            stored = uow.keys.get(customer_id, key)
            claim = uow.claims.state(request.cart_id)
            offers = uow.catalog.offers(skus)
            levels = uow.stock.levels(skus)
            saved = (
                uow.addresses.address(customer_id, request.address_id)
                if request.address_id is not None
                else Deferred.of(None)
            )
            uow.sync()
        now = self._clock()
        existing = stored.get()
        if existing is not None and existing.expires_at > now:
            return _replay(existing, fingerprint)
        # Only the cart's owner learns that it is being checked out (others: not found).
        held = claim.get()
        if cart is not None and held is not None and held.holder is not None:
            raise _in_checkout(request.cart_id, held.holder)
        owner = lease_owner()
        checkout = Checkout(
            checkout_id=new_id("chk"),
            customer_id=customer_id,
            cart_id=request.cart_id,
            idempotency_key=key,
            region=principal.region,
            created_at=now,
            updated_at=now,
            lease_owner=owner,
            lease_until=now + self._lease,
            context=request.context,
        )
        record = IdempotencyRecord(
            customer_id=customer_id,
            key=key,
            fingerprint=fingerprint,
            checkout_id=checkout.checkout_id,
            created_at=now,
            expires_at=now + self._ttl,
        )
        # 2. Validate and tokenize, no transaction open.
        try:
            if cart is None:
                raise InvalidCart(
                    f"cart {request.cart_id} does not exist or is not yours",
                    reason="cart_not_found",
                    cart_id=request.cart_id,
                )
            plan = taxed(
                plan_of(
                    cart,
                    priced(cart, offers.get(), levels.get()),
                    shipping_of(request, saved.get()),
                ),
                self.tax,
                offers.get(),
            )
            token, last4 = self._instrument(
                principal, request, plan.shipping.full_name, plan.currency
            )
        except DomainError as error:
            return self._refused(checkout, record, fingerprint, error, "validate")
        card = request.payment.card
        # A saved card's token is its own customer's: no id shared with other customers.
        instrument_id = None if card is None else instrument_id_of(card, self._card_key)
        checkout.validated(plan, token, last4, self._clock(), instrument_id)
        # The fraud screen, before anything is held: a decline holds no stock and calls no
        # processor (one commit of the refusal and its alert); a review is held after the
        # authorization instead of captured (see SagaDriver.hold_for_review).
        checkout.fraud = self._screen(checkout, principal)
        if checkout.fraud is not None and checkout.fraud.decision == "decline":
            suspected = FraudSuspected(
                "the payment was declined (fraud_suspected); nothing was charged",
                decline_code="fraud_suspected",
            )
            return self._refused(
                checkout,
                record,
                fingerprint,
                suspected,
                "payment",
                started=True,
                events=[fraud_alert_event(checkout, checkout.fraud)],
            )
        # The last order the cart's own marker named when it was read: T1 claims the cart only
        # if no checkout bought it since (a stale read of its lines must not buy them again).
        seen = cart.last_order_id
        # 3 + 4. The Redis gate, then T1 (inventory retries both on a lost race).
        try:
            placed = self._stock.reserve_through(
                checkout.checkout_id,
                [(line.sku, line.quantity) for line in plan.lines],
                plan.ship_region,
                lambda picks, rows: self._place(checkout, record, seen, picks, rows),
                levels=levels.get(),
            )
        except InsufficientStock as short:
            refusal = OutOfStock(f"not enough stock for {', '.join(short.skus)}", skus=short.skus)
            return self._refused(checkout, record, fingerprint, refusal, "reserve", started=True)
        except _KeyTaken:
            return self._answer_of(customer_id, key, fingerprint)
        except _CartBought as bought:
            return self._refused(checkout, record, fingerprint, bought.refusal, "validate")
        failpoint("checkout.after_order")
        try:
            response = self._pay(placed, owner)
        except Abandon:
            self._saga.hand_over(placed.checkout, owner)
            # Recovery may have settled it meanwhile (we lost the lease): give that answer.
            settled = self._saga.final_response(customer_id, key, checkout.checkout_id)
            if settled is not None:
                return CheckoutReply(checkout.checkout_id, settled)
            raise IdempotencyKeyInUse(
                "the checkout is still being settled; retry with the same Idempotency-Key "
                "shortly to get its final answer",
                checkout_id=checkout.checkout_id,
            ) from None
        except Exception:
            self._saga.hand_over(placed.checkout, owner)
            raise
        return CheckoutReply(checkout.checkout_id, response)

    def review_held(self, checkout_id: str, approve: bool, actor: str) -> Checkout:
        """A reviewer's decision on a checkout held for fraud review: approve captures the
        held payment and completes the order, reject voids it and cancels the order.
        NotOnHold (409) unless it is held."""
        self._saga.review(checkout_id, approve, actor)
        checkout = self._saga.saga(checkout_id)
        assert checkout is not None
        return checkout

    def payment_settled(self, payment_id: str) -> bool:
        """The payer answered a payment's pending action (3-D Secure, UPI): its checkout goes
        on (captured and completed, or rolled back). False if none was waiting on it."""
        return self._saga.settle_action(checkout_id_of(payment_id))

    def get(self, checkout_id: str, customer_id: str) -> Checkout:
        """The caller's checkout; NotFound if unknown or someone else's."""
        checkout = self._saga.saga(checkout_id)
        if checkout is None or checkout.customer_id != customer_id:
            raise NotFound(f"no checkout {checkout_id}", code="checkout_not_found")
        return checkout

    def recover(self) -> int:
        """Complete or compensate sagas whose lease ran out, finish the cart step of ended
        ones, purge expired keys; returns how many sagas were finished."""
        return self._saga.recover()

    # -- validation ------------------------------------------------------------------------

    def _screen(self, checkout: Checkout, principal: Principal) -> FraudVerdict | None:
        """The fraud screen's verdict; None without a screen. Fails open: a scorer that
        breaks must not stop every sale (logged; the verdict says so)."""
        if self._fraud is None:
            return None
        try:
            return self._fraud.screen(checkout, principal.region)
        except Exception:
            log.exception("checkout %s: fraud screen failed; approved", checkout.checkout_id)
            return FraudVerdict("approve", 0.0, reasons=("screen_error",))

    def _instrument(
        self, principal: Principal, request: CheckoutRequest, holder: str, currency: str
    ) -> tuple[str, str | None]:
        """The vault token to charge (and the card's last four digits, for a new card)."""
        chosen = request.payment
        if chosen.wallet:  # the caller's own wallet: nobody else's can be named
            return wallet_token(principal.customer_id), None
        if chosen.wallet_minor is not None or chosen.emi is not None:
            card_only = replace(request, payment=replace(chosen, wallet_minor=None, emi=None))
            card_token, last4 = self._instrument(principal, card_only, holder, currency)
            if chosen.emi is not None:
                months, bank = chosen.emi
                # Before anything is held: the bank must offer this term where the cart pays.
                current_emi_rates().plan(region_of_currency(currency), bank, months, 1)
                return emi_token(months, bank, card_token), last4
            assert chosen.wallet_minor is not None
            return split_token(chosen.wallet_minor, card_token), last4
        if request.payment.vpa is not None:
            return upi_instrument(request.payment.vpa, currency), None
        card = request.payment.card
        if card is None:
            token = request.payment.token
            assert token is not None
            # Before any stock is held: only the customer's own vaulted card can pay.
            if not self._payments.owns(token, principal.customer_id):
                raise UnknownInstrument(
                    "no such saved card; pay with another card or send the card details"
                )
            return token, None
        if not card.holder:
            card = replace(card, holder=holder)
        # The raw card goes to the processor's vault here and nowhere else.
        return self._payments.tokenize(card, principal.customer_id), card.last4

    # -- T1 --------------------------------------------------------------------------------

    def _place(
        self,
        validated: Checkout,
        record: IdempotencyRecord,
        seen_order: str | None,
        picks: Sequence[Pick],
        levels: dict[StockKey, StockLevel],
    ) -> _Placed:
        """T1: the key, the cart's claim, the saga, the order, the payment and the stock
        holds in one commit. Raises StockRefused (PostgreSQL said no to a pick: retried),
        _KeyTaken, CartInCheckout or _CartBought (a concurrent request won: rolled back)."""
        failpoint("checkout.before_order")
        now = self._clock()
        checkout = _copy(validated)  # each attempt starts from the validated saga
        reservations = self._stock.reservations_for(checkout.checkout_id, picks, levels, now)
        allocations = [
            Allocation(r.reservation_id, r.sku, r.warehouse_id, r.quantity) for r in reservations
        ]
        checkout.reserved(allocations, now)
        order = order_of(checkout, allocations, self._regions, now)
        method = checkout.payment_method
        gateway = self._payments.gateway if method == "card" else self._payments.gateway_for(method)
        payment = payment_of(checkout, order, gateway, now)
        checkout.ordered(placed_of(order), payment.payment_id, now)
        with self._hot() as uow:
            placing = queue_place(
                uow, record, checkout, seen_order, picks, reservations, order, payment, now
            )
            uow.sync()
            if placing.key.get() is None:
                raise _KeyTaken(record.key)
            if placing.claim.get() is None:  # another checkout holds or bought it (rare)
                state = uow.claims.state(checkout.cart_id)
                uow.sync()
                won = state.get()
                if won is not None and won.holder is not None:
                    raise _in_checkout(checkout.cart_id, won.holder)
                raise _CartBought(checkout.cart_id, won.last_order_id if won else None)
            refused = placing.refused()
            if refused:
                raise StockRefused(refused)
            uow.emit(*place_events(checkout, reservations, placing.after(), order))
            if checkout.fraud is not None and checkout.fraud.review:
                uow.emit(fraud_alert_event(checkout, checkout.fraud))
            uow.commit()
        order.history.clear()
        return _Placed(checkout, order, payment)

    # -- payment and T2 --------------------------------------------------------------------

    def _pay(self, placed: _Placed, owner: str) -> StoredResponse:
        checkout, order, payment = placed.checkout, placed.order, placed.payment
        try:
            self._payments.hold(payment)
        except PaymentOutcomeUnknown:
            # The answer was lost: ask the processor what the call did, then go step by step.
            lookup = self._payments.lookup(payment.payment_id, authorize_key(checkout.checkout_id))
            recovery = recovery_after_lookup(lookup)
            if recovery is Recovery.COMPENSATE:
                return self._saga.fail_after_lookup(checkout, owner, lookup)
            if recovery is Recovery.AWAIT_ACTION:
                return self._saga.await_action(checkout, owner, lookup)
            self._saga.record_authorization(checkout)
            checkout.authorized(self._clock())
            return self._saga.capture_and_finish(checkout, owner, uncertain=True)
        authorized = authorization_event(payment)
        if payment.status == "declined":
            failpoint("checkout.after_decline")
            return self._declined(checkout, owner, order, payment, authorized)
        if payment.awaiting_action:
            failpoint("checkout.after_action_required")
            # The payer must confirm first (3-D Secure, a UPI collect): the slow path records
            # it and waits (202 requires_action).
            return self._saga.await_action(checkout, owner)
        failpoint("checkout.after_authorize")
        if checkout.fraud is not None and checkout.fraud.review:
            # Held, not captured: a person decides (the slow path records the hold).
            return self._saga.hold_for_review(checkout, owner)
        checkout.authorized(self._clock())
        if not self._still_payable(checkout, owner, order, payment):
            # Cancelled, or its stock swept, while authorizing: the slow path voids the hold
            # and says why, and nothing is charged.
            return self._saga.capture_and_finish(checkout, owner)
        try:
            captured = self._payments.collect(payment)
        except PaymentOutcomeUnknown:
            raise Abandon(checkout.checkout_id) from None  # recovery captures again
        except DomainError:  # refused, so nothing was taken: the slow path says why
            return self._saga.capture_and_finish(checkout, owner)
        failpoint("checkout.after_capture")
        return self._complete(checkout, owner, order, payment, authorized, captured)

    def _still_payable(
        self, checkout: Checkout, owner: str, order: Order, payment: Payment
    ) -> bool:
        """One round trip before the capture: the lease renewed (still ours: nobody took the
        saga over while we authorized), the order awaits its payment, nobody voided it, and
        its units are still held."""
        until = self._clock() + self._lease
        with self._hot() as uow:
            ours = uow.checkouts.renew(checkout.checkout_id, owner, until)
            payable = uow.orders.payable(order)
            status = uow.payments.status(payment.payment_id)
            held = uow.stock.held(checkout.checkout_id)
            uow.sync()
        checkout.lease_until = until
        if not ours.get():
            # Recovery took the saga over while we authorized: it may have rolled back
            # already, so the hold we just made is ours to release.
            self._saga.release_hold(payment.payment_id)
            raise Abandon(checkout.checkout_id)
        return (
            payable.get() and status.get() == "pending" and held.get() == len(checkout.allocations)
        )

    def _complete(
        self,
        checkout: Checkout,
        owner: str,
        order: Order,
        payment: Payment,
        authorized: Envelope,
        captured: int,
    ) -> StoredResponse:
        """T2: the saga completed, the payment captured, the stock sold, the order paid and
        the answer stored, in one commit; then the cart's bought lines go."""
        now = self._clock()
        plan = checkout.plan
        assert plan is not None
        durable = _copy(checkout)  # where the slow path takes over if T2 cannot commit
        order.mark_paid(payment.payment_id, captured, now, "system:payments")
        checkout.captured(now)
        checkout.completed(now)
        response = self._render(checkout, None)
        with self._hot() as uow:
            completing = queue_complete(uow, checkout, owner, order, payment, response, now)
            uow.sync()
            if not completing.saga.get():
                raise Abandon(checkout.checkout_id)  # recovery holds it now
            consistent = completing.holds(len(checkout.allocations))
            if consistent:
                uow.emit(
                    *complete_events(
                        checkout,
                        order,
                        payment,
                        authorized,
                        captured_event(payment, captured),
                        completing.sold.get(),
                    )
                )
                if self.book_ledger:
                    queue_capture_booking(uow, checkout, order, payment, captured)
                uow.commit()
            else:
                uow.rollback()
        if not consistent:
            # Moved meanwhile (a cancel, an expired hold): the slow path refunds or finishes,
            # step by step (with this connection back in the pool: it calls the processor).
            return self._saga.capture_and_finish(durable, owner, uncertain=True)
        failpoint("checkout.after_complete")
        # Paid: whatever happens to the cart now, the answer is the 201 (the sweep retries).
        self._saga.clear_cart(checkout.cart_id, checkout.checkout_id, order.order_id, plan)
        return response

    def _declined(
        self,
        checkout: Checkout,
        owner: str,
        order: Order,
        payment: Payment,
        declined: Envelope,
    ) -> StoredResponse:
        """The processor said no: the saga failed, the order cancelled, the stock back and
        the 402 stored, in one commit; nothing was charged."""
        now = self._clock()
        durable = _copy(checkout)
        code = payment.decline_code or "card_declined"
        error = PaymentDeclined(
            f"the payment was declined ({code}); try another card", code=code, decline_code=code
        )
        order.begin("cancelled", "payment_failed", CHECKOUT_ACTOR, None, now)
        settled = order.settle(now)
        compensated: list[Step] = ["order", "reserve"]
        checkout.failed(
            Failure(step="payment", code=error.code, detail=error.detail, extra=dict(error.extra)),
            compensated,
            now,
            payment_status="declined",
        )
        response = self._render(checkout, error)
        with self._hot() as uow:
            declining = queue_decline(uow, checkout, owner, order, payment, response, now)
            uow.sync()
            if not declining.saga.get():
                raise Abandon(checkout.checkout_id)
            consistent = declining.holds()
            moves = declining.released.get() if consistent else []
            if consistent:
                uow.emit(
                    *decline_events(checkout, order, settled, declined, moves, compensated, now)
                )
                uow.commit()
            else:
                uow.rollback()
        if not consistent:
            # Moved meanwhile: compensate step by step (this connection back in the pool).
            refusal: DomainError = error
            if not declining.cancelled.get():
                # Cancelled (e.g. by support) while authorizing: say so, not the symptom.
                refusal = OrderCancelled(
                    "the order was cancelled while it was being paid for; nothing was charged",
                    order_id=order.order_id,
                )
            undone = self._saga.undo(durable, owner, uncertain=True)
            return self._saga.fail(
                durable, owner, refusal, "payment", undone, payment_status="declined"
            )
        units: dict[StockKey, int] = {}
        for move in moves:
            units[move.key] = units.get(move.key, 0) + move.quantity
        self._stock.give_back(units)
        return response

    # -- early answers ---------------------------------------------------------------------

    def _refused(
        self,
        checkout: Checkout,
        record: IdempotencyRecord,
        fingerprint: str,
        error: DomainError,
        step: Step,
        *,
        started: bool = False,
        events: Sequence[Envelope] = (),
    ) -> CheckoutReply:
        """Refused before anything was held: the key, the failed saga and the stored answer
        in one commit (a concurrent request with the key may have answered first)."""
        extra = {name: value for name, value in error.extra.items() if _jsonable(value)}
        checkout.failed(
            Failure(step=step, code=error.code, detail=error.detail, extra=extra),
            (),
            self._clock(),
        )
        response = self._render(checkout, error)
        with self._hot() as uow:
            uow.begin()
            key = uow.keys.claim(record)
            uow.checkouts.add(checkout)
            uow.keys.finish(checkout.customer_id, record.key, checkout.checkout_id, response)
            uow.sync()
            claimed = key.get() is not None
            if claimed:
                first = [started_event(checkout)] if started else []
                uow.emit(*first, failed_event(checkout, ()), *events)
                uow.commit()
            else:
                uow.rollback()
        if not claimed:  # a concurrent request with the key answered first
            return self._answer_of(checkout.customer_id, record.key, fingerprint)
        return CheckoutReply(checkout.checkout_id, response)

    def _answer_of(self, customer_id: str, key: str, fingerprint: str) -> CheckoutReply:
        """The answer of the request that holds the key."""
        with self._hot() as uow:
            stored = uow.keys.get(customer_id, key)
            uow.sync()
        existing = stored.get()
        if existing is None:  # it expired in between: extremely unlikely, and retryable
            raise IdempotencyKeyInUse("the Idempotency-Key is being reused; retry shortly")
        return _replay(existing, fingerprint)


# -- helpers ----------------------------------------------------------------------------------


def _copy(checkout: Checkout) -> Checkout:
    """The saga as it is now, apart from later changes to ``checkout``."""
    return replace(checkout, history=list(checkout.history))


def _in_checkout(cart_id: str, holder: str | None) -> CartInCheckout:
    detail = f"cart {cart_id} is being checked out"
    if holder is not None:
        detail += f" by checkout {holder}"
    return CartInCheckout(
        detail + "; wait for it to finish (its lines are then bought) and look at your orders",
        cart_id=cart_id,
        **({"checkout_id": holder} if holder is not None else {}),
    )


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


__all__ = ["CheckoutReply", "CheckoutService", "Render"]
