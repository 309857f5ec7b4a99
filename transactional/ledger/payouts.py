"""Seller payouts: what each seller is owed per currency, and booking what is paid out.

A seller is owed minus the balance of ``seller_payable:{seller}`` (a liability, credited at
each capture, debited by refunds and payouts). Booking a batch of payouts happens in one
transaction under an advisory lock, so two runs never pay the same balance twice; each
payout's reference is ``<batch>:<seller>:<currency>``, so re-running a batch is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from transactional.ledger.bookings import payout
from transactional.ledger.repository import SqlLedgerRepository
from transactional.shared.db import sql

# Serialises payout runs (any constant; pg_advisory_xact_lock takes a bigint).
PAYOUT_LOCK = 0x50A7_0001


@dataclass(frozen=True)
class PayoutDue:
    """What one seller is owed in one currency."""

    seller_id: str
    currency: str
    owed_minor: int


@dataclass(frozen=True)
class PayoutBooked:
    """A payout of a batch: its ledger transaction id, and whether this run booked it."""

    due: PayoutDue
    transaction_id: str
    booked: bool


def payouts_due(payables: Mapping[tuple[str, str], int], minimum_minor: int = 1) -> list[PayoutDue]:
    """Sellers owed at least ``minimum_minor``, by seller then currency."""
    return [
        PayoutDue(seller, currency, owed)
        for (seller, currency), owed in sorted(payables.items())
        if owed >= minimum_minor
    ]


def owed(engine: Engine, minimum_minor: int = 1) -> list[PayoutDue]:
    """What each seller is owed now."""
    with engine.connect() as connection:
        return payouts_due(SqlLedgerRepository(connection).seller_payables(), minimum_minor)


def book_payouts(
    engine: Engine, batch: str, at: datetime, minimum_minor: int = 1
) -> list[PayoutBooked]:
    """Pay every seller what it is owed (at least ``minimum_minor``) as batch ``batch``."""
    with engine.begin() as connection:
        connection.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": PAYOUT_LOCK})
        journal = SqlLedgerRepository(connection)
        results = []
        for due in payouts_due(journal.seller_payables(), minimum_minor):
            tx = payout(
                seller_id=due.seller_id,
                amount_minor=due.owed_minor,
                currency=due.currency,
                reference=f"{batch}:{due.seller_id}:{due.currency}",
                occurred_at=at,
            )
            results.append(PayoutBooked(due, tx.transaction_id, journal.append(tx)))
    return results
