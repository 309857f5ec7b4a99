"""`make demo`'s analytics part: the loader runs while the shoppers shop, and the summary shows
the headline metrics from ClickHouse beside the purchase path's own figures.

``start_loader`` starts the loader as `souk up` does (a background process that owns the chdb
folder and serves queries on loopback; reused when one already runs for this home), so that
after ``make demo ARGS=--keep`` the notebooks find it. ``analytics_summary`` waits until the
store holds the simulated orders, then compares orders and revenue per currency with what the
demo read from PostgreSQL for the same orders. ``stop_loader`` stops it unless kept.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from jobs.analytics import connect
from jobs.analytics.port import AnalyticsReader, rows
from jobs.analytics.rates import display, rate_table
from jobs.analytics.report import headline, lines
from souk import analytics_process
from souk.settings import Settings
from transactional.shared.errors import SoukError

#: How long the summary waits for the loader to hold every simulated order and payment.
CATCH_UP_TIMEOUT_S = 90.0
_IDS_PER_QUERY = 2000  # keeps each IN list well below the endpoint's 1 MB query limit

NOTEBOOK_LINES = (
    "notebooks: `make notebooks` runs notebooks/*.ipynb against this stack and writes HTML "
    "under SOUK_HOME/notebooks/ (the stack must run: `make demo ARGS=--keep` or `souk up`)",
    "notebooks: or open them in Jupyter with this venv's python3 kernel; each starts with "
    "`from jobs.analytics import connect; db = connect()`",
)


@dataclass
class LoaderHandle:
    """The analytics loader the demo uses: who started it and where it runs."""

    settings: Settings
    started: bool  # this demo started it (and stops it unless --keep)
    status: str
    error: str | None = None


@dataclass
class AnalyticsSummary:
    """The summary's analytics lines and the invariants that failed (empty: all held)."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def start_loader(settings: Settings) -> LoaderHandle:
    """Start the analytics loader in the background (as `souk up` does) unless one runs."""
    already = analytics_process.running_pid(settings) is not None
    try:
        status = analytics_process.start(settings)
    except RuntimeError as error:  # the summary reports it; the purchase path goes on
        return LoaderHandle(settings, started=False, status="failed", error=str(error))
    return LoaderHandle(settings, started=not already, status=status)


def stop_loader(handle: LoaderHandle, *, keep: bool) -> bool:
    """Stop the loader if this demo started it and the stack is not kept; True if stopped."""
    if keep or not handle.started:
        return False
    return analytics_process.stop(handle.settings)


def _in_list(ids: list[str]) -> str:
    return ", ".join("'" + i.replace("\\", "\\\\").replace("'", "\\'") + "'" for i in ids)


def scoped_figures(
    reader: AnalyticsReader, order_ids: Collection[str]
) -> tuple[int, dict[str, int]]:
    """Orders placed and revenue (captured - refunded) per currency of these orders only."""
    placed = 0
    revenue: dict[str, int] = {}
    ids = sorted(order_ids)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = _in_list(ids[start : start + _IDS_PER_QUERY])
        placed += int(
            rows(reader, f"SELECT count() AS n FROM orders WHERE order_id IN ({chunk})")[0]["n"]
        )
        for row in rows(
            reader,
            "SELECT currency, sumIf(amount_minor, event_type = 'payment.captured') "
            "- sumIf(amount_minor, event_type = 'payment.refunded') AS net_minor "
            "FROM payments WHERE event_type IN ('payment.captured', 'payment.refunded') "
            f"AND order_id IN ({chunk}) GROUP BY currency",
        ):
            currency = str(row["currency"])
            revenue[currency] = revenue.get(currency, 0) + int(row["net_minor"])
    return placed, revenue


def compare(
    analytics: tuple[int, Mapping[str, int]], orders_placed: int, revenue: Mapping[str, int]
) -> list[str]:
    """Where the analytics figures differ from PostgreSQL's (empty: they agree)."""
    placed, mine = analytics
    found = []
    if placed != orders_placed:
        found.append(f"orders: analytics {placed:,} vs PostgreSQL {orders_placed:,}")
    shown = {c for c, v in mine.items() if v} | {c for c, v in revenue.items() if v}
    for currency in sorted(shown):
        a, b = mine.get(currency, 0), revenue.get(currency, 0)
        if a != b:
            found.append(
                f"revenue {currency}: analytics {display(a, currency)} vs PostgreSQL "
                f"{display(b, currency)}"
            )
    return found


def analytics_summary(
    handle: LoaderHandle,
    orders_placed: int,
    revenue: Mapping[str, int],
    order_ids: Collection[str],
    *,
    timeout_s: float = CATCH_UP_TIMEOUT_S,
) -> AnalyticsSummary:
    """Headline metrics from ClickHouse, and whether they agree with PostgreSQL's figures.

    ``orders_placed`` and ``revenue`` (currency → paid - refunded, minor units) are what the
    demo read from PostgreSQL for ``order_ids``; the comparison is scoped to those orders (the
    store also holds earlier runs and the shoppers' second visit). It waits up to ``timeout_s``
    for the loader to catch up.
    """
    out = AnalyticsSummary()
    if handle.error is not None:
        out.failures.append(f"the analytics loader did not start: {handle.error}")
        return out
    settings = handle.settings
    try:
        with connect(settings, embedded=False) as db:
            deadline = time.monotonic() + timeout_s
            started = time.monotonic()
            while True:
                wrong = compare(scoped_figures(db.source, order_ids), orders_placed, revenue)
                if not wrong or time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
            waited = time.monotonic() - started
            h = headline(db.source, rate_table(settings))
    except SoukError as error:
        out.failures.append(f"the analytics store did not answer: {error}")
        return out
    out.lines = ["analytics (ClickHouse): " + line for line in lines(h)]
    scope = f"the {len(order_ids):,} simulated orders"
    if wrong:
        out.failures += [f"analytics disagrees with PostgreSQL on {scope}: {w}" for w in wrong]
        out.lines.append(f"analytics DISAGREES with PostgreSQL on {scope}: " + "; ".join(wrong))
    else:
        out.lines.append(
            f"analytics agrees with PostgreSQL on {scope}: {orders_placed:,} orders, revenue "
            + (", ".join(display(v, c) for c, v in sorted(revenue.items()) if v) or "-")
            + f" (loaded {waited:.1f} s after asking)"
        )
    out.lines.append(
        'analytics: `souk analytics metrics`, `souk analytics query "SELECT ..."` '
        f"(loader: {handle.status})"
    )
    out.lines += NOTEBOOK_LINES
    return out
