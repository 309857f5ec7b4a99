"""The table-store port: what every lake job needs from a Delta table, whatever writes it.

Two adapters implement it with the same tables and format: ``DeltaRsStore`` (delta-rs, the
local default and any machine without Spark's Delta jars) and ``SparkDeltaStore`` (Spark's
native ``format("delta")`` and MERGE, on a cluster whose classpath has Delta).

Tables are named by their path under the lake root, e.g. ``bronze/orders`` or
``gold/item_stats``. Data crosses the port as Arrow tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa


class LakeError(RuntimeError):
    """A lake operation failed (a missing table, a schema mismatch, an unreachable store)."""


@dataclass(frozen=True)
class MergeResult:
    """What one MERGE did."""

    inserted: int
    updated: int
    deleted: int
    version: int


@dataclass(frozen=True)
class Commit:
    """One entry of a table's history."""

    version: int
    timestamp: datetime
    operation: str
    metrics: Mapping[str, Any]


class TableStore(Protocol):
    """Delta tables under one root: write (append, overwrite, MERGE), read, time travel."""

    root: str

    def uri(self, table: str) -> str:
        """Where ``table`` lives (a path or an object-store URI)."""
        ...

    def exists(self, table: str) -> bool:
        """True if ``table`` has at least one commit."""
        ...

    def append(
        self,
        table: str,
        data: pa.Table,
        *,
        partition_by: Sequence[str] = (),
        offsets: Mapping[str, int] | None = None,
    ) -> int:
        """Append ``data`` (creating the table); return the new version.

        ``offsets`` (app id → version) are recorded in the same commit as Delta application
        transactions, so a writer knows exactly what it committed (see ``offsets``).
        """
        ...

    def overwrite(self, table: str, data: pa.Table, *, partition_by: Sequence[str] = ()) -> int:
        """Replace the table's rows with ``data`` (a full rebuild); return the new version."""
        ...

    def merge(
        self,
        table: str,
        data: pa.Table,
        keys: Sequence[str],
        *,
        update: bool = True,
        partition_by: Sequence[str] = (),
        offsets: Mapping[str, int] | None = None,
    ) -> MergeResult:
        """Upsert ``data`` on ``keys`` (insert new keys; update the others when ``update``).

        Creates the table from ``data`` when it does not exist. With ``update`` False the
        MERGE only inserts rows whose keys are new: an idempotent append (exactly once per
        key). ``offsets`` as in ``append``.
        """
        ...

    def read(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        version: int | None = None,
        as_of: datetime | None = None,
        partitions: Sequence[tuple[str, str, Any]] | None = None,
    ) -> pa.Table:
        """The table's rows (its current snapshot, or one version or time: time travel).

        ``partitions`` filters on partition columns, e.g. ``[("region", "=", "eu")]``.
        """
        ...

    def version(self, table: str) -> int:
        """The table's current version."""
        ...

    def history(self, table: str, limit: int | None = None) -> list[Commit]:
        """The table's commits, newest first."""
        ...

    def offsets(self, table: str, app_ids: Sequence[str]) -> dict[str, int]:
        """The last version committed for each of ``app_ids`` (absent ones are left out)."""
        ...

    def file_uris(self, table: str) -> list[str]:
        """The data files of the current snapshot (what Spark reads when it lacks Delta)."""
        ...

    def compact(self, table: str) -> int:
        """Compact small files into larger ones; return the number of files removed."""
        ...
