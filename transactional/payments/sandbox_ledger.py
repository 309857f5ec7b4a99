"""The sandbox gateway's store (``sandbox_gateway_*`` tables), in few round trips.

Each session is one short transaction of its own, serialised per key by an advisory lock,
as a processor's ledger is apart from ours. The rows a call needs are read together with
the lock in one round trip (:meth:`SqlSandboxSession.prefetch`), the writes and COMMIT go in
one more: a card call costs our database two round trips, not seven, so the benchmark's
figures are not the sandbox's.

The vault table holds no card number or expiry in the clear: they are sealed by the card
vault on the way in and opened on the way out (``sealed``, ``data_key``, ``kek_id``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from psycopg import Cursor
from psycopg.rows import dict_row
from sqlalchemy import Engine

from transactional.payments.sandbox import Charge, StoredRequest, VaultEntry
from transactional.payments.vault.cards import CardSecret, CardVault
from transactional.payments.vault.envelope import Envelope
from transactional.payments.vault.kms import WrappedKey
from transactional.shared.deferred import Deferred
from transactional.shared.pipeline import PipelinedUnitOfWork, Row, pyformat

_CHARGE_COLUMNS = (
    "reference, token, amount_minor, currency, status, created_at, updated_at, decline_code, "
    "captured_minor, refunded_minor"
)
_VAULT_COLUMNS = (
    "token, brand, last4, fingerprint, holder, created_at, owner, sealed, data_key, kek_id"
)


def _names(columns: str) -> list[str]:
    return [name.strip() for name in columns.split(",")]


def _params(columns: str) -> str:
    return ", ".join(f":{name}" for name in _names(columns))


_LOCK = pyformat("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
_REQUEST = pyformat(
    "SELECT idempotency_key, operation, fingerprint, result "
    "FROM sandbox_gateway_requests WHERE idempotency_key = :key"
)
_SAVE_REQUEST = pyformat(
    "INSERT INTO sandbox_gateway_requests (idempotency_key, operation, fingerprint, result) "
    "VALUES (:key, :operation, :fingerprint, CAST(:result AS jsonb))"
)
_VAULT = pyformat(f"SELECT {_VAULT_COLUMNS} FROM sandbox_gateway_vault WHERE token = :token")
_SAVE_VAULT = pyformat(
    f"INSERT INTO sandbox_gateway_vault ({_VAULT_COLUMNS}) VALUES ({_params(_VAULT_COLUMNS)})"
)
_CLAIM_VAULT = pyformat(
    "UPDATE sandbox_gateway_vault SET owner = :owner WHERE token = :token AND owner IS NULL "
    "RETURNING owner"
)
_OWNER = pyformat("SELECT owner FROM sandbox_gateway_vault WHERE token = :token")
_CHARGE = pyformat(
    f"SELECT {_CHARGE_COLUMNS} FROM sandbox_gateway_charges WHERE reference = :reference FOR UPDATE"
)
_SAVE_CHARGE = pyformat(
    f"INSERT INTO sandbox_gateway_charges ({_CHARGE_COLUMNS}) VALUES ({_params(_CHARGE_COLUMNS)}) "
    "ON CONFLICT (reference) DO UPDATE SET status = EXCLUDED.status, "
    "captured_minor = EXCLUDED.captured_minor, refunded_minor = EXCLUDED.refunded_minor, "
    "updated_at = EXCLUDED.updated_at"
)


def _one(cursor: Cursor[Any]) -> dict[str, Any] | None:
    row: dict[str, Any] | None = cursor.fetchone()
    return row


def _scalar(cursor: Cursor[Row]) -> str | None:
    row = cursor.fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _request(row: dict[str, Any] | None) -> StoredRequest | None:
    return None if row is None else StoredRequest(**row)


def _vault(cards: CardVault, row: dict[str, Any] | None) -> VaultEntry | None:
    """A stored card, opened (number and expiry in memory only)."""
    if row is None:
        return None
    token = row["token"]
    envelope = Envelope(bytes(row["sealed"]), WrappedKey(row["kek_id"], bytes(row["data_key"])))
    secret = cards.open(token, envelope)
    return VaultEntry(
        token=token,
        number=secret.number,
        brand=row["brand"],
        last4=row["last4"],
        exp_month=secret.exp_month,
        exp_year=secret.exp_year,
        holder=row["holder"],
        created_at=row["created_at"],
        owner=row["owner"],
        fingerprint=row["fingerprint"],
    )


def _sealed_row(cards: CardVault, entry: VaultEntry) -> dict[str, Any]:
    """The vault row of a card: number and expiry sealed, never stored in the clear."""
    sealed = cards.seal(entry.token, CardSecret(entry.number, entry.exp_month, entry.exp_year))
    return {
        "token": entry.token,
        "brand": sealed.brand,
        "last4": sealed.last4,
        "fingerprint": sealed.fingerprint,
        "holder": entry.holder,
        "created_at": entry.created_at,
        "owner": entry.owner,
        "sealed": sealed.envelope.ciphertext,
        "data_key": sealed.envelope.data_key.blob,
        "kek_id": sealed.envelope.data_key.kek_id,
    }


def _charge(row: dict[str, Any] | None) -> Charge | None:
    if row is None:
        return None
    return Charge(**{**row, "currency": row["currency"].strip()})


class SqlSandboxSession:
    """One transaction on the sandbox's tables; reads answered from :meth:`prefetch`."""

    def __init__(self, uow: PipelinedUnitOfWork, cards: CardVault) -> None:
        self._uow = uow
        self._cards = cards
        self._requests: dict[str, StoredRequest | None] = {}
        self._vault: dict[str, VaultEntry | None] = {}
        self._charges: dict[str, Charge | None] = {}

    def _read(self, sql: str, params: dict[str, Any]) -> Deferred[dict[str, Any] | None]:
        cursor = self._uow.connection.cursor(row_factory=dict_row)
        cursor.execute(sql, params)
        return Deferred(cursor, _one)

    def prefetch(
        self, *, key: str | None = None, token: str | None = None, reference: str | None = None
    ) -> None:
        """Read the key's stored result, the token's card and the charge (locked) at once."""
        request = self._read(_REQUEST, {"key": key}) if key is not None else None
        vault = self._read(_VAULT, {"token": token}) if token is not None else None
        charge = self._read(_CHARGE, {"reference": reference}) if reference is not None else None
        self._uow.sync()
        if key is not None and request is not None:
            self._requests[key] = _request(request.get())
        if token is not None and vault is not None:
            self._vault[token] = _vault(self._cards, vault.get())
        if reference is not None and charge is not None:
            self._charges[reference] = _charge(charge.get())

    def request(self, idempotency_key: str) -> StoredRequest | None:
        """The stored result of a key, or None."""
        if idempotency_key not in self._requests:
            self.prefetch(key=idempotency_key)
        return self._requests[idempotency_key]

    def save_request(self, request: StoredRequest) -> None:
        """Remember the result of a key."""
        self._uow.execute(
            _SAVE_REQUEST,
            {
                "key": request.idempotency_key,
                "operation": request.operation,
                "fingerprint": request.fingerprint,
                "result": json.dumps(request.result),
            },
        )
        self._requests[request.idempotency_key] = request

    def vault_entry(self, token: str) -> VaultEntry | None:
        """A tokenised card, or None."""
        if token not in self._vault:
            self.prefetch(token=token)
        return self._vault[token]

    def save_vault_entry(self, entry: VaultEntry) -> None:
        """Vault a card."""
        self._uow.execute(_SAVE_VAULT, _sealed_row(self._cards, entry))
        self._vault[entry.token] = entry

    def claim_vault_entry(self, token: str, owner: str) -> str | None:
        """Give an unowned card to ``owner`` (first come wins); the owner it has afterwards."""
        claimed = self._uow.query(_CLAIM_VAULT, {"token": token, "owner": owner}, _scalar)
        # Someone else's already if the UPDATE found it owned (a concurrent claim committed).
        current = self._uow.query(_OWNER, {"token": token}, _scalar)
        self._uow.sync()
        self._vault.pop(token, None)
        return claimed.get() or current.get()

    def charge(self, reference: str) -> Charge | None:
        """A charge, locked until the session ends, or None."""
        if reference not in self._charges:
            self.prefetch(reference=reference)
        return self._charges[reference]

    def save_charge(self, charge: Charge) -> None:
        """Insert or update a charge."""
        self._uow.execute(
            _SAVE_CHARGE, {name: getattr(charge, name) for name in _names(_CHARGE_COLUMNS)}
        )
        self._charges[charge.reference] = charge


class SqlSandboxLedger:
    """The sandbox's store, in its own short transactions on our PostgreSQL."""

    def __init__(self, engine: Engine, cards: CardVault) -> None:
        self._connect: Callable[[], Any] = engine.raw_connection
        self._cards = cards

    def vault(self, entry: VaultEntry) -> None:
        """Store a new card, sealed: one statement, committed on its own."""
        row = _sealed_row(self._cards, entry)
        with PipelinedUnitOfWork(self._connect, None) as uow:
            uow.execute(_SAVE_VAULT, row)
            uow.sync()

    @contextmanager
    def session(self, lock_key: str) -> Iterator[SqlSandboxSession]:
        """A transaction serialised (advisory lock) with other sessions of ``lock_key``;
        committed when the block ends without an error."""
        with PipelinedUnitOfWork(self._connect, None) as uow:
            uow.begin()
            uow.execute(_LOCK, {"key": f"sandbox-gateway|{lock_key}"})
            yield SqlSandboxSession(uow, self._cards)
            uow.commit()
