"""The production adapter: a ClickHouse server through clickhouse-connect (``SOUK_ANALYTICS_URL``).

Same tables, same SQL as the embedded engine: only the transport differs. The URL is
``http(s)://user:password@host:8123/database`` (the database defaults to
``SOUK_ANALYTICS_DATABASE``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from jobs.analytics.port import MAX_QUERY_SIZE, AnalyticsError, AnalyticsUnavailable


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
                settings={"max_query_size": MAX_QUERY_SIZE},
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

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        """One INSERT of ``data`` in ClickHouse's Arrow input format (the loader's batches)."""
        if not data.num_rows:
            return
        self._call("insert_arrow", table, data)

    def close(self) -> None:
        """Close the client's pool."""
        self._client.close()
