"""The lake: Delta tables behind one table-store port (delta-rs here, Spark's Delta on clusters)."""

from jobs.lake.port import LakeError, TableStore
from jobs.lake.store import lake_root, table_store

__all__ = ["LakeError", "TableStore", "lake_root", "table_store"]
