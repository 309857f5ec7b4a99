"""Wallet use cases: the balance and its entries, top-ups by card, and credits (store credit).

A top-up is idempotent per (customer, Idempotency-Key), Stripe-style: the top-up row is
committed pending before the card is charged; the card is authorised and captured under keys
derived from the top-up id (``<topup>:authorize``, ``<topup>:capture``), so a retry after a
timeout or a crash replays the gateway's answers; the wallet is then credited once, with its
entry, its ``wallet.topped_up`` event and its ``wallet_topup`` ledger booking, in one commit.
Spending is the wallet gateway's (``wallet_gateway.py``), through the payment slice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from schemas.ids import new_id
from transactional.ledger.bookings import wallet_topup
from transactional.payments import wallet_moves
from transactional.payments.model import (
    Card,
    GatewayAuthorization,
    GatewayTimeout,
    PaymentGateway,
    UnknownInstrument,
)
from transactional.payments.wallet import (
    MAX_TOPUP_MINOR,
    CreditReason,
    TopUp,
    TopUpInProgress,
    TopUpKeyReused,
    WalletBalance,
    WalletEntry,
    require_amount,
)
from transactional.payments.wallet_repository import SqlWalletUnitOfWork
from transactional.shared.errors import DomainError, InvalidRequest
from transactional.shared.regions import SUPPORTED_CURRENCIES

log = logging.getLogger(__name__)

Funding = Sequence[tuple[str, int]]


@dataclass(frozen=True)
class WalletView:
    """A customer's wallet in one currency and its latest entries."""

    balance: WalletBalance
    entries: list[WalletEntry]


class WalletService:
    """Balances, top-ups and credits of customers' wallets."""

    def __init__(
        self,
        uow: Callable[[], SqlWalletUnitOfWork],
        gateway: PaymentGateway,
        *,
        card_key: bytes,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._gateway = gateway
        self._card_key = card_key  # keys request fingerprints: no card in the clear
        self._clock = clock

    def view(self, customer_id: str, currency: str, limit: int = 20) -> WalletView:
        """The wallet's balance (zero if never used) and its latest entries."""
        _require_currency(currency)
        with self._uow() as uow:
            balance = uow.wallets.balance(customer_id, currency)
            entries = uow.wallets.entries(customer_id, currency, limit) if balance else []
        return WalletView(balance or WalletBalance(customer_id, currency, 0), entries)

    def balances(self, customer_id: str) -> list[WalletBalance]:
        """Every wallet of the customer."""
        with self._uow() as uow:
            return uow.wallets.balances(customer_id)

    def top_up(
        self,
        customer_id: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        token: str | None = None,
        card: Card | None = None,
    ) -> TopUp:
        """Charge a card (a saved ``token`` or a raw ``card``) and credit the wallet, once
        per (customer, key).

        TopUpFailed (402) if the card declines; GatewayTimeout (503) leaves it pending, and a
        retry with the same key finishes it; TopUpKeyReused (422) for the key with another
        body; UnknownInstrument (422) for a token that is not the customer's card.
        """
        require_amount(amount_minor, limit=MAX_TOPUP_MINOR)
        _require_currency(currency)
        if (token is None) == (card is None):
            raise InvalidRequest(
                "a top-up is paid by exactly one of `card` or `token`",
                code="invalid_payment_method",
            )
        print_ = self._fingerprint(amount_minor, currency, token, card)
        with self._uow() as uow:
            topup = uow.wallets.topup(customer_id, idempotency_key)
        if topup is None:
            instrument = self._instrument(customer_id, token, card)
            now = self._clock()
            fresh = TopUp(
                topup_id=new_id("wtu"),
                customer_id=customer_id,
                idempotency_key=idempotency_key,
                fingerprint=print_,
                amount_minor=amount_minor,
                currency=currency,
                instrument_token=instrument,
                gateway=self._gateway.name,
                created_at=now,
                updated_at=now,
            )
            with self._uow() as uow:
                if uow.wallets.add_topup(fresh):
                    uow.commit()  # pending before the card is charged: a crash resumes it
                topup = uow.wallets.topup(customer_id, idempotency_key)
            assert topup is not None
        if topup.fingerprint != print_:
            raise TopUpKeyReused(
                "this Idempotency-Key was already used for another top-up; use a new key",
                topup_id=topup.topup_id,
            )
        if topup.status == "failed":
            raise topup.declined()
        if topup.status == "succeeded":
            return topup
        return self._charge(topup)

    def _instrument(self, customer_id: str, token: str | None, card: Card | None) -> str:
        """The card token to charge: the customer's saved card, or the raw card vaulted."""
        if card is not None:
            return self._gateway.tokenize(card, customer_id)
        assert token is not None
        try:
            owned = ":" not in token and self._gateway.owner_of(token) == customer_id
        except DomainError:
            owned = False
        if not owned:  # only a card of the customer's own pays for a top-up
            raise UnknownInstrument("no such saved card; send the card details or another token")
        return token

    def _fingerprint(
        self, amount_minor: int, currency: str, token: str | None, card: Card | None
    ) -> str:
        """A keyed hash of the request (a raw card by its fields: never stored in the clear)."""
        material: list[object] = ["topup", amount_minor, currency, token]
        if card is not None:
            material += [card.number.replace(" ", ""), card.exp_month, card.exp_year, card.cvc]
            material.append(card.holder)
        encoded = json.dumps(material).encode()
        return hmac.new(self._card_key, encoded, hashlib.sha256).hexdigest()

    def resume_pending(self, older_than_s: float = 60.0, limit: int = 100) -> int:
        """Finish top-ups left pending (a crash, a timeout nobody retried); how many ended."""
        cutoff = self._clock() - timedelta(seconds=older_than_s)
        with self._uow() as uow:
            rows = uow.connection.exec_driver_sql(
                "SELECT customer_id, idempotency_key FROM wallet_topups "
                "WHERE status = 'pending' AND updated_at < %(cutoff)s ORDER BY updated_at "
                "LIMIT %(limit)s",
                {"cutoff": cutoff, "limit": limit},
            ).all()
        ended = 0
        for customer_id, key in rows:
            with self._uow() as uow:
                topup = uow.wallets.topup(customer_id, key)
            if topup is None or topup.status != "pending":
                continue
            try:
                self._charge(topup)
            except GatewayTimeout:
                continue
            except DomainError:
                pass  # declined: recorded as failed
            ended += 1
        return ended

    def _charge(self, topup: TopUp) -> TopUp:
        """Authorise and capture the card (replayed on a retry), then credit the wallet."""
        try:
            held = self._gateway.authorize(
                topup.instrument_token,
                topup.amount_minor,
                topup.currency,
                f"{topup.topup_id}:authorize",
                owner=topup.customer_id,
            )
        except GatewayTimeout:
            raise
        except DomainError as error:  # refused outright (an unknown card): a failed top-up
            return self._fail(topup, error.code)
        if held.status != "authorized":
            if held.status == "requires_action":
                # A top-up takes no step-up: release whatever the gateway may hold later.
                self._release(held, topup)
                return self._fail(topup, "authentication_required")
            return self._fail(topup, held.decline_code or "card_declined")
        captured = self._gateway.capture(
            held.reference, topup.amount_minor, f"{topup.topup_id}:capture"
        )
        with self._uow() as uow:
            uow.wallets.lock(topup.topup_id)
            current = uow.wallets.topup(topup.customer_id, topup.idempotency_key, for_update=True)
            assert current is not None
            if current.status == "pending":
                now = self._clock()
                wallet_moves.top_up(
                    uow,
                    current.customer_id,
                    current.currency,
                    captured.amount_minor,
                    current.topup_id,
                    now,
                    gateway=current.gateway,
                    gateway_reference=held.reference,
                )
                uow.ledger.append(
                    wallet_topup(
                        customer_id=current.customer_id,
                        amount_minor=captured.amount_minor,
                        currency=current.currency,
                        reference=current.topup_id,
                        occurred_at=now,
                        gateway=current.gateway,
                    )
                )
                current.succeeded(held.reference, now)
                uow.wallets.save_topup(current)
                uow.commit()
        return current

    def _release(self, held: GatewayAuthorization, topup: TopUp) -> None:
        cancel = getattr(self._gateway, "cancel_action", None)
        if callable(cancel):
            try:
                cancel(held.reference)
            except DomainError:
                log.info("top-up %s: no pending action to cancel", topup.topup_id)

    def _fail(self, topup: TopUp, code: str) -> TopUp:
        with self._uow() as uow:
            current = uow.wallets.topup(topup.customer_id, topup.idempotency_key, for_update=True)
            assert current is not None
            if current.status == "pending":
                current.failed(code, self._clock())
                uow.wallets.save_topup(current)
                uow.commit()
        if current.status == "failed":
            raise current.declined()
        if current.status == "pending":  # pragma: no cover - only a concurrent writer
            raise TopUpInProgress("the top-up is still being processed; retry with the same key")
        return current

    def credit(
        self,
        customer_id: str,
        amount_minor: int,
        currency: str,
        reference: str,
        *,
        reason: CreditReason,
        funding: Funding,
    ) -> WalletEntry:
        """Store credit (e.g. a return refunded to the wallet), once per ``reference``.

        The wallet is credited with its entry and ``wallet.credited`` event, and the ledger
        books ``wallet_topup`` from ``funding`` (debited accounts, e.g. the refund's source),
        in one commit. Repeating a reference returns the first entry and books nothing more.
        """
        require_amount(amount_minor)
        _require_currency(currency)
        if not reference or len(reference) > 128:
            raise InvalidRequest("a credit needs a reference (1-128 characters)", code="invalid_id")
        if sum(amount for _, amount in funding) != amount_minor:
            raise InvalidRequest(
                "the credit's funding must add up to its amount", code="unbalanced_credit"
            )
        with self._uow() as uow:
            uow.wallets.lock(f"credit|{reference}")
            now = self._clock()
            known = uow.wallets.entry("credit", reference)
            if known is not None:
                return known
            entry = wallet_moves.credit(
                uow,
                customer_id,
                currency,
                amount_minor,
                reference,
                now,
                kind="credit",
                reason=reason,
            )
            uow.ledger.append(
                wallet_topup(
                    customer_id=customer_id,
                    amount_minor=amount_minor,
                    currency=currency,
                    reference=f"credit:{reference}",
                    occurred_at=now,
                    funding=list(funding),
                )
            )
            uow.commit()
        return entry


def _require_currency(currency: str) -> None:
    if currency not in SUPPORTED_CURRENCIES:
        raise InvalidRequest(
            f"unsupported currency {currency!r}; use one of "
            f"{', '.join(sorted(SUPPORTED_CURRENCIES))}",
            code="unsupported_currency",
        )
