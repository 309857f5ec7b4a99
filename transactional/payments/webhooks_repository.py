"""PostgreSQL adapters of the webhook slice: received deliveries, and a unit of work with
payments (a delivery's id is stored in the transaction that applies it)."""

from __future__ import annotations

from datetime import datetime
from typing import Self

from sqlalchemy import Connection

from transactional.payments.repository import SqlPaymentsUnitOfWork
from transactional.payments.webhooks import Outcome
from transactional.shared.db import sql


class SqlWebhookDeliveries:
    """Deliveries in ``payment_webhook_deliveries`` (primary key: provider, delivery id)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(
        self, provider: str, delivery_id: str, type_: str, reference: str, at: datetime
    ) -> bool:
        """Record a delivery; False if its id was received before (a concurrent twin waits
        on the row until this transaction ends, then finds it taken)."""
        inserted = self._connection.execute(
            sql(
                "INSERT INTO payment_webhook_deliveries (provider, delivery_id, type, reference, "
                "received_at) VALUES (:provider, :id, :type, :reference, :at) "
                "ON CONFLICT DO NOTHING"
            ),
            {
                "provider": provider,
                "id": delivery_id,
                "type": type_,
                "reference": reference,
                "at": at,
            },
        )
        return inserted.rowcount == 1

    def settle(self, provider: str, delivery_id: str, outcome: Outcome) -> None:
        """Note what the delivery did."""
        self._connection.execute(
            sql(
                "UPDATE payment_webhook_deliveries SET outcome = :outcome "
                "WHERE provider = :provider AND delivery_id = :id"
            ),
            {"provider": provider, "id": delivery_id, "outcome": outcome},
        )


class SqlWebhookUnitOfWork(SqlPaymentsUnitOfWork):
    """A transaction with ``payments`` and ``deliveries`` attached."""

    deliveries: SqlWebhookDeliveries

    def __enter__(self) -> Self:
        super().__enter__()
        self.deliveries = SqlWebhookDeliveries(self.connection)
        return self

    def payment_of_reference(self, reference: str) -> str | None:
        """The id of the payment charged under this gateway reference, if any."""
        found = self.connection.execute(
            sql("SELECT payment_id FROM payments WHERE gateway_reference = :r LIMIT 1"),
            {"r": reference},
        ).scalar_one_or_none()
        return None if found is None else str(found)
