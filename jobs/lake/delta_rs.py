"""The table-store port on delta-rs (the ``deltalake`` package): real Delta tables, no JVM.

Local paths and object stores alike (``s3://``, ``gs://``, ``az://``; credentials from the
environment, as delta-rs reads them). Concurrent writers are safe on a local disk and on
stores with conditional writes; the lake's writers (the archiver, the jobs) each own their
tables anyway.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import TableNotFoundError

from jobs.lake.port import Commit, LakeError, MergeResult


class DeltaRsStore:
    """Delta tables under ``root`` through delta-rs."""

    def __init__(self, root: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.root = root.rstrip("/")
        self.storage_options = dict(storage_options or {})

    def uri(self, table: str) -> str:
        """Where ``table`` lives."""
        return f"{self.root}/{table}"

    def _table(self, table: str, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(
                self.uri(table), version=version, storage_options=self.storage_options or None
            )
        except TableNotFoundError:
            raise LakeError(f"lake table {table} does not exist at {self.uri(table)}") from None

    def exists(self, table: str) -> bool:
        """True if ``table`` has at least one commit."""
        return DeltaTable.is_deltatable(self.uri(table), self.storage_options or None)

    def _prepare(self, table: str) -> None:
        if "://" not in self.root:
            Path(self.uri(table)).mkdir(parents=True, exist_ok=True)

    def append(
        self,
        table: str,
        data: pa.Table,
        *,
        partition_by: Sequence[str] = (),
        offsets: Mapping[str, int] | None = None,
    ) -> int:
        """Append ``data`` (creating the table); return the new version."""
        self._prepare(table)
        write_deltalake(
            self.uri(table),
            data,
            mode="append",
            partition_by=list(partition_by) or None,
            storage_options=self.storage_options or None,
            commit_properties=_commit(offsets),
        )
        return self.version(table)

    def overwrite(self, table: str, data: pa.Table, *, partition_by: Sequence[str] = ()) -> int:
        """Replace the table's rows with ``data``; return the new version."""
        self._prepare(table)
        write_deltalake(
            self.uri(table),
            data,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=list(partition_by) or None,
            storage_options=self.storage_options or None,
        )
        return self.version(table)

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
        """Upsert ``data`` on ``keys``; create the table from it when missing."""
        if not keys:
            raise LakeError(f"merge into {table} needs key columns")
        if not self.exists(table):
            version = self.append(table, data, partition_by=partition_by, offsets=offsets)
            return MergeResult(inserted=data.num_rows, updated=0, deleted=0, version=version)
        # Partition columns in the predicate let delta-rs skip the partitions the batch
        # does not touch (a key is unique within its partition: partition columns are keys).
        on = " AND ".join(f"t.`{key}` = s.`{key}`" for key in keys)
        merger = self._table(table).merge(
            data,
            predicate=on,
            source_alias="s",
            target_alias="t",
            commit_properties=_commit(offsets),
        )
        if update:
            merger = merger.when_matched_update_all()
        metrics = merger.when_not_matched_insert_all().execute()
        return MergeResult(
            inserted=int(metrics.get("num_target_rows_inserted", 0)),
            updated=int(metrics.get("num_target_rows_updated", 0)),
            deleted=int(metrics.get("num_target_rows_deleted", 0)),
            version=self.version(table),
        )

    def read(
        self,
        table: str,
        *,
        columns: Sequence[str] | None = None,
        version: int | None = None,
        as_of: datetime | None = None,
        partitions: Sequence[tuple[str, str, Any]] | None = None,
    ) -> pa.Table:
        """The table's rows, now or at one version or time."""
        dt = self._table(table, version)
        if as_of is not None:
            dt.load_as_version(as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
        return dt.to_pyarrow_table(
            columns=list(columns) if columns is not None else None,
            partitions=list(partitions) if partitions else None,
        )

    def version(self, table: str) -> int:
        """The table's current version."""
        return int(self._table(table).version())

    def history(self, table: str, limit: int | None = None) -> list[Commit]:
        """The table's commits, newest first."""
        return [
            Commit(
                version=int(entry.get("version", -1)),
                timestamp=datetime.fromtimestamp(int(entry["timestamp"]) / 1000, UTC),
                operation=str(entry.get("operation", "")),
                metrics=dict(entry.get("operationMetrics") or {}),
            )
            for entry in self._table(table).history(limit)
        ]

    def offsets(self, table: str, app_ids: Sequence[str]) -> dict[str, int]:
        """The last version committed for each of ``app_ids``."""
        if not self.exists(table):
            return {}
        dt = self._table(table)
        found = {app: dt.transaction_version(app) for app in app_ids}
        return {app: int(v) for app, v in found.items() if v is not None}

    def file_uris(self, table: str) -> list[str]:
        """The data files of the current snapshot."""
        return list(self._table(table).file_uris())

    def compact(self, table: str) -> int:
        """Compact small files; return the number of files removed."""
        metrics = self._table(table).optimize.compact()
        return int(metrics.get("numFilesRemoved", 0))


def _commit(offsets: Mapping[str, int] | None) -> CommitProperties | None:
    if not offsets:
        return None
    return CommitProperties(
        app_transactions=[Transaction(app, int(version)) for app, version in offsets.items()]
    )
