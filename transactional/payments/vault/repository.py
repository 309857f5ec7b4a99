"""The vault's PostgreSQL adapters: named secrets (``vault_keys``) and every wrapped data key
(cards in ``sandbox_gateway_vault``, secrets in ``vault_keys``) for rotation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, text

from transactional.payments.vault.kms import WrappedKey
from transactional.payments.vault.rotation import RecordKind, WrappedRecord

# (table, key column, wrapped-key column) of each kind of record.
_TABLES: dict[RecordKind, tuple[str, str, str]] = {
    "card": ("sandbox_gateway_vault", "token", "data_key"),
    "secret": ("vault_keys", "name", "wrapped_key"),
}


@contextmanager
def _connection(bind: Engine | Connection) -> Iterator[Connection]:
    if isinstance(bind, Connection):
        yield bind  # the caller's transaction (e.g. a migration's)
    else:
        with bind.begin() as connection:
            yield connection


class SqlVaultSecrets:
    """Named vault secrets, wrapped, in ``vault_keys``."""

    def __init__(self, bind: Engine | Connection) -> None:
        self._bind = bind

    def load(self, name: str) -> WrappedKey | None:
        """The wrapped secret, or None."""
        with _connection(self._bind) as connection:
            row = connection.execute(
                text("SELECT kek_id, wrapped_key FROM vault_keys WHERE name = :name"),
                {"name": name},
            ).one_or_none()
        return None if row is None else WrappedKey(row.kek_id, bytes(row.wrapped_key))

    def add(self, name: str, wrapped: WrappedKey) -> WrappedKey:
        """Store a secret unless one exists; the stored one."""
        with _connection(self._bind) as connection:
            connection.execute(
                text(
                    "INSERT INTO vault_keys (name, kek_id, wrapped_key) "
                    "VALUES (:name, :kek, :blob) ON CONFLICT (name) DO NOTHING"
                ),
                {"name": name, "kek": wrapped.kek_id, "blob": wrapped.blob},
            )
        stored = self.load(name)
        assert stored is not None
        return stored


class SqlWrappedKeys:
    """Every wrapped data key of the vault, read and swapped in committed batches."""

    def __init__(self, bind: Engine | Connection) -> None:
        self._bind = bind

    def stale(
        self, kind: RecordKind, kek_id: str, after: str | None, limit: int
    ) -> list[WrappedRecord]:
        """Up to ``limit`` records of ``kind`` not wrapped by ``kek_id``, by ref after ``after``."""
        table, key, blob = _TABLES[kind]
        params: dict[str, Any] = {"kek": kek_id, "after": after or "", "limit": limit}
        with _connection(self._bind) as connection:
            rows = connection.execute(
                text(
                    f"SELECT {key} AS ref, kek_id, {blob} AS blob FROM {table} "
                    f"WHERE kek_id <> :kek AND {key} > :after ORDER BY {key} LIMIT :limit"
                ),
                params,
            ).all()
        return [
            WrappedRecord(kind, row.ref, WrappedKey(row.kek_id, bytes(row.blob))) for row in rows
        ]

    def replace(self, kind: RecordKind, pairs: list[tuple[WrappedRecord, WrappedKey]]) -> int:
        """Swap old wrapped keys for new ones in one transaction, each only if unchanged."""
        if not pairs:
            return 0
        table, key, blob = _TABLES[kind]
        with _connection(self._bind) as connection:
            result = connection.execute(
                text(
                    f"UPDATE {table} AS t SET {blob} = u.new_blob, kek_id = u.new_kek "
                    "FROM unnest(CAST(:refs AS text[]), CAST(:olds AS bytea[]), "
                    "CAST(:news AS bytea[]), CAST(:keks AS text[])) "
                    "AS u(ref, old_blob, new_blob, new_kek) "
                    f"WHERE t.{key} = u.ref AND t.{blob} = u.old_blob RETURNING t.{key}"
                ),
                {
                    "keks": [new.kek_id for _, new in pairs],
                    "refs": [record.ref for record, _ in pairs],
                    "olds": [record.wrapped.blob for record, _ in pairs],
                    "news": [new.blob for _, new in pairs],
                },
            )
            return len(result.all())

    def versions(self) -> dict[str, int]:
        """How many records each KEK version wraps."""
        counts: dict[str, int] = {}
        with _connection(self._bind) as connection:
            for table, _, _ in _TABLES.values():
                for kek, count in connection.execute(
                    text(f"SELECT kek_id, count(*) FROM {table} GROUP BY kek_id")
                ):
                    counts[kek] = counts.get(kek, 0) + int(count)
        return counts
