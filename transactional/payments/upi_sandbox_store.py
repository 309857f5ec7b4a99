"""The UPI sandbox's store on PostgreSQL (``sandbox_upi_*`` tables), in its own short
transactions (never the caller's), serialised per key by an advisory lock, as a provider's
ledger is apart from ours."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

from transactional.payments.upi_sandbox import UpiCollect, UpiRequest
from transactional.shared.db import sql

_COLUMNS = (
    "reference, vpa, amount_minor, currency, status, created_at, updated_at, expires_at, "
    "decline_code, captured_minor, refunded_minor, event_id, event_type, delivered"
)
_NAMES = [name.strip() for name in _COLUMNS.split(",")]
_SAVE = (
    f"INSERT INTO sandbox_upi_collects ({_COLUMNS}) VALUES ({', '.join(':' + n for n in _NAMES)}) "
    "ON CONFLICT (reference) DO UPDATE SET "
    + ", ".join(f"{n} = EXCLUDED.{n}" for n in _NAMES if n != "reference")
)


class SqlUpiSession:
    """One transaction on the UPI sandbox's tables."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def collect(self, reference: str) -> UpiCollect | None:
        """A collect request, locked until the session ends, or None."""
        row = (
            self._connection.execute(
                sql(f"SELECT {_COLUMNS} FROM sandbox_upi_collects WHERE reference = :r FOR UPDATE"),
                {"r": reference},
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return UpiCollect(**{**row, "currency": row["currency"].strip()})

    def save(self, collect: UpiCollect) -> None:
        """Insert or update a collect request."""
        self._connection.execute(sql(_SAVE), {n: getattr(collect, n) for n in _NAMES})

    def request(self, idempotency_key: str) -> UpiRequest | None:
        """The stored result of a key, or None."""
        row = (
            self._connection.execute(
                sql(
                    "SELECT idempotency_key, operation, fingerprint, result "
                    "FROM sandbox_upi_requests WHERE idempotency_key = :k"
                ),
                {"k": idempotency_key},
            )
            .mappings()
            .first()
        )
        return None if row is None else UpiRequest(**row)

    def save_request(self, request: UpiRequest) -> None:
        """Remember the result of a key."""
        self._connection.execute(
            sql(
                "INSERT INTO sandbox_upi_requests (idempotency_key, operation, fingerprint, "
                "result) VALUES (:k, :operation, :fingerprint, CAST(:result AS jsonb))"
            ),
            {
                "k": request.idempotency_key,
                "operation": request.operation,
                "fingerprint": request.fingerprint,
                "result": json.dumps(request.result),
            },
        )


class SqlUpiStore:
    """The UPI sandbox's store on our PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def session(self, lock_key: str) -> Iterator[SqlUpiSession]:
        """A transaction serialised with other sessions of ``lock_key``; committed when the
        block ends without an error."""
        with self._engine.begin() as connection:
            connection.execute(
                sql("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"sandbox-upi|{lock_key}"},
            )
            yield SqlUpiSession(connection)

    def undelivered(self, limit: int) -> list[str]:
        """Collects whose answer is not acknowledged yet (undecided ones included)."""
        with self._engine.connect() as connection:
            rows: Any = connection.execute(
                sql(
                    "SELECT reference FROM sandbox_upi_collects WHERE NOT delivered "
                    "ORDER BY created_at LIMIT :limit"
                ),
                {"limit": limit},
            )
            return [str(reference) for (reference,) in rows]
