"""What `make demo` prints from the analytics store, beside its purchase-path figures."""

from __future__ import annotations

from collections.abc import Mapping

from jobs.analytics import connect
from jobs.analytics.rates import rate_table
from jobs.analytics.report import disagreements, headline, lines
from souk.settings import Settings


def demo_lines(
    settings: Settings,
    orders_placed: int | None = None,
    revenue: Mapping[str, int] | None = None,
) -> list[str]:
    """The headline metrics from ClickHouse; with the demo's own orders and revenue per
    currency (minor units), a line saying whether both agree; how to open the notebooks."""
    with connect(settings) as db:
        h = headline(db.source, rate_table(settings))
    out = ["analytics (ClickHouse): " + line for line in lines(h)]
    if orders_placed is not None and revenue is not None:
        wrong = disagreements(h, orders_placed, revenue)
        out.append(
            "analytics agrees with PostgreSQL (orders, revenue per currency)"
            if not wrong
            else "analytics DISAGREES with PostgreSQL: " + "; ".join(wrong)
        )
    out.append(
        'analytics: query it with `souk analytics query "SELECT ..."`; in Python '
        "`from jobs.analytics import connect; connect().df(sql)`"
    )
    return out
