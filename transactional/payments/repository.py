"""PostgreSQL adapters of the payment slice: payments, the unit of work, the sandbox's store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from sqlalchemy import Connection, Engine, text

from transactional.payments.model import Payment, Refund
from transactional.payments.sandbox import Charge, StoredRequest, VaultEntry
from transactional.shared.unit_of_work import SqlUnitOfWork

_PAYMENT_COLUMNS = (
    "payment_id, order_id, customer_id, region, amount_minor, currency, instrument_token, "
    "idempotency_key, created_at, updated_at, method, gateway, status, gateway_reference, "
    "card_brand, last4, decline_code, authorization_expires_at, captured_minor, refunded_minor"
)
_CHARGE_COLUMNS = (
    "reference, token, amount_minor, currency, status, created_at, updated_at, decline_code, "
    "captured_minor, refunded_minor"
)
_VAULT_COLUMNS = "token, number, brand, last4, exp_month, exp_year, holder, created_at, owner"


def _params(columns: str) -> str:
    return ", ".join(f":{name.strip()}" for name in columns.split(","))


class SqlPaymentRepository:
    """Payments and refunds in the ``payments`` / ``payment_refunds`` tables."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, payment: Payment) -> bool:
        """Insert a new payment; False if its id or idempotency key is already taken."""
        inserted = self._connection.execute(
            text(
                f"INSERT INTO payments ({_PAYMENT_COLUMNS}) VALUES ({_params(_PAYMENT_COLUMNS)}) "
                "ON CONFLICT DO NOTHING"
            ),
            _row(payment),
        )
        return inserted.rowcount == 1

    def get(self, payment_id: str, *, for_update: bool = False) -> Payment | None:
        """A payment (locked for this transaction if asked), or None."""
        row = (
            self._connection.execute(
                text(
                    f"SELECT {_PAYMENT_COLUMNS} FROM payments WHERE payment_id = :id"
                    + (" FOR UPDATE" if for_update else "")
                ),
                {"id": payment_id},
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        fields = dict(row)
        fields["currency"] = fields["currency"].strip()
        return Payment(**fields)

    def save(self, payment: Payment) -> None:
        """Write back a payment's status and amounts."""
        self._connection.execute(
            text(
                "UPDATE payments SET status = :status, gateway_reference = :gateway_reference, "
                "card_brand = :card_brand, last4 = :last4, decline_code = :decline_code, "
                "authorization_expires_at = :authorization_expires_at, "
                "captured_minor = :captured_minor, refunded_minor = :refunded_minor, "
                "updated_at = :updated_at WHERE payment_id = :payment_id"
            ),
            _row(payment),
        )

    def add_refund(self, refund: Refund) -> bool:
        """Record a refund; False if this refund id was already recorded."""
        inserted = self._connection.execute(
            text(
                "INSERT INTO payment_refunds (refund_id, payment_id, amount_minor, currency, "
                "reason, created_at) VALUES (:refund_id, :payment_id, :amount_minor, :currency, "
                ":reason, :created_at) ON CONFLICT DO NOTHING"
            ),
            {
                "refund_id": refund.refund_id,
                "payment_id": refund.payment_id,
                "amount_minor": refund.amount_minor,
                "currency": refund.currency,
                "reason": refund.reason,
                "created_at": refund.created_at,
            },
        )
        return inserted.rowcount == 1

    def refund_count(self, payment_id: str) -> int:
        """How many refunds the payment has."""
        return int(
            self._connection.execute(
                text("SELECT count(*) FROM payment_refunds WHERE payment_id = :id"),
                {"id": payment_id},
            ).scalar_one()
        )


def _row(payment: Payment) -> dict[str, Any]:
    return {name.strip(): getattr(payment, name.strip()) for name in _PAYMENT_COLUMNS.split(",")}


class SqlPaymentsUnitOfWork(SqlUnitOfWork):
    """A transaction with ``payments`` attached."""

    payments: SqlPaymentRepository

    def __enter__(self) -> Self:
        super().__enter__()
        self.payments = SqlPaymentRepository(self.connection)
        return self


class SqlSandboxSession:
    """One transaction on the sandbox gateway's own tables."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def request(self, idempotency_key: str) -> StoredRequest | None:
        """The stored result of a key, or None."""
        row = (
            self._connection.execute(
                text(
                    "SELECT idempotency_key, operation, fingerprint, result "
                    "FROM sandbox_gateway_requests WHERE idempotency_key = :key"
                ),
                {"key": idempotency_key},
            )
            .mappings()
            .first()
        )
        return None if row is None else StoredRequest(**dict(row))

    def save_request(self, request: StoredRequest) -> None:
        """Remember the result of a key."""
        self._connection.execute(
            text(
                "INSERT INTO sandbox_gateway_requests (idempotency_key, operation, fingerprint, "
                "result) VALUES (:key, :operation, :fingerprint, CAST(:result AS jsonb))"
            ),
            {
                "key": request.idempotency_key,
                "operation": request.operation,
                "fingerprint": request.fingerprint,
                "result": json.dumps(request.result),
            },
        )

    def vault_entry(self, token: str) -> VaultEntry | None:
        """A tokenised card, or None."""
        row = (
            self._connection.execute(
                text(f"SELECT {_VAULT_COLUMNS} FROM sandbox_gateway_vault WHERE token = :token"),
                {"token": token},
            )
            .mappings()
            .first()
        )
        return None if row is None else VaultEntry(**dict(row))

    def save_vault_entry(self, entry: VaultEntry) -> None:
        """Vault a card."""
        self._connection.execute(
            text(
                f"INSERT INTO sandbox_gateway_vault ({_VAULT_COLUMNS}) "
                f"VALUES ({_params(_VAULT_COLUMNS)})"
            ),
            {name.strip(): getattr(entry, name.strip()) for name in _VAULT_COLUMNS.split(",")},
        )

    def claim_vault_entry(self, token: str, owner: str) -> str | None:
        """Give an unowned card to ``owner`` (first come wins); the owner it has afterwards."""
        claimed = self._connection.execute(
            text(
                "UPDATE sandbox_gateway_vault SET owner = :owner "
                "WHERE token = :token AND owner IS NULL RETURNING owner"
            ),
            {"token": token, "owner": owner},
        ).scalar_one_or_none()
        if claimed is not None:
            return str(claimed)
        # Someone else's already (a concurrent claim has committed by the time the UPDATE ran).
        current = self._connection.execute(
            text("SELECT owner FROM sandbox_gateway_vault WHERE token = :token"),
            {"token": token},
        ).scalar_one_or_none()
        return None if current is None else str(current)

    def charge(self, reference: str) -> Charge | None:
        """A charge, locked until the session ends, or None."""
        row = (
            self._connection.execute(
                text(
                    f"SELECT {_CHARGE_COLUMNS} FROM sandbox_gateway_charges "
                    "WHERE reference = :reference FOR UPDATE"
                ),
                {"reference": reference},
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        fields = dict(row)
        fields["currency"] = fields["currency"].strip()
        return Charge(**fields)

    def save_charge(self, charge: Charge) -> None:
        """Insert or update a charge."""
        self._connection.execute(
            text(
                f"INSERT INTO sandbox_gateway_charges ({_CHARGE_COLUMNS}) "
                f"VALUES ({_params(_CHARGE_COLUMNS)}) ON CONFLICT (reference) DO UPDATE SET "
                "status = EXCLUDED.status, captured_minor = EXCLUDED.captured_minor, "
                "refunded_minor = EXCLUDED.refunded_minor, updated_at = EXCLUDED.updated_at"
            ),
            {name.strip(): getattr(charge, name.strip()) for name in _CHARGE_COLUMNS.split(",")},
        )


class SqlSandboxLedger:
    """The sandbox's store in ``sandbox_gateway_*`` tables, in its own short transactions."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def session(self, lock_key: str) -> Iterator[SqlSandboxSession]:
        """A transaction serialised (advisory lock) with other sessions of ``lock_key``."""
        with self._engine.begin() as connection:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"sandbox-gateway|{lock_key}"},
            )
            yield SqlSandboxSession(connection)
