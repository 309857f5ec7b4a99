"""Helpers of the wallet tests: top-ups, wallet rows, and checkouts paid by wallet/split/EMI."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, text

from tests.integration.purchase.test_checkout_api import ADDRESS, APPROVED

CARD = {"number": APPROVED, "exp_month": 12, "exp_year": 2040, "cvc": "123"}


def top_up(
    client: Any,
    shopper: Mapping[str, Any],
    amount_minor: int,
    *,
    key: str | None = None,
    card: Mapping[str, Any] | None = None,
    currency: str = "EUR",
) -> Any:
    """POST /v1/wallet/top-ups paying by raw card."""
    return client.post(
        "/v1/wallet/top-ups",
        json={"amount_minor": amount_minor, "currency": currency, "card": dict(card or CARD)},
        headers={**shopper["headers"], "Idempotency-Key": key or str(uuid.uuid4())},
    )


def balance_of(engine: Engine, customer_id: str, currency: str = "EUR") -> int:
    """The wallet's stored balance (0 without a wallet)."""
    with engine.connect() as connection:
        value = connection.execute(
            text("SELECT balance_minor FROM wallets WHERE customer_id = :c AND currency = :cur"),
            {"c": customer_id, "cur": currency},
        ).scalar_one_or_none()
    return int(value or 0)


def entries_of(engine: Engine, customer_id: str) -> list[tuple[str, int, int]]:
    """(kind, amount, balance after) of the customer's wallet entries, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT kind, amount_minor, balance_after FROM wallet_entries "
                "WHERE customer_id = :c ORDER BY created_at, entry_id"
            ),
            {"c": customer_id},
        ).all()
    return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]


def events_of(engine: Engine, aggregate_id: str, prefix: str = "wallet.") -> list[str]:
    """Event types in the outbox for an aggregate (oldest first)."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT event_type FROM outbox WHERE message_key = :key "
                    "AND event_type LIKE :prefix ORDER BY id"
                ),
                {"key": aggregate_id, "prefix": prefix + "%"},
            ).scalars()
        )


def ledger_kinds(engine: Engine, reference: str) -> list[str]:
    """Kinds of the ledger transactions booked under a reference."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT kind FROM ledger_transactions WHERE reference = :r ORDER BY kind"),
                {"r": reference},
            ).scalars()
        )


def payment_row(engine: Engine, checkout_id: str) -> dict[str, Any]:
    """The checkout's payment row."""
    payment_id = "pay_" + checkout_id.removeprefix("chk_")
    with engine.connect() as connection:
        row = (
            connection.execute(
                text("SELECT * FROM payments WHERE payment_id = :id"), {"id": payment_id}
            )
            .mappings()
            .one()
        )
    return dict(row)


def paying(cart_id: str, method: Mapping[str, Any]) -> dict[str, Any]:
    """A checkout body shipping to ADDRESS and paying with ``method``."""
    return {"cart_id": cart_id, "shipping_address": dict(ADDRESS), "payment_method": dict(method)}
