"""The analytics store's ports: what the loader writes through and what readers query.

Every read is Arrow (``pyarrow.Table``): the embedded engine and clickhouse-connect both speak
it natively, so rows come back with the same Python types whichever adapter answers.
"""

from __future__ import annotations

from typing import Any, Protocol

import pyarrow as pa

from transactional.shared.errors import SoukError, StoreUnavailable

#: Both adapters raise ClickHouse's ``max_query_size`` (256 KiB) to this: the loader's duplicate
#: probe carries a whole batch's event ids in one query.
MAX_QUERY_SIZE = 16 * 1024 * 1024


class AnalyticsError(SoukError):
    """A query the analytics engine refused (bad SQL, unknown table...): the caller's fault."""


class AnalyticsUnavailable(StoreUnavailable):
    """No analytics store answers (no loader running, server down): retry later."""


class AnalyticsReader(Protocol):
    """Read access to the analytics tables: what notebooks, the CLI and the API use."""

    def arrow(self, sql: str) -> pa.Table:
        """The result of one SELECT as an Arrow table."""
        ...

    def close(self) -> None:
        """Release the connection (idempotent)."""
        ...


class AnalyticsStore(AnalyticsReader, Protocol):
    """Read and write access: what the loader (the store's one writer) uses."""

    def execute(self, sql: str) -> None:
        """Run one statement that returns nothing (DDL, DELETE)."""
        ...

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        """Insert ``data`` into ``table`` as one INSERT, columns by name (Arrow on the wire)."""
        ...


def rows(reader: AnalyticsReader, sql: str) -> list[dict[str, Any]]:
    """The result of one SELECT as a list of dicts."""
    result: list[dict[str, Any]] = reader.arrow(sql).to_pylist()
    return result


def dataframe(reader: AnalyticsReader, sql: str) -> Any:
    """The result of one SELECT as a pandas DataFrame (for notebooks)."""
    return reader.arrow(sql).to_pandas()
