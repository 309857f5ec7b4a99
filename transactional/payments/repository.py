"""PostgreSQL adapters of the payment slice: payments, the unit of work, the sandbox's store."""

from __future__ import annotations

from typing import Any, Self

from sqlalchemy import Connection

from transactional.ledger.payments import SqlPaymentLedger
from transactional.payments.model import Payment, Refund
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_PAYMENT_COLUMNS = (
    "payment_id, order_id, customer_id, region, amount_minor, currency, instrument_token, "
    "idempotency_key, created_at, updated_at, method, gateway, status, gateway_reference, "
    "card_brand, last4, decline_code, authorization_expires_at, captured_minor, refunded_minor, "
    "emi_months, emi_bank, emi_rate_bp, emi_monthly_minor, emi_interest_minor"
)
_CHARGE_COLUMNS = (
    "reference, token, amount_minor, currency, status, created_at, updated_at, decline_code, "
    "captured_minor, refunded_minor"
)
_VAULT_COLUMNS = "token, number, brand, last4, exp_month, exp_year, holder, created_at, owner"


def _params(columns: str) -> str:
    return ", ".join(f":{name.strip()}" for name in columns.split(","))


# Shared with the pipelined adapter (``pipelined.py``).
INSERT_PAYMENT = (
    f"INSERT INTO payments ({_PAYMENT_COLUMNS}) VALUES ({_params(_PAYMENT_COLUMNS)}) "
    "ON CONFLICT DO NOTHING"
)
UPDATE_PAYMENT = (
    "UPDATE payments SET status = :status, gateway_reference = :gateway_reference, "
    "card_brand = :card_brand, last4 = :last4, decline_code = :decline_code, "
    "authorization_expires_at = :authorization_expires_at, "
    "captured_minor = :captured_minor, refunded_minor = :refunded_minor, "
    "updated_at = :updated_at WHERE payment_id = :payment_id"
)


class SqlPaymentRepository:
    """Payments and refunds in the ``payments`` / ``payment_refunds`` tables."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, payment: Payment) -> bool:
        """Insert a new payment; False if its id or idempotency key is already taken."""
        inserted = self._connection.execute(sql(INSERT_PAYMENT), payment_row(payment))
        return inserted.rowcount == 1

    def get(self, payment_id: str, *, for_update: bool = False) -> Payment | None:
        """A payment (locked for this transaction if asked), or None."""
        row = (
            self._connection.execute(
                sql(
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
        self._connection.execute(sql(UPDATE_PAYMENT), payment_row(payment))

    def add_refund(self, refund: Refund) -> bool:
        """Record a refund; False if this refund id was already recorded."""
        inserted = self._connection.execute(
            sql(
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
                sql("SELECT count(*) FROM payment_refunds WHERE payment_id = :id"),
                {"id": payment_id},
            ).scalar_one()
        )


def payment_row(payment: Payment) -> dict[str, Any]:
    """The payments row of a payment."""
    return {name.strip(): getattr(payment, name.strip()) for name in _PAYMENT_COLUMNS.split(",")}


class SqlPaymentsUnitOfWork(SqlUnitOfWork):
    """A transaction with ``payments`` and the ``ledger`` (booking on it) attached."""

    payments: SqlPaymentRepository
    ledger: SqlPaymentLedger

    def __enter__(self) -> Self:
        super().__enter__()
        self.payments = SqlPaymentRepository(self.connection)
        self.ledger = SqlPaymentLedger(self.connection)
        return self
