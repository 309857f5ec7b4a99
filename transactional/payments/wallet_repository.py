"""PostgreSQL adapter of the wallet: balances, entries, spends, top-ups and idempotency records.

Runs on the caller's connection (its unit of work). A debit is one conditional UPDATE
(``balance_minor >= amount``): concurrent spends on a wallet queue on its row and each sees
the balance the previous one left, so the balance cannot go negative.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Connection

from schemas.envelope import Envelope
from transactional.ledger.repository import SqlLedgerRepository
from transactional.payments.wallet import TopUp, WalletBalance, WalletEntry, WalletSpend
from transactional.shared.db import sql
from transactional.shared.unit_of_work import SqlUnitOfWork

_ENTRY_COLUMNS = (
    "entry_id, customer_id, currency, kind, amount_minor, balance_after, reference, created_at"
)
_SPEND_COLUMNS = (
    "reference, customer_id, currency, amount_minor, status, captured_minor, refunded_minor, "
    "created_at, updated_at"
)
_TOPUP_COLUMNS = (
    "topup_id, customer_id, idempotency_key, fingerprint, amount_minor, currency, "
    "instrument_token, status, gateway, gateway_reference, decline_code, created_at, updated_at"
)


def _names(columns: str) -> list[str]:
    return [name.strip() for name in columns.split(",")]


def _params(columns: str) -> str:
    return ", ".join(f":{name}" for name in _names(columns))


def _strip_currency(row: Any) -> dict[str, Any]:
    fields = dict(row)
    fields["currency"] = fields["currency"].strip()
    return fields


class SqlWalletRepository:
    """Wallet rows on one connection (inside the caller's transaction)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def lock(self, key: str) -> None:
        """Serialise this transaction with every other one locking ``key`` (until it ends)."""
        self._connection.execute(
            sql("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"wallet|{key}"}
        )

    def balance(self, customer_id: str, currency: str) -> WalletBalance | None:
        """The wallet, or None if the customer never had one in ``currency``."""
        row = (
            self._connection.execute(
                sql(
                    "SELECT customer_id, currency, balance_minor, updated_at FROM wallets "
                    "WHERE customer_id = :c AND currency = :cur"
                ),
                {"c": customer_id, "cur": currency},
            )
            .mappings()
            .first()
        )
        return None if row is None else WalletBalance(**_strip_currency(row))

    def balances(self, customer_id: str) -> list[WalletBalance]:
        """Every wallet of a customer, by currency."""
        rows = self._connection.execute(
            sql(
                "SELECT customer_id, currency, balance_minor, updated_at FROM wallets "
                "WHERE customer_id = :c ORDER BY currency"
            ),
            {"c": customer_id},
        ).mappings()
        return [WalletBalance(**_strip_currency(row)) for row in rows]

    def debit(self, customer_id: str, currency: str, amount_minor: int, at: datetime) -> int | None:
        """Take ``amount_minor`` if the balance covers it: the balance after, else None."""
        balance = self._connection.execute(
            sql(
                "UPDATE wallets SET balance_minor = balance_minor - :a, updated_at = :at "
                "WHERE customer_id = :c AND currency = :cur AND balance_minor >= :a "
                "RETURNING balance_minor"
            ),
            {"a": amount_minor, "at": at, "c": customer_id, "cur": currency},
        ).scalar_one_or_none()
        return None if balance is None else int(balance)

    def credit(self, customer_id: str, currency: str, amount_minor: int, at: datetime) -> int:
        """Add ``amount_minor`` (opening the wallet if needed); the balance after."""
        return int(
            self._connection.execute(
                sql(
                    "INSERT INTO wallets AS w (customer_id, currency, balance_minor, created_at, "
                    "updated_at) VALUES (:c, :cur, :a, :at, :at) "
                    "ON CONFLICT (customer_id, currency) DO UPDATE "
                    "SET balance_minor = w.balance_minor + EXCLUDED.balance_minor, "
                    "updated_at = EXCLUDED.updated_at RETURNING balance_minor"
                ),
                {"a": amount_minor, "at": at, "c": customer_id, "cur": currency},
            ).scalar_one()
        )

    def add_entry(self, entry: WalletEntry) -> bool:
        """Append an entry; False if one of its kind has this reference already."""
        inserted = self._connection.execute(
            sql(
                f"INSERT INTO wallet_entries ({_ENTRY_COLUMNS}) VALUES ({_params(_ENTRY_COLUMNS)}) "
                "ON CONFLICT (kind, reference) DO NOTHING"
            ),
            {name: getattr(entry, name) for name in _names(_ENTRY_COLUMNS)},
        )
        return inserted.rowcount == 1

    def entry(self, kind: str, reference: str) -> WalletEntry | None:
        """The entry of a kind with this reference, or None."""
        row = (
            self._connection.execute(
                sql(
                    f"SELECT {_ENTRY_COLUMNS} FROM wallet_entries "
                    "WHERE kind = :kind AND reference = :reference"
                ),
                {"kind": kind, "reference": reference},
            )
            .mappings()
            .first()
        )
        return None if row is None else WalletEntry(**_strip_currency(row))

    def entries(self, customer_id: str, currency: str, limit: int) -> list[WalletEntry]:
        """The wallet's latest entries, newest first."""
        rows = self._connection.execute(
            sql(
                f"SELECT {_ENTRY_COLUMNS} FROM wallet_entries "
                "WHERE customer_id = :c AND currency = :cur "
                "ORDER BY created_at DESC, entry_id DESC LIMIT :limit"
            ),
            {"c": customer_id, "cur": currency, "limit": limit},
        ).mappings()
        return [WalletEntry(**_strip_currency(row)) for row in rows]

    # -- the wallet gateway's charges and idempotency records --------------------------

    def add_spend(self, spend: WalletSpend) -> None:
        """Insert a new spend."""
        self._connection.execute(
            sql(f"INSERT INTO wallet_spends ({_SPEND_COLUMNS}) VALUES ({_params(_SPEND_COLUMNS)})"),
            {name: getattr(spend, name) for name in _names(_SPEND_COLUMNS)},
        )

    def spend(self, reference: str, *, for_update: bool = False) -> WalletSpend | None:
        """A spend (locked if asked), or None."""
        row = (
            self._connection.execute(
                sql(
                    f"SELECT {_SPEND_COLUMNS} FROM wallet_spends WHERE reference = :reference"
                    + (" FOR UPDATE" if for_update else "")
                ),
                {"reference": reference},
            )
            .mappings()
            .first()
        )
        return None if row is None else WalletSpend(**_strip_currency(row))

    def save_spend(self, spend: WalletSpend) -> None:
        """Write back a spend's status and amounts."""
        self._connection.execute(
            sql(
                "UPDATE wallet_spends SET status = :status, captured_minor = :captured_minor, "
                "refunded_minor = :refunded_minor, updated_at = :updated_at "
                "WHERE reference = :reference"
            ),
            {name: getattr(spend, name) for name in _names(_SPEND_COLUMNS)},
        )

    def request(self, idempotency_key: str) -> tuple[str, str, dict[str, Any]] | None:
        """(operation, fingerprint, result) stored for a key, or None."""
        row = self._connection.execute(
            sql(
                "SELECT operation, fingerprint, result FROM wallet_requests "
                "WHERE idempotency_key = :key"
            ),
            {"key": idempotency_key},
        ).first()
        if row is None:
            return None
        result = row[2] if isinstance(row[2], dict) else json.loads(row[2])
        return str(row[0]), str(row[1]), result

    def save_request(
        self, idempotency_key: str, operation: str, fingerprint: str, result: dict[str, Any]
    ) -> bool:
        """Remember a key's first result; False if the key has one already."""
        inserted = self._connection.execute(
            sql(
                "INSERT INTO wallet_requests (idempotency_key, operation, fingerprint, result) "
                "VALUES (:key, :operation, :fingerprint, CAST(:result AS jsonb)) "
                "ON CONFLICT DO NOTHING"
            ),
            {
                "key": idempotency_key,
                "operation": operation,
                "fingerprint": fingerprint,
                "result": json.dumps(result),
            },
        )
        return inserted.rowcount == 1

    # -- top-ups ----------------------------------------------------------------------

    def add_topup(self, topup: TopUp) -> bool:
        """Insert a top-up; False if the customer used its idempotency key already."""
        inserted = self._connection.execute(
            sql(
                f"INSERT INTO wallet_topups ({_TOPUP_COLUMNS}) VALUES ({_params(_TOPUP_COLUMNS)}) "
                "ON CONFLICT DO NOTHING"
            ),
            {name: getattr(topup, name) for name in _names(_TOPUP_COLUMNS)},
        )
        return inserted.rowcount == 1

    def topup(
        self, customer_id: str, idempotency_key: str, *, for_update: bool = False
    ) -> TopUp | None:
        """The customer's top-up of this key (locked if asked), or None."""
        row = (
            self._connection.execute(
                sql(
                    f"SELECT {_TOPUP_COLUMNS} FROM wallet_topups "
                    "WHERE customer_id = :c AND idempotency_key = :key"
                    + (" FOR UPDATE" if for_update else "")
                ),
                {"c": customer_id, "key": idempotency_key},
            )
            .mappings()
            .first()
        )
        return None if row is None else TopUp(**_strip_currency(row))

    def save_topup(self, topup: TopUp) -> None:
        """Write back a top-up's outcome."""
        self._connection.execute(
            sql(
                "UPDATE wallet_topups SET status = :status, "
                "gateway_reference = :gateway_reference, decline_code = :decline_code, "
                "updated_at = :updated_at WHERE topup_id = :topup_id"
            ),
            {name: getattr(topup, name) for name in _names(_TOPUP_COLUMNS)},
        )


class SqlWalletUnitOfWork(SqlUnitOfWork):
    """A transaction with the wallet's rows and the ledger attached."""

    wallets: SqlWalletRepository
    ledger: SqlLedgerRepository

    def __enter__(self) -> Self:
        super().__enter__()
        self.wallets = SqlWalletRepository(self.connection)
        self.ledger = SqlLedgerRepository(self.connection)
        return self


class WalletRowsOn:
    """Wallet movements inside another slice's transaction (e.g. a return's credit):
    ``wallet_moves.credit(WalletRowsOn(uow.connection, uow.emit), ...)``."""

    def __init__(self, connection: Connection, emit: Callable[..., None]) -> None:
        self.wallets = SqlWalletRepository(connection)
        self._emit = emit

    def emit(self, *envelopes: Envelope) -> None:
        """Queue events on the host transaction."""
        self._emit(*envelopes)
