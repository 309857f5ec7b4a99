"""The production adapter: a ClickHouse server through clickhouse-connect (``SOUK_ANALYTICS_URL``).

Same tables, same SQL as the embedded engine: only the transport differs. The URL is
``http(s)://user:password@host:8123/database`` (the database defaults to
``SOUK_ANALYTICS_DATABASE``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from jobs.analytics.port import AnalyticsError, AnalyticsUnavailable


class ClickHouseStore:
    """AnalyticsStore on a ClickHouse server."""

    def __init__(self, url: str, database: str = "souk", *, timeout_s: float = 30.0) -> None:
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import OperationalError

        parts = urlsplit(url)
        self.database = parts.path.strip("/") or database
        try:
            self._client: Any = clickhouse_connect.get_client(
                host=parts.hostname or "localhost",
                port=parts.port or (8443 if parts.scheme == "https" else 8123),
                username=unquote(parts.username or "default"),
                password=unquote(parts.password or ""),
                secure=parts.scheme == "https",
                database=self.database,
                send_receive_timeout=timeout_s,
            )
        except OperationalError as error:
            raise AnalyticsUnavailable(f"ClickHouse at {parts.hostname}: {error}") from error

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        try:
            return getattr(self._client, method)(*args, **kwargs)
        except OperationalError as error:
            raise AnalyticsUnavailable(f"ClickHouse: {error}") from error
        except DatabaseError as error:
            raise AnalyticsError(str(error).strip().splitlines()[0][:500]) from error

    def arrow(self, sql: str) -> pa.Table:
        """The result of one SELECT as an Arrow table (strings as strings, like chdb)."""
        table: pa.Table = self._call("query_arrow", sql, use_strings=True)
        return table

    def execute(self, sql: str) -> None:
        """Run one statement that returns nothing."""
        self._call("command", sql)

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """One INSERT of ``rows`` (one block: all or nothing)."""
        if not rows:
            return
        columns = list(rows[0])
        self._call(
            "insert", table, [[row[c] for c in columns] for row in rows], column_names=columns
        )

    def close(self) -> None:
        """Close the client's pool."""
        self._client.close()
