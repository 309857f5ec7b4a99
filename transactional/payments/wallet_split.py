"""The ``split`` adapter of the PaymentGateway port: the wallet pays part, a card the rest.

A split payment is two *legs*, each an idempotent call of its own gateway under a key derived
from the split's (``<key>:wallet``, ``<key>:card``): the wallet is debited first (up to the
token's ``wallet_minor``), then the card is authorised for the rest. A card that declines
releases the wallet leg, and the split is declined. The split's reference names both legs
(``split:<wallet spend>:<card charge>``), so capture, void and refund act on both, each with
its own derived key: a retry after a crash or timeout replays the legs already done and
finishes the others.

No transaction is held across a leg: before the first leg the split's parameters are recorded
under its key, so :meth:`lookup` of a split that was interrupted between its legs drives it to
a definite answer (authorised, or declined with the wallet released) instead of leaving a
wallet debit nobody owns. Refunds give back the wallet part first, then the card's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from schemas.ids import new_id
from transactional.payments.instruments import parse_instrument, wallet_token
from transactional.payments.model import (
    Card,
    GatewayAuthorization,
    GatewayRefused,
    GatewayResult,
    GatewayTransaction,
    PaymentGateway,
    UnknownInstrument,
)
from transactional.payments.wallet_gateway import (
    WalletGateway,
    decode_result,
    encode_result,
    fingerprint,
)
from transactional.payments.wallet_repository import SqlWalletUnitOfWork
from transactional.shared.errors import DomainError, InvalidRequest
from transactional.shared.failpoints import failpoint

NO_LEG = "-"


def split_reference(wallet_reference: str, card_reference: str | None) -> str:
    """The reference of a split charge: both legs'."""
    return f"split:{wallet_reference}:{card_reference or NO_LEG}"


def legs_of(reference: str) -> tuple[str, str | None]:
    """(wallet spend, card charge or None) of a split reference."""
    kind, _, rest = reference.partition(":")
    wallet, _, card = rest.partition(":")
    if kind != "split" or not wallet or not card:
        raise GatewayRefused(f"{reference!r} is not a split charge", code="charge_not_found")
    return wallet, None if card == NO_LEG else card


class SplitGateway:
    """Wallet + card payments (see the module docstring)."""

    name = "split"

    def __init__(
        self,
        wallet: WalletGateway,
        card: PaymentGateway,
        uow: Callable[[], SqlWalletUnitOfWork],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._wallet = wallet
        self._card = card
        self._uow = uow
        self._clock = clock

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        """Cards are vaulted at the card gateway."""
        return self._card.tokenize(card, owner)

    def owner_of(self, token: str) -> str | None:
        """The owner of the split's card."""
        instrument = parse_instrument(token)
        if instrument.kind != "split" or instrument.card_token is None:
            raise UnknownInstrument(f"{token!r} is not a split instrument")
        return self._card.owner_of(instrument.card_token)

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        """Debit the wallet's part, authorise the card for the rest (see the module docs)."""
        instrument = parse_instrument(token)
        if instrument.kind != "split" or instrument.card_token is None or owner is None:
            raise UnknownInstrument("no such split instrument")
        if not idempotency_key:
            raise InvalidRequest("an idempotency key is required", code="missing_idempotency_key")
        known = self._stored(idempotency_key, "authorize")
        if isinstance(known, GatewayAuthorization):
            return known
        first = self._remember_intent(idempotency_key, token, amount_minor, currency, owner)
        wallet_part = min(instrument.wallet_minor, amount_minor)
        card_part = amount_minor - wallet_part
        wallet = self._wallet.authorize(
            wallet_token(owner), wallet_part, currency, f"{idempotency_key}:wallet", owner=owner
        )
        if wallet.status != "authorized":
            return self._finish_authorization(idempotency_key, _declined(wallet, amount_minor))
        if first:  # the wallet debited, the card not asked yet (not on a recovery's re-drive)
            failpoint("wallet.split_after_wallet_leg")
        card: GatewayAuthorization | None = None
        if card_part > 0:
            try:
                card = self._card.authorize(
                    instrument.card_token,
                    card_part,
                    currency,
                    f"{idempotency_key}:card",
                    owner=owner,
                )
            except DomainError as refused:  # refused outright (an unknown card): a decline
                self._wallet.void(wallet.reference, f"{idempotency_key}:wallet:void")
                declined = replace(_declined(wallet, amount_minor), decline_code=refused.code)
                return self._finish_authorization(idempotency_key, declined)
            if card.status != "authorized":
                # Declined, or it waits on the payer (3-D Secure), which a split does not do:
                # close that request so nothing is held later, and give the wallet part back.
                if card.status == "requires_action":
                    self._cancel_action(card.reference)
                self._wallet.void(wallet.reference, f"{idempotency_key}:wallet:void")
                declined = _declined(card, amount_minor, wallet.reference)
                return self._finish_authorization(idempotency_key, declined)
        result = GatewayAuthorization(
            reference=split_reference(wallet.reference, card.reference if card else None),
            status="authorized",
            amount_minor=amount_minor,
            currency=currency,
            card_brand=card.card_brand if card else wallet.card_brand,
            last4=card.last4 if card else wallet.last4,
            expires_at=card.expires_at if card else None,
        )
        return self._finish_authorization(idempotency_key, result)

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        """Capture both legs in full (a split is captured whole)."""
        wallet_ref, card_ref = legs_of(reference)
        known = self._stored(idempotency_key, "capture")
        if isinstance(known, GatewayTransaction):
            return known
        spend = self._wallet.held(wallet_ref)
        if spend is None:
            raise GatewayRefused(f"no wallet leg {wallet_ref}", code="charge_not_found")
        wallet = self._wallet.capture(wallet_ref, None, f"{idempotency_key}:wallet")
        total = wallet.amount_minor
        if card_ref is not None:
            card_part = None if amount_minor is None else amount_minor - spend.amount_minor
            card = self._card.capture(card_ref, card_part, f"{idempotency_key}:card")
            total += card.amount_minor
        result = GatewayTransaction(new_id("stx"), reference, "capture", total, wallet.currency)
        finished = self._finish(idempotency_key, result, operation="capture")
        assert isinstance(finished, GatewayTransaction)
        return finished

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        """Release both legs."""
        wallet_ref, card_ref = legs_of(reference)
        known = self._stored(idempotency_key, "void")
        if isinstance(known, GatewayTransaction):
            return known
        total = 0
        if card_ref is not None:
            total += self._card.void(card_ref, f"{idempotency_key}:card").amount_minor
        wallet = self._wallet.void(wallet_ref, f"{idempotency_key}:wallet")
        total += wallet.amount_minor
        result = GatewayTransaction(new_id("stx"), reference, "void", total, wallet.currency)
        finished = self._finish(idempotency_key, result, operation="void")
        assert isinstance(finished, GatewayTransaction)
        return finished

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        """Give back ``amount_minor``: to the wallet first (what it paid), then to the card."""
        wallet_ref, card_ref = legs_of(reference)
        known = self._stored(idempotency_key, "refund")
        if isinstance(known, GatewayTransaction):
            return known
        wallet_key = f"{idempotency_key}:wallet"
        done = self._wallet.lookup(wallet_key)
        if isinstance(done, GatewayTransaction):
            wallet_part = done.amount_minor  # a retry: the split decided before
        else:
            spend = self._wallet.held(wallet_ref)
            wallet_part = min(amount_minor, spend.refundable_minor if spend else 0)
        currency = None
        if wallet_part > 0:
            currency = self._wallet.refund(wallet_ref, wallet_part, wallet_key).currency
        card_part = amount_minor - wallet_part
        if card_part > 0:
            if card_ref is None:
                raise GatewayRefused(
                    f"refund {amount_minor} exceeds what the wallet paid and there is no card leg",
                    code="refund_exceeds_capture",
                )
            currency = self._card.refund(card_ref, card_part, f"{idempotency_key}:card").currency
        assert currency is not None
        result = GatewayTransaction(new_id("srf"), reference, "refund", amount_minor, currency)
        finished = self._finish(idempotency_key, result, operation="refund")
        assert isinstance(finished, GatewayTransaction)
        return finished

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """The split's answer; one interrupted between its legs is driven to its end first."""
        with self._uow() as uow:
            stored = uow.wallets.request(idempotency_key)
        if stored is None:
            return None
        operation, _, data = stored
        if operation != "split_intent":
            return decode_result(data)
        # Interrupted after recording its intent: if the wallet leg never ran, nothing happened.
        if self._wallet.lookup(f"{idempotency_key}:wallet") is None:
            return None
        return self.authorize(
            data["token"],
            data["amount_minor"],
            data["currency"],
            idempotency_key,
            owner=data["owner"],
        )

    def _cancel_action(self, reference: str) -> None:
        cancel = getattr(self._card, "cancel_action", None)
        if callable(cancel):
            # Answered or expired meanwhile: nothing waits any more.
            with contextlib.suppress(DomainError):
                cancel(reference)

    # -- records ---------------------------------------------------------------------------

    def _stored(self, idempotency_key: str, operation: str) -> GatewayResult | None:
        with self._uow() as uow:
            stored = uow.wallets.request(idempotency_key)
        if stored is None or stored[0] == "split_intent":
            return None
        if stored[0] != operation:
            raise GatewayRefused(
                f"idempotency key {idempotency_key!r} was used for a {stored[0]}",
                code="idempotency_key_reused",
            )
        return decode_result(stored[2])

    def _remember_intent(
        self, idempotency_key: str, token: str, amount_minor: int, currency: str, owner: str
    ) -> bool:
        """Record the split's parameters under its key; False if they were already."""
        intent = {
            "token": token,
            "amount_minor": amount_minor,
            "currency": currency,
            "owner": owner,
        }
        with self._uow() as uow:
            recorded = uow.wallets.save_request(
                idempotency_key,
                "split_intent",
                fingerprint("split_intent", token, amount_minor, currency, owner),
                intent,
            )
            uow.commit()
        return recorded

    def _finish_authorization(
        self, idempotency_key: str, result: GatewayAuthorization
    ) -> GatewayAuthorization:
        finished = self._finish(idempotency_key, result)
        assert isinstance(finished, GatewayAuthorization)
        return finished

    def _finish(
        self, idempotency_key: str, result: GatewayResult, *, operation: str = "authorize"
    ) -> GatewayResult:
        """Store the split's answer for its key (replacing its intent); the first one wins."""
        with self._uow() as uow:
            uow.wallets.lock(idempotency_key)
            stored = uow.wallets.request(idempotency_key)
            if stored is not None and stored[0] != "split_intent":
                return decode_result(stored[2])
            uow.connection.exec_driver_sql(
                "DELETE FROM wallet_requests WHERE idempotency_key = %(key)s "
                "AND operation = 'split_intent'",
                {"key": idempotency_key},
            )
            uow.wallets.save_request(
                idempotency_key,
                operation,
                fingerprint(operation, result.reference),
                encode_result(result),
            )
            uow.commit()
        return result


def _declined(
    leg: GatewayAuthorization, amount_minor: int, wallet_reference: str | None = None
) -> GatewayAuthorization:
    code = leg.decline_code or (
        "authentication_required" if leg.status == "requires_action" else "card_declined"
    )
    return GatewayAuthorization(
        reference=split_reference(wallet_reference or leg.reference, leg.reference)
        if wallet_reference
        else split_reference(leg.reference, None),
        status="declined",
        amount_minor=amount_minor,
        currency=leg.currency,
        card_brand=leg.card_brand,
        last4=leg.last4,
        decline_code=code,
    )
