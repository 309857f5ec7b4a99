"""Spark reads and writes of the lake's Delta tables, whichever table store holds them.

Without Delta's jars (this machine; any cluster lacking them) Spark reads a table's current
snapshot from delta-rs's list of its data files, never the folder (which still holds the files
that later commits removed), typed by the table's Delta schema (partition columns keep their
types; columns that older files lack read as null). It writes by collecting the result as Arrow
on the driver and committing it through the store (MERGE or overwrite): fine for the lake's
silver and gold tables here, which are small; a table larger than the driver needs
``SparkDeltaStore``, where both directions run natively on the executors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from jobs.lake.port import LakeError, TableStore

if TYPE_CHECKING:
    from deltalake import DeltaTable
    from pyspark.sql import DataFrame, SparkSession

    from jobs.lake.spark_delta import SparkDeltaStore

#: The JVM class that tells Spark's Delta (delta-spark's jars) is on the classpath.
DELTA_CLASS = "io.delta.tables.DeltaTable"

WriteMode = Literal["merge", "overwrite"]


def spark_has_delta(spark: SparkSession) -> bool:
    """True when the session's JVM can load Delta's ``io.delta.tables.DeltaTable``."""
    from py4j.protocol import Py4JError

    try:
        jvm = spark.sparkContext._jvm
    except Exception:  # a Spark Connect session has no local JVM to ask
        return False
    if jvm is None:
        return False
    try:
        # Spark's class loader sees --jars/--packages; the gateway thread's default may not.
        jvm.org.apache.spark.util.Utils.classForName(DELTA_CLASS, False, False)
    except Py4JError:
        return False
    return True


def _native(store: TableStore) -> SparkDeltaStore | None:
    """``store`` when it is Spark's own Delta (reads and writes stay on the executors)."""
    from jobs.lake.spark_delta import SparkDeltaStore

    return store if isinstance(store, SparkDeltaStore) else None


def _delta_table(store: TableStore, table: str) -> DeltaTable:
    """delta-rs's handle of ``table``'s current snapshot (one log replay: files and schema)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    options = getattr(store, "storage_options", None) or None
    try:
        return DeltaTable(store.uri(table), storage_options=options)
    except TableNotFoundError:
        raise LakeError(f"lake table {table} does not exist at {store.uri(table)}") from None


def delta_schema(store: TableStore, table: str) -> pa.Schema:
    """The Arrow schema of ``table``'s current Delta snapshot."""
    return pa.schema(_delta_table(store, table).schema().to_arrow())


def read_table(spark: SparkSession, store: TableStore, table: str) -> DataFrame:
    """``table``'s current snapshot as a DataFrame (an empty one, typed, when it has no rows)."""
    native = _native(store)
    if native is not None:
        return native.dataframe(table)
    from pyspark.sql.pandas.types import from_arrow_schema

    snapshot = _delta_table(store, table)
    arrow_schema = pa.schema(snapshot.schema().to_arrow())
    # Delta's timestamp_ntz is Arrow's zone-less timestamp: keep it zone-less in Spark too.
    schema = from_arrow_schema(arrow_schema, prefer_timestamp_ntz=True)
    files = list(snapshot.file_uris())
    if not files:
        # Spark cannot read zero files (it would have no schema): the Delta schema says it.
        return spark.createDataFrame([], schema)
    frame = (
        spark.read.schema(schema)
        # basePath: partition values come from the files' folders (event_date=.../region=...).
        .option("basePath", store.uri(table))
        .parquet(*files)
    )
    return frame.select(*arrow_schema.names)  # Spark moves partition columns last


def write_table(
    store: TableStore,
    table: str,
    df: DataFrame,
    *,
    mode: WriteMode,
    keys: Sequence[str] = (),
    partition_by: Sequence[str] = (),
) -> int:
    """Write ``df`` into ``table`` (MERGE on ``keys`` or overwrite); return the rows written."""
    if mode not in ("merge", "overwrite"):
        raise LakeError(f"write mode must be merge or overwrite, got {mode!r}")
    if mode == "merge" and not keys:
        raise LakeError(f"merge into {table} needs key columns")
    native = _native(store)
    if native is not None:
        return native.write_dataframe(table, df, mode=mode, keys=keys, partition_by=partition_by)
    data = df.toArrow()
    if mode == "overwrite":
        store.overwrite(table, data, partition_by=partition_by)
    else:
        store.merge(table, data, keys, partition_by=partition_by)
    return int(data.num_rows)


__all__ = ["delta_schema", "read_table", "spark_has_delta", "write_table"]
