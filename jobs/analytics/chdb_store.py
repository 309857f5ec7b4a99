"""The embedded adapter: chdb (ClickHouse's engine in-process) on a local data folder.

One process owns a folder (a second gets "Cannot lock file"), and chdb allows one open
session per process: the loader owns it and answers everyone else over its loopback
endpoint (``jobs.analytics.endpoint``). Calls are serialised by a lock (the session is not
thread-safe; the loader and the endpoint's threads share it).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs.analytics.port import MAX_QUERY_SIZE, AnalyticsError


def arrow_of(data: bytes) -> pa.Table:
    """An ArrowStream answer as a table (no bytes: an empty result)."""
    if not data:
        return pa.table({})
    return pa.ipc.open_stream(data).read_all()


class ChdbStore:
    """AnalyticsStore on a chdb session over ``path``, in database ``database``."""

    def __init__(self, path: Path, database: str = "souk") -> None:
        from chdb import session as chdb_session

        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.database = database
        self._lock = threading.Lock()
        try:
            self._session: Any = chdb_session.Session(str(path))  # type: ignore[no-untyped-call]
        except Exception as error:  # another process owns the folder, or a session is open
            raise AnalyticsError(f"cannot open the analytics folder {path}: {error}") from error
        self._query(f"CREATE DATABASE IF NOT EXISTS {database}")
        self._query(f"USE {database}")
        self._query(f"SET max_query_size = {MAX_QUERY_SIZE}")

    def _query(self, sql: str, fmt: str = "CSV") -> bytes:
        with self._lock:
            if self._session is None:
                raise AnalyticsError("the analytics store is closed")
            try:
                result = self._session.query(sql, fmt)
            except Exception as error:  # chdb raises its own ChdbError for any bad SQL
                raise AnalyticsError(str(error).strip().splitlines()[0][:500]) from error
        data: bytes = result.bytes()
        return data

    def raw(self, sql: str, fmt: str) -> bytes:
        """The answer in any ClickHouse output format (what the loopback endpoint sends)."""
        return self._query(sql, fmt)

    def arrow(self, sql: str) -> pa.Table:
        """The result of one SELECT as an Arrow table."""
        return arrow_of(self._query(sql, "ArrowStream"))

    def execute(self, sql: str) -> None:
        """Run one statement that returns nothing."""
        self._query(sql)

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        """One INSERT of ``data`` through chdb's ``Python()`` table function (no text format)."""
        if not data.num_rows:
            return
        names = ", ".join(f"`{name}`" for name in data.column_names)
        # Python() finds the table by this variable's name in the calling frames.
        souk_arrow_batch = data  # noqa: F841
        self._query(f"INSERT INTO {table} ({names}) SELECT {names} FROM Python(souk_arrow_batch)")

    def close(self) -> None:
        """Close the session (the folder can then be opened by another process)."""
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
