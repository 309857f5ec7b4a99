"""The ``wallet`` adapter of the PaymentGateway port: a payment paid from a customer's wallet.

Behaves like a processor over our own tables: authorising debits the wallet (a *spend*, held
until captured or voided), capturing makes it final, voiding releases it, refunding credits
it back. Each call is idempotent per idempotency key (the first answer is stored and
replayed; the same key with other parameters is :class:`IdempotencyKeyReused`), and each
runs in one short transaction of its own, serialised per key, that writes the spend, the
wallet entry and its event together. A balance that cannot cover a spend is a decline
(``insufficient_funds``), stored like a card decline.

Ledger: holds move no ledger money (like a card authorisation); the order's capture booking
debits ``wallet_liability`` for the wallet part and its refunds credit it back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

from schemas.ids import new_id
from transactional.payments import wallet_moves
from transactional.payments.instruments import parse_instrument
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
from transactional.payments.wallet import WalletSpend
from transactional.payments.wallet_repository import SqlWalletUnitOfWork
from transactional.shared.errors import Conflict, InvalidRequest
from transactional.shared.failpoints import failpoint

WALLET_BRAND = "wallet"
INSUFFICIENT = "insufficient_funds"


def fingerprint(operation: str, *params: object) -> str:
    """A stable hash of an operation and its parameters (idempotency key reuse checks)."""
    return hashlib.sha256(json.dumps([operation, *params]).encode()).hexdigest()


def encode_result(result: GatewayResult) -> dict[str, Any]:
    """A gateway result as JSON-ready fields."""
    data = asdict(result)
    data["type"] = "authorization" if isinstance(result, GatewayAuthorization) else "transaction"
    for name, value in data.items():
        if isinstance(value, datetime):
            data[name] = value.isoformat()
    return data


def decode_result(data: dict[str, Any]) -> GatewayResult:
    """The gateway result stored by :func:`encode_result`."""
    data = dict(data)
    if data.pop("type") == "authorization":
        known = {f.name for f in fields(GatewayAuthorization)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("expires_at"):
            values["expires_at"] = datetime.fromisoformat(values["expires_at"])
        return GatewayAuthorization(**values)
    return GatewayTransaction(**data)


class WalletGateway:
    """Payments from wallets (see the module docstring)."""

    name = "wallet"

    def __init__(
        self,
        uow: Callable[[], SqlWalletUnitOfWork],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._uow = uow
        self._clock = clock

    def tokenize(self, card: Card, owner: str | None = None) -> str:
        """Wallets hold no cards."""
        raise InvalidRequest("a wallet takes no card; pay with `type: wallet`", code="not_a_card")

    def owner_of(self, token: str) -> str | None:
        """The wallet's customer."""
        instrument = parse_instrument(token)
        if instrument.kind != "wallet":
            raise UnknownInstrument(f"{token!r} is not a wallet")
        return instrument.customer_id

    def authorize(
        self,
        token: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        owner: str | None = None,
    ) -> GatewayAuthorization:
        """Debit the wallet (held until captured or voided), or decline if it cannot cover it."""
        customer_id = self.owner_of(token)
        if (owner is not None and owner != customer_id) or customer_id is None:
            raise UnknownInstrument("no such wallet")
        _require_key(idempotency_key)
        print_ = fingerprint("authorize", token, amount_minor, currency)
        with self._uow() as uow:
            uow.wallets.lock(idempotency_key)
            replay = _replay(uow, idempotency_key, "authorize", print_)
            if replay is not None:
                assert isinstance(replay, GatewayAuthorization)
                return replay
            now = self._clock()
            reference = new_id("wsp")
            entry = wallet_moves.debit(uow, customer_id, currency, amount_minor, reference, now)
            if entry is not None:
                uow.wallets.add_spend(
                    WalletSpend(reference, customer_id, currency, amount_minor, now, now)
                )
            result = GatewayAuthorization(
                reference=reference,
                status="authorized" if entry is not None else "declined",
                amount_minor=amount_minor,
                currency=currency,
                card_brand=WALLET_BRAND,
                last4="",
                decline_code=None if entry is not None else INSUFFICIENT,
            )
            uow.wallets.save_request(idempotency_key, "authorize", print_, encode_result(result))
            uow.commit()
        failpoint("wallet.after_debit")  # debited, the caller not told yet
        return result

    def capture(
        self, reference: str, amount_minor: int | None, idempotency_key: str
    ) -> GatewayTransaction:
        """Make a held spend final (a partial capture releases the rest)."""
        print_ = fingerprint("capture", reference, amount_minor)

        def act(uow: SqlWalletUnitOfWork, spend: WalletSpend, now: datetime) -> int:
            amount = spend.amount_minor if amount_minor is None else amount_minor
            spend.capture(amount, now)
            if amount < spend.amount_minor:
                wallet_moves.credit(
                    uow,
                    spend.customer_id,
                    spend.currency,
                    spend.amount_minor - amount,
                    reference,
                    now,
                    kind="release",
                    reason="release",
                )
            return amount

        return self._transact(reference, idempotency_key, "capture", print_, act)

    def void(self, reference: str, idempotency_key: str) -> GatewayTransaction:
        """Release a held spend: the money goes back into the wallet."""
        print_ = fingerprint("void", reference)

        def act(uow: SqlWalletUnitOfWork, spend: WalletSpend, now: datetime) -> int:
            spend.void(now)
            wallet_moves.credit(
                uow,
                spend.customer_id,
                spend.currency,
                spend.amount_minor,
                reference,
                now,
                kind="release",
                reason="release",
            )
            return spend.amount_minor

        return self._transact(reference, idempotency_key, "void", print_, act)

    def refund(self, reference: str, amount_minor: int, idempotency_key: str) -> GatewayTransaction:
        """Credit captured money back into the wallet (never more than was captured)."""
        print_ = fingerprint("refund", reference, amount_minor)
        transaction_id = new_id("wtx")

        def act(uow: SqlWalletUnitOfWork, spend: WalletSpend, now: datetime) -> int:
            spend.refund(amount_minor, now)
            wallet_moves.credit(
                uow,
                spend.customer_id,
                spend.currency,
                amount_minor,
                transaction_id,
                now,
                kind="refund",
                reason="refund",
            )
            return amount_minor

        return self._transact(
            reference, idempotency_key, "refund", print_, act, transaction_id=transaction_id
        )

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """What the call with this key did, or None if it never happened."""
        with self._uow() as uow:
            stored = uow.wallets.request(idempotency_key)
        return None if stored is None else decode_result(stored[2])

    def held(self, reference: str) -> WalletSpend | None:
        """A spend as it stands (for the split gateway), or None."""
        with self._uow() as uow:
            return uow.wallets.spend(reference)

    def _transact(
        self,
        reference: str,
        idempotency_key: str,
        operation: str,
        print_: str,
        act: Callable[[SqlWalletUnitOfWork, WalletSpend, datetime], int],
        *,
        transaction_id: str | None = None,
    ) -> GatewayTransaction:
        _require_key(idempotency_key)
        with self._uow() as uow:
            uow.wallets.lock(idempotency_key)
            replay = _replay(uow, idempotency_key, operation, print_)
            if replay is not None:
                assert isinstance(replay, GatewayTransaction)
                return replay
            spend = uow.wallets.spend(reference, for_update=True)
            if spend is None:
                raise ChargeNotFound(f"no wallet spend {reference}")
            now = self._clock()
            try:
                amount = act(uow, spend, now)
            except Conflict as refused:
                raise GatewayRefused(refused.detail, code=refused.code) from None
            uow.wallets.save_spend(spend)
            result = GatewayTransaction(
                transaction_id=transaction_id or new_id("wtx"),
                reference=reference,
                kind=operation,  # type: ignore[arg-type]  # capture, void or refund
                amount_minor=amount,
                currency=spend.currency,
            )
            uow.wallets.save_request(idempotency_key, operation, print_, encode_result(result))
            uow.commit()
        return result


def _require_key(idempotency_key: str) -> None:
    if not idempotency_key:
        raise InvalidRequest("an idempotency key is required", code="missing_idempotency_key")


def _replay(
    uow: SqlWalletUnitOfWork, idempotency_key: str, operation: str, print_: str
) -> GatewayResult | None:
    stored = uow.wallets.request(idempotency_key)
    if stored is None:
        return None
    if (stored[0], stored[1]) != (operation, print_):
        raise IdempotencyKeyReused(
            f"idempotency key {idempotency_key!r} was used for another {stored[0]}"
        )
    return decode_result(stored[2])
