"""The ledger's invariants, checked over the whole journal (``souk ledger check``).

1. Every transaction sums to zero in each currency (and has postings).
2. Every account's stored balance equals the sum of its postings, per currency.
3. Per order, what the payments captured minus what they refunded equals what the ledger
   holds for the order: the sum of the postings on funding accounts (processor clearing,
   wallets, customer funds) of the order's transactions.

The database does the summing (a few GROUP BYs, so a check costs milliseconds on a test
database); :func:`violations` compares the sums, pure, so it is tested on fakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sqlalchemy import Connection

from transactional.ledger.model import FUNDING_TYPES, PROCESSOR_FEE
from transactional.shared.db import sql

Rule = Literal["unbalanced", "empty", "balance", "order"]
RULES: dict[Rule, str] = {
    "unbalanced": "transaction does not sum to zero",
    "empty": "transaction has no postings",
    "balance": "stored balance is not the sum of the postings",
    "order": "captured minus refunded is not what the ledger holds for the order",
}


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which rule, on what (transaction, account or order), by how much."""

    rule: Rule
    subject: str
    currency: str
    expected: int
    actual: int

    @property
    def detail(self) -> str:
        """One line saying what is wrong."""
        return (
            f"{RULES[self.rule]}: {self.subject} {self.currency} "
            f"expected {self.expected}, found {self.actual}"
        )


@dataclass(frozen=True)
class LedgerSums:
    """The sums the invariants compare, as read from the database (or built by a test)."""

    # (transaction id, currency) -> sum of its postings, only those not zero
    unbalanced: Mapping[tuple[str, str], int] = field(default_factory=dict)
    empty: tuple[str, ...] = ()  # transactions without postings
    stored: Mapping[tuple[str, str], int] = field(default_factory=dict)  # ledger_balances
    posted: Mapping[tuple[str, str], int] = field(default_factory=dict)  # sum of postings
    held: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (order, currency)
    paid: Mapping[tuple[str, str], int] = field(default_factory=dict)  # captured - refunded


class LedgerSource(Protocol):
    """Where the checker reads the sums from."""

    def sums(self) -> LedgerSums:
        """The current sums."""


def violations(sums: LedgerSums) -> list[Violation]:
    """Every invariant the sums break, in a stable order."""
    found = [
        Violation("unbalanced", tx_id, currency, 0, total)
        for (tx_id, currency), total in sorted(sums.unbalanced.items())
    ]
    found += [Violation("empty", tx_id, "-", 1, 0) for tx_id in sorted(sums.empty)]
    for key in sorted(set(sums.stored) | set(sums.posted)):
        posted, stored = sums.posted.get(key, 0), sums.stored.get(key, 0)
        if posted != stored:
            found.append(Violation("balance", key[0], key[1], posted, stored))
    for key in sorted(set(sums.held) | set(sums.paid)):
        paid, held = sums.paid.get(key, 0), sums.held.get(key, 0)
        if paid != held:
            found.append(Violation("order", key[0], key[1], paid, held))
    return found


_FUNDING = ", ".join(f"'{kind}'" for kind in sorted(FUNDING_TYPES))

UNBALANCED = (
    "SELECT transaction_id, currency, sum(amount_minor) FROM ledger_postings "
    "GROUP BY transaction_id, currency HAVING sum(amount_minor) <> 0"
)
EMPTY = (
    "SELECT t.transaction_id FROM ledger_transactions t WHERE NOT EXISTS "
    "(SELECT 1 FROM ledger_postings p WHERE p.transaction_id = t.transaction_id)"
)
STORED = "SELECT account, currency, sum(balance_minor) FROM ledger_balances GROUP BY 1, 2"
POSTED = "SELECT account, currency, sum(amount_minor) FROM ledger_postings GROUP BY 1, 2"
HELD = (
    "SELECT t.order_id, p.currency, sum(p.amount_minor) "
    "FROM ledger_transactions t JOIN ledger_postings p USING (transaction_id) "
    f"WHERE t.order_id IS NOT NULL AND t.kind <> '{PROCESSOR_FEE}' "
    f"AND split_part(p.account, ':', 1) IN ({_FUNDING}) GROUP BY 1, 2"
)
PAID = (
    "SELECT order_id, btrim(currency), sum(captured_minor - refunded_minor) FROM payments "
    "WHERE captured_minor > 0 GROUP BY 1, 2"
)


class SqlLedgerSource:
    """The sums, from PostgreSQL (one REPEATABLE READ snapshot: all sums agree in time)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def sums(self) -> LedgerSums:
        """The current sums, every query in one snapshot."""
        connection = self._connection
        if connection.in_transaction():
            return self._read()
        with connection.begin():
            connection.execute(sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            return self._read()

    def _read(self) -> LedgerSums:
        def pairs(statement: str) -> dict[tuple[str, str], int]:
            rows = self._connection.execute(sql(statement))
            return {(str(a), str(b)): int(total) for a, b, total in rows}

        return LedgerSums(
            unbalanced=pairs(UNBALANCED),
            empty=tuple(str(row[0]) for row in self._connection.execute(sql(EMPTY))),
            stored=pairs(STORED),
            posted=pairs(POSTED),
            held=pairs(HELD),
            paid=pairs(PAID),
        )


def check(source: LedgerSource) -> list[Violation]:
    """Every broken invariant of the ledger behind ``source`` (empty: all hold)."""
    return violations(source.sums())
