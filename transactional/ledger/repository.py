"""PostgreSQL adapter of the ledger: append transactions (idempotently) and read balances.

Appending is one statement: the transaction row, its postings and the balance stripes it moves
are written together, so a pipelined caller queues it as a single round trip. It runs on the
caller's connection, i.e. inside the caller's database transaction (its unit of work).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from transactional.ledger.model import (
    LedgerTransaction,
    Posting,
    account_qualifier,
    account_type,
)
from transactional.shared.db import sql

BALANCE_SHARDS = 16

APPEND = """
WITH tx AS (
    INSERT INTO ledger_transactions (transaction_id, kind, reference, order_id, payment_id,
        reverses, memo, occurred_at)
    VALUES (:transaction_id, :kind, :reference, :order_id, :payment_id, :reverses, :memo,
        :occurred_at)
    ON CONFLICT DO NOTHING
    RETURNING transaction_id
), posted AS (
    INSERT INTO ledger_postings (transaction_id, seq, account, currency, amount_minor)
    SELECT tx.transaction_id, p.seq, p.account, p.currency, p.amount
    FROM tx, unnest(CAST(:accounts AS text[]), CAST(:currencies AS text[]),
        CAST(:amounts AS bigint[])) WITH ORDINALITY AS p(account, currency, amount, seq)
    RETURNING account, currency, amount_minor
), balanced AS (
    INSERT INTO ledger_balances AS b (account, currency, shard, balance_minor, postings)
    SELECT account, currency, :shard, sum(amount_minor), count(*)
    FROM posted GROUP BY account, currency ORDER BY account, currency
    ON CONFLICT (account, currency, shard) DO UPDATE
        SET balance_minor = b.balance_minor + EXCLUDED.balance_minor,
            postings = b.postings + EXCLUDED.postings, updated_at = now()
)
SELECT count(*) AS appended FROM tx
"""

_TX_COLUMNS = (
    "t.transaction_id, t.kind, t.reference, t.order_id, t.payment_id, t.reverses, t.memo, "
    "t.occurred_at"
)


def shard_of(tx: LedgerTransaction) -> int:
    """The balance stripe a transaction adds to: by its order (all of an order's bookings on
    one stripe, locked in one order), else by its reference."""
    key = tx.order_id or f"{tx.kind}:{tx.reference}"
    return zlib.crc32(key.encode()) % BALANCE_SHARDS


def append_params(tx: LedgerTransaction) -> dict[str, Any]:
    """The bind parameters of :data:`APPEND` for a transaction."""
    return {
        "transaction_id": tx.transaction_id,
        "kind": tx.kind,
        "reference": tx.reference,
        "order_id": tx.order_id,
        "payment_id": tx.payment_id,
        "reverses": tx.reverses,
        "memo": tx.memo,
        "occurred_at": tx.occurred_at,
        "accounts": [p.account for p in tx.postings],
        "currencies": [p.currency for p in tx.postings],
        "amounts": [p.amount_minor for p in tx.postings],
        "shard": shard_of(tx),
    }


class SqlLedgerRepository:
    """The journal in ``ledger_transactions`` / ``ledger_postings`` / ``ledger_balances``."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def append(self, tx: LedgerTransaction) -> bool:
        """Book a transaction; False (nothing written) if its (kind, reference) is booked
        already, or, for a reversal, if the transaction it reverses was reversed already."""
        appended = self._connection.execute(sql(APPEND), append_params(tx)).scalar_one()
        return bool(appended)

    def find(self, kind: str, reference: str) -> LedgerTransaction | None:
        """The transaction booked under (kind, reference), or None."""
        found = self._load(
            "t.kind = :kind AND t.reference = :reference", kind=kind, reference=reference
        )
        return found[0] if found else None

    def get(self, transaction_id: str) -> LedgerTransaction | None:
        """A transaction by id, or None."""
        found = self._load("t.transaction_id = :id", id=transaction_id)
        return found[0] if found else None

    def for_order(self, order_id: str) -> list[LedgerTransaction]:
        """Every transaction booked for an order, oldest first."""
        return self._load("t.order_id = :order_id", order_id=order_id)

    def for_payment(self, payment_id: str) -> list[LedgerTransaction]:
        """Every transaction booked for a payment, oldest first."""
        return self._load("t.payment_id = :payment_id", payment_id=payment_id)

    def balance(self, account: str, currency: str) -> int:
        """An account's balance in a currency (+ debit, - credit; 0 if never posted)."""
        value = self._connection.execute(
            sql(
                "SELECT coalesce(sum(balance_minor), 0) FROM ledger_balances "
                "WHERE account = :account AND currency = :currency"
            ),
            {"account": account, "currency": currency},
        ).scalar_one()
        return int(value)

    def balances(self, account_type_: str | None = None) -> dict[tuple[str, str], int]:
        """Every (account, currency) balance, or only those of one account type."""
        where = ""
        params: dict[str, Any] = {}
        if account_type_ is not None:
            where = "WHERE account = :type OR account LIKE :prefix"
            params = {"type": account_type_, "prefix": _like_prefix(account_type_)}
        rows = self._connection.execute(
            sql(
                "SELECT account, currency, sum(balance_minor) FROM ledger_balances "
                f"{where} GROUP BY account, currency ORDER BY account, currency"
            ),
            params,
        )
        return {(account, currency): int(total) for account, currency, total in rows}

    def seller_payables(self) -> dict[tuple[str, str], int]:
        """What the platform owes each seller per currency (seller id, currency) -> amount > 0."""
        owed: dict[tuple[str, str], int] = {}
        for (account, currency), balance in self.balances("seller_payable").items():
            seller = account_qualifier(account)
            if seller is not None and balance < 0 and account_type(account) == "seller_payable":
                owed[(seller, currency)] = -balance
        return owed

    def _load(self, where: str, **params: Any) -> list[LedgerTransaction]:
        rows = self._connection.execute(
            sql(
                f"SELECT {_TX_COLUMNS}, p.seq, p.account, p.currency, p.amount_minor "
                "FROM ledger_transactions t JOIN ledger_postings p USING (transaction_id) "
                f"WHERE {where} ORDER BY t.recorded_at, t.transaction_id, p.seq"
            ),
            params,
        ).mappings()
        return list(_assemble(rows))


def _like_prefix(account_type_: str) -> str:
    escaped = account_type_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + ":%"


def _assemble(rows: Iterable[Any]) -> Iterable[LedgerTransaction]:
    headers: dict[str, dict[str, Any]] = {}
    postings: dict[str, list[Posting]] = defaultdict(list)
    for row in rows:
        tx_id = row["transaction_id"]
        if tx_id not in headers:
            headers[tx_id] = {
                name: row[name]
                for name in (
                    "transaction_id",
                    "kind",
                    "reference",
                    "order_id",
                    "payment_id",
                    "reverses",
                    "memo",
                    "occurred_at",
                )
            }
        postings[tx_id].append(Posting(row["account"], int(row["amount_minor"]), row["currency"]))
    for tx_id, header in headers.items():
        yield LedgerTransaction(postings=tuple(postings[tx_id]), **header)
