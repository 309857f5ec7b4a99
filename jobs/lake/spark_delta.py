"""The table-store port on Spark's native Delta (``format("delta")``, ``DeltaTable.merge``).

The production adapter for Spark jobs on a cluster whose classpath has Delta's jars
(delta-spark 4.3.1 for Spark 4.1, e.g. ``--packages io.delta:delta-spark_2.13:4.3.1``) and whose
session is configured for it (``spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension``,
``spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog``). The jobs'
reads and writes (``dataframe``, ``write_dataframe``) then run on the executors; only the port's
Arrow methods (``read``, ``append``, ...) pass data through the driver, as the port defines.

Those jars cannot be obtained on the development machines (no Maven access), so this adapter
cannot run here and has no tests; ``lake_store_for`` picks it only when the session's JVM has
Delta, and otherwise returns the delta-rs store, which writes the same tables in the same
format. Keep the client code below on delta-spark's documented Python API.

Application transactions (``offsets``): Spark's Delta records one per commit, through its
idempotent-write options (``txnAppId``/``txnVersion``; a replayed version is skipped, as it
should be). Reading them back has no public Spark API, so ``offsets`` reads the log with
delta-rs (same table, same format; object-store credentials from the environment).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql import functions as sf

from jobs.lake.port import Commit, LakeError, MergeResult, TableStore
from jobs.lake.store import lake_root, table_store
from jobs.spark.delta_io import WriteMode, spark_has_delta
from souk.settings import Settings

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, DataFrameWriter, SparkSession

#: Session confs that make a DML commit (MERGE) record an application transaction.
_TXN_APP_CONF = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"


class SparkDeltaStore:
    """Delta tables under ``root`` through the session's native Delta support."""

    def __init__(
        self,
        spark: SparkSession,
        root: str,
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        self.spark = spark
        self.root = root.rstrip("/")
        # Only for delta-rs's reads of application transactions (see the module docstring).
        self.storage_options = dict(storage_options or {})

    def uri(self, table: str) -> str:
        """Where ``table`` lives."""
        return f"{self.root}/{table}"

    def _delta(self, table: str) -> DeltaTable:
        from delta.tables import DeltaTable

        if not self.exists(table):
            raise LakeError(f"lake table {table} does not exist at {self.uri(table)}")
        return DeltaTable.forPath(self.spark, self.uri(table))

    def exists(self, table: str) -> bool:
        """True if ``table`` has at least one commit."""
        from delta.tables import DeltaTable

        return bool(DeltaTable.isDeltaTable(self.spark, self.uri(table)))

    # -- DataFrames (what the Spark jobs use: no round trip through the driver) --------------

    def dataframe(self, table: str) -> DataFrame:
        """``table``'s current snapshot as a DataFrame."""
        if not self.exists(table):
            raise LakeError(f"lake table {table} does not exist at {self.uri(table)}")
        return self.spark.read.format("delta").load(self.uri(table))

    def write_dataframe(
        self,
        table: str,
        df: DataFrame,
        *,
        mode: WriteMode,
        keys: Sequence[str] = (),
        partition_by: Sequence[str] = (),
    ) -> int:
        """Overwrite ``table`` with ``df`` or MERGE it on ``keys``; return the rows written."""
        if mode == "overwrite":
            df = df.persist()  # counted and written: compute it once
            try:
                rows = df.count()
                self._writer(df, "overwrite", partition_by).option("overwriteSchema", "true").save(
                    self.uri(table)
                )
            finally:
                df.unpersist()
            return rows
        result = self._merge_frame(table, df, keys, update=True, partition_by=partition_by)
        return result.inserted + result.updated

    def _writer(self, df: DataFrame, mode: str, partition_by: Sequence[str]) -> DataFrameWriter:
        writer = df.write.format("delta").mode(mode)
        return writer.partitionBy(*partition_by) if partition_by else writer

    def _merge_frame(
        self,
        table: str,
        df: DataFrame,
        keys: Sequence[str],
        *,
        update: bool,
        partition_by: Sequence[str],
        offsets: Mapping[str, int] | None = None,
    ) -> MergeResult:
        if not keys:
            raise LakeError(f"merge into {table} needs key columns")
        if not self.exists(table):
            df = df.persist()
            try:
                rows = df.count()
                version = self._append_frame(table, df, partition_by, offsets)
            finally:
                df.unpersist()
            return MergeResult(inserted=rows, updated=0, deleted=0, version=version)
        on = " AND ".join(f"t.`{key}` = s.`{key}`" for key in keys)
        merger = self._delta(table).alias("t").merge(df.alias("s"), on)
        if update:
            merger = merger.whenMatchedUpdateAll()
        merger = merger.whenNotMatchedInsertAll()
        with self._dml_transaction(offsets):
            metrics = merger.execute().first()
        values = metrics.asDict() if metrics is not None else {}
        return MergeResult(
            inserted=int(values.get("num_inserted_rows") or 0),
            updated=int(values.get("num_updated_rows") or 0),
            deleted=int(values.get("num_deleted_rows") or 0),
            version=self.version(table),
        )

    def _append_frame(
        self,
        table: str,
        df: DataFrame,
        partition_by: Sequence[str],
        offsets: Mapping[str, int] | None,
    ) -> int:
        writer = self._writer(df, "append", partition_by)
        app = _one_transaction(offsets)
        if app is not None:
            writer = writer.option("txnAppId", app[0]).option("txnVersion", str(app[1]))
        writer.save(self.uri(table))
        return self.version(table)

    @contextlib.contextmanager
    def _dml_transaction(self, offsets: Mapping[str, int] | None) -> Iterator[None]:
        """Record ``offsets`` in the next DML commit through the session's txn confs."""
        app = _one_transaction(offsets)
        if app is None:
            yield
            return
        conf = self.spark.conf
        conf.set(_TXN_APP_CONF, app[0])
        conf.set(_TXN_VERSION_CONF, str(app[1]))
        try:
            yield
        finally:
            conf.unset(_TXN_APP_CONF)
            conf.unset(_TXN_VERSION_CONF)

    # -- the port (Arrow in and out) ---------------------------------------------------------

    def _frame(self, data: pa.Table) -> DataFrame:
        return self.spark.createDataFrame(data)

    def append(
        self,
        table: str,
        data: pa.Table,
        *,
        partition_by: Sequence[str] = (),
        offsets: Mapping[str, int] | None = None,
    ) -> int:
        """Append ``data`` (creating the table); return the new version."""
        return self._append_frame(table, self._frame(data), partition_by, offsets)

    def overwrite(self, table: str, data: pa.Table, *, partition_by: Sequence[str] = ()) -> int:
        """Replace the table's rows with ``data``; return the new version."""
        self._writer(self._frame(data), "overwrite", partition_by).option(
            "overwriteSchema", "true"
        ).save(self.uri(table))
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
        return self._merge_frame(
            table,
            self._frame(data),
            keys,
            update=update,
            partition_by=partition_by,
            offsets=offsets,
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
        if not self.exists(table):
            raise LakeError(f"lake table {table} does not exist at {self.uri(table)}")
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", str(version))
        elif as_of is not None:
            moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
            reader = reader.option("timestampAsOf", moment.astimezone(UTC).isoformat())
        frame = reader.load(self.uri(table))
        for column, op, value in partitions or ():
            frame = frame.where(_partition_filter(sf.col(column), op, value))
        if columns is not None:
            frame = frame.select(*columns)
        return frame.toArrow()

    def version(self, table: str) -> int:
        """The table's current version."""
        row = self._delta(table).history(1).select("version").first()
        if row is None:
            raise LakeError(f"lake table {table} has no history at {self.uri(table)}")
        return int(row[0])

    def history(self, table: str, limit: int | None = None) -> list[Commit]:
        """The table's commits, newest first."""
        rows = (
            self._delta(table)
            .history(limit)
            .select("version", "timestamp", "operation", "operationMetrics")
            .collect()
        )
        return [
            Commit(
                version=int(row["version"]),
                timestamp=_utc(row["timestamp"]),
                operation=str(row["operation"] or ""),
                metrics=dict(row["operationMetrics"] or {}),
            )
            for row in rows
        ]

    def offsets(self, table: str, app_ids: Sequence[str]) -> dict[str, int]:
        """The last version committed for each of ``app_ids`` (read with delta-rs)."""
        from deltalake import DeltaTable

        if not self.exists(table):
            return {}
        dt = DeltaTable(self.uri(table), storage_options=self.storage_options or None)
        found = {app: dt.transaction_version(app) for app in app_ids}
        return {app: int(v) for app, v in found.items() if v is not None}

    def file_uris(self, table: str) -> list[str]:
        """The data files of the current snapshot."""
        return list(self._delta(table).toDF().inputFiles())

    def compact(self, table: str) -> int:
        """Compact small files (OPTIMIZE); return the number of files removed."""
        row = self._delta(table).optimize().executeCompaction().select("metrics").first()
        if row is None or row["metrics"] is None:
            return 0
        return int(row["metrics"]["numFilesRemoved"] or 0)


def _one_transaction(offsets: Mapping[str, int] | None) -> tuple[str, int] | None:
    """The single (app id, version) Spark's Delta can record in one commit."""
    if not offsets:
        return None
    if len(offsets) > 1:
        raise LakeError(
            "Spark's Delta records one application transaction per commit, "
            f"got {len(offsets)}: {sorted(offsets)}"
        )
    ((app, version),) = offsets.items()
    return app, int(version)


def _partition_filter(column: Any, op: str, value: Any) -> Any:
    """A Column predicate for one delta-rs style partition filter ``(column, op, value)``."""
    if op in ("=", "=="):
        return column == value
    if op == "!=":
        return column != value
    if op == "in":
        return column.isin(list(value))
    if op == "not in":
        return ~column.isin(list(value))
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    raise LakeError(f"unsupported partition filter operator {op!r}")


def _utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (Spark hands back naive session-zone ones: UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def lake_store_for(spark: SparkSession, settings: Settings) -> TableStore:
    """Spark's native Delta when the session has it, else the delta-rs store (same tables)."""
    if spark_has_delta(spark):
        return SparkDeltaStore(spark, lake_root(settings))
    return table_store(settings)


__all__ = ["SparkDeltaStore", "lake_store_for"]
