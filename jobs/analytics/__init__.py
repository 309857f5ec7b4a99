"""Analytics: the event bus flattened into ClickHouse tables, and the metrics read from them.

How readers reach the data (the single-owner design): chdb, the embedded engine, lets one
process own a data folder. Locally that process is the loader (`souk analytics load`, started
by `souk up`): it writes the tables *and* answers read-only queries on a loopback HTTP
endpoint with ClickHouse's HTTP-interface semantics (``jobs.analytics.endpoint``). Readers
never open the folder while it runs; they go through ``connect()``, which picks:

1. ``SOUK_ANALYTICS_URL`` set → the ClickHouse server, through clickhouse-connect;
2. else this home's running loader → its endpoint (notebooks work while the stack runs);
3. else (nothing running) → the chdb folder itself, opened by this process.

All three answer the same SQL with Arrow tables. An analyst's first cell::

    from jobs.analytics import connect
    db = connect()                         # or connect(Settings(home=...))
    db.df("SELECT region, count() FROM orders GROUP BY region")
    db.metric("gmv_by_day")                # the documented metrics (jobs.analytics.metrics)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs.analytics.port import AnalyticsReader, AnalyticsStore, AnalyticsUnavailable
from souk.settings import Settings, get_settings

__all__ = ["Analytics", "connect", "data_dir", "open_store"]


def data_dir(settings: Settings) -> Path:
    """The chdb data folder of this home."""
    return settings.state_dir / "analytics" / "chdb"


def open_store(settings: Settings) -> AnalyticsStore:
    """The writable store: ClickHouse at ``SOUK_ANALYTICS_URL``, else this home's chdb folder."""
    if settings.analytics_url:
        from jobs.analytics.clickhouse_store import ClickHouseStore

        return ClickHouseStore(
            settings.analytics_url,
            settings.analytics_database,
            timeout_s=settings.analytics_query_timeout_s,
        )
    from jobs.analytics.chdb_store import ChdbStore

    return ChdbStore(data_dir(settings), settings.analytics_database)


def reader(settings: Settings, *, embedded: bool = True) -> AnalyticsReader:
    """A reader: the server, else the running loader's endpoint, else (``embedded``) the folder."""
    if settings.analytics_url:
        return open_store(settings)
    from jobs.analytics.endpoint import EndpointStore, running_endpoint

    url = running_endpoint(settings)
    if url is not None:
        return EndpointStore(url, timeout_s=settings.analytics_query_timeout_s)
    if not embedded:
        raise AnalyticsUnavailable(
            f"no analytics loader runs for {settings.state_dir}: start the stack (`souk up`) "
            "or `souk analytics load`"
        )
    return open_store(settings)


class Analytics:
    """What notebooks and the CLI hold: SQL in, Arrow / pandas / rows out, and the metrics."""

    def __init__(self, source: AnalyticsReader, settings: Settings) -> None:
        self.source = source
        self.settings = settings

    def arrow(self, sql: str) -> pa.Table:
        """The result of one SELECT as an Arrow table."""
        return self.source.arrow(sql)

    def df(self, sql: str) -> Any:
        """The result of one SELECT as a pandas DataFrame."""
        return self.source.arrow(sql).to_pandas()

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The result of one SELECT as a list of dicts."""
        result: list[dict[str, Any]] = self.source.arrow(sql).to_pylist()
        return result

    def metric(self, name: str, **window: Any) -> Any:
        """One documented metric as a DataFrame (``since``, ``until``, ``region``, ``limit``)."""
        from jobs.analytics.metrics import Window, sql_of

        limit = int(window.pop("limit", 10))
        return self.df(sql_of(name, Window(**window), limit))

    def headline(self, **window: Any) -> Any:
        """The headline figures (``jobs.analytics.report.Headline``)."""
        from jobs.analytics.metrics import Window
        from jobs.analytics.rates import rate_table
        from jobs.analytics.report import headline

        return headline(self.source, rate_table(self.settings), Window(**window))

    def close(self) -> None:
        """Release the connection."""
        self.source.close()

    def __enter__(self) -> Analytics:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(settings: Settings | None = None, *, embedded: bool = True) -> Analytics:
    """The analytics store for this home or ``SOUK_ANALYTICS_URL`` (see the module doc)."""
    settings = settings or get_settings()
    return Analytics(reader(settings, embedded=embedded), settings)
