"""The payment slice's statements for a pipelined unit of work (the checkout's hot path)."""

from __future__ import annotations

from collections.abc import Collection

from psycopg import Cursor

from transactional.payments.model import Payment
from transactional.payments.repository import INSERT_PAYMENT, UPDATE_PAYMENT, payment_row
from transactional.shared.pipeline import Deferred, PipelinedUnitOfWork, Row, pyformat

_INSERT = pyformat(INSERT_PAYMENT)
_UPDATE_IF = pyformat(UPDATE_PAYMENT + " AND status = ANY(:expected)")
_STATUS = pyformat("SELECT status FROM payments WHERE payment_id = :payment_id")


def _status(cursor: Cursor[Row]) -> str | None:
    row = cursor.fetchone()
    return None if row is None else str(row[0])


class PipelinedPayments:
    """Payments, queued on a pipelined unit of work."""

    def __init__(self, uow: PipelinedUnitOfWork) -> None:
        self._uow = uow

    def add(self, payment: Payment) -> Deferred[int]:
        """Insert a new payment; 1 if inserted (0: its id or key is taken, roll back)."""
        return self._uow.execute(_INSERT, payment_row(payment))

    def status(self, payment_id: str) -> Deferred[str | None]:
        """The payment's stored status, None if there is no such payment."""
        return self._uow.query(_STATUS, {"payment_id": payment_id}, _status)

    def save_if(self, payment: Payment, expected: Collection[str]) -> Deferred[int]:
        """Write back the payment if its stored status is one of ``expected``; 1 if it was
        (0: another driver moved it meanwhile, roll back)."""
        return self._uow.execute(_UPDATE_IF, {**payment_row(payment), "expected": list(expected)})
