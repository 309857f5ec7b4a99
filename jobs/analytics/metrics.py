"""The metrics an e-commerce team reads every day, as documented ClickHouse SQL.

Each query runs unchanged on chdb and on a ClickHouse server. Money stays in integer minor
units per currency in SQL; ``rates.py`` formats it (the currency's exponent) and converts it
(the rate table) in Python, so no query ever adds two currencies together.

Definitions (``Window`` narrows each to days and a region):

- **GMV**: the grand total (items - discount + shipping + tax) of orders placed, per region,
  currency and day; **per seller** it is the sellers' line totals (quantity x unit price -
  line discount: shipping and tax are the order's, not a seller's).
- **Revenue**: captured minus refunded payments per currency (what ``make demo`` prints from
  PostgreSQL as "paid - refunded").
- **AOV**: GMV / orders placed, per currency.
- **Funnel** (sessions, by region and channel of the session's first event): viewed a product →
  also added to a cart → also started a checkout of one of its carts → that checkout paid
  (``checkout.completed``). Each step counts sessions that reached every earlier step.
- **Cancellation rate**: orders placed that were cancelled as a whole / orders placed.
- **Decline rate**: failed authorisations / authorisation attempts (authorised + failed).
- **Top products / categories**: units sold in orders placed (category: the product's latest
  catalog snapshot; ``unknown`` if the catalog event was never loaded).
- **Cohort retention**: customers by signup week (Monday, UTC); for each week after, the share
  of the cohort that placed an order in that week (week 0 = the signup week).
- **Recommendation click-through**: per model and version, lists served and lists clicked at
  least once (``recommendation.clicked`` with the served ``recommendation_id``), and their ratio.
- **Fraud alert rate**: alerts raised / checkouts started per region; alerts per rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from jobs.analytics.port import AnalyticsReader, rows

_REGION = re.compile(r"^[a-z][a-z0-9-]{1,15}$")


@dataclass(frozen=True)
class Window:
    """Days (inclusive, UTC) and a region that narrow a metric; None = no bound."""

    since: date | None = None
    until: date | None = None
    region: str | None = None

    def __post_init__(self) -> None:
        if self.region is not None and not _REGION.match(self.region):
            raise ValueError(f"not a region code: {self.region!r}")
        if self.since and self.until and self.since > self.until:
            raise ValueError("since is after until")

    def sql(self, time_column: str, region_column: str = "region") -> str:
        """``AND …`` conditions on ``time_column`` and ``region_column`` (values validated)."""
        parts = []
        if self.since is not None:
            parts.append(f"toDate({time_column}) >= toDate('{self.since.isoformat()}')")
        if self.until is not None:
            parts.append(f"toDate({time_column}) <= toDate('{self.until.isoformat()}')")
        if self.region is not None:
            parts.append(f"{region_column} = '{self.region}'")
        return "".join(f" AND {part}" for part in parts)


ALL = Window()

# --- the queries: {w} is a Window's conditions, {limit} a row limit --------------------------

GMV_BY_DAY = """
SELECT toDate(placed_at) AS day, region, currency,
       count() AS orders, sum(grand_total_minor) AS gmv_minor
FROM orders WHERE 1 {w}
GROUP BY day, region, currency
ORDER BY day, region, currency
"""

GMV_BY_SELLER = """
SELECT seller_id, currency, uniqExact(order_id) AS orders, sum(quantity) AS units,
       sum(line_total_minor) AS gmv_minor
FROM order_lines WHERE 1 {w}
GROUP BY seller_id, currency
ORDER BY currency, gmv_minor DESC, seller_id
LIMIT {limit}
"""

AOV = """
SELECT currency, count() AS orders, sum(grand_total_minor) AS gmv_minor,
       gmv_minor / orders AS aov_minor
FROM orders WHERE 1 {w}
GROUP BY currency
ORDER BY currency
"""

REVENUE = """
SELECT currency,
       sumIf(amount_minor, event_type = 'payment.captured') AS captured_minor,
       sumIf(amount_minor, event_type = 'payment.refunded') AS refunded_minor,
       captured_minor - refunded_minor AS net_minor
FROM payments
WHERE event_type IN ('payment.captured', 'payment.refunded') {w}
GROUP BY currency
ORDER BY currency
"""

FUNNEL = """
SELECT region, channel,
       countIf(has_view) AS viewed,
       countIf(has_view AND has_cart) AS carted,
       countIf(has_view AND has_cart AND has_checkout) AS checked_out,
       countIf(has_view AND has_cart AND has_checkout AND has_paid) AS paid
FROM (
    SELECT s.session_id AS session_id, s.region AS region, s.channel AS channel,
           s.views > 0 AS has_view, s.cart_adds > 0 AS has_cart,
           k.checkouts > 0 AS has_checkout, k.paid_checkouts > 0 AS has_paid
    FROM sessions AS s
    LEFT JOIN (
        SELECT c.session_id AS session_id, uniqExact(o.checkout_id) AS checkouts,
               uniqExactIf(o.checkout_id, o.checkout_id IN (
                   SELECT checkout_id FROM checkouts WHERE event_type = 'checkout.completed'
               )) AS paid_checkouts
        FROM (SELECT DISTINCT session_id, cart_id FROM cart_events) AS c
        INNER JOIN (
            SELECT checkout_id, cart_id FROM checkouts WHERE event_type = 'checkout.started'
        ) AS o ON o.cart_id = c.cart_id
        GROUP BY c.session_id
    ) AS k ON k.session_id = s.session_id
    WHERE 1 {w}
)
GROUP BY region, channel
ORDER BY region, channel
"""

CANCELLATIONS = """
SELECT o.region AS region, count() AS orders, countIf(c.order_id != '') AS cancelled,
       cancelled / orders AS rate
FROM orders AS o
LEFT JOIN (
    SELECT DISTINCT order_id FROM order_events
    WHERE event_type = 'order.cancelled' AND empty(line_ids)
) AS c ON c.order_id = o.order_id
WHERE 1 {w}
GROUP BY region
ORDER BY region
"""

DECLINES = """
SELECT region,
       countIf(event_type = 'payment.failed' AND stage = 'authorization') AS declined,
       countIf(event_type = 'payment.authorized') + declined AS attempts,
       if(attempts = 0, 0, declined / attempts) AS rate
FROM payments
WHERE event_type IN ('payment.authorized', 'payment.failed') {w}
GROUP BY region
ORDER BY region
"""

TOP_PRODUCTS = """
SELECT product_id, sum(quantity) AS units, uniqExact(order_id) AS orders
FROM order_lines WHERE 1 {w}
GROUP BY product_id
ORDER BY units DESC, product_id
LIMIT {limit}
"""

TOP_CATEGORIES = """
SELECT if(p.category_id = '', 'unknown', p.category_id) AS category,
       sum(l.quantity) AS units, uniqExact(l.order_id) AS orders
FROM order_lines AS l
LEFT JOIN (
    SELECT product_id, argMax(category_id, product_version) AS category_id
    FROM products GROUP BY product_id
) AS p ON p.product_id = l.product_id
WHERE 1 {w}
GROUP BY category
ORDER BY units DESC, category
LIMIT {limit}
"""

COHORTS = """
SELECT c.cohort_week AS cohort_week, z.size AS cohort_size,
       intDiv(dateDiff('day', c.cohort_week, a.week), 7) AS week_offset,
       uniqExact(c.customer_id) AS active, active / cohort_size AS retention
FROM (
    SELECT customer_id, toMonday(min(registered_at)) AS cohort_week
    FROM customers WHERE 1 {w} GROUP BY customer_id
) AS c
INNER JOIN (SELECT DISTINCT customer_id, toMonday(placed_at) AS week FROM orders) AS a
    ON a.customer_id = c.customer_id
INNER JOIN (
    SELECT cohort_week, count() AS size FROM (
        SELECT customer_id, toMonday(min(registered_at)) AS cohort_week
        FROM customers WHERE 1 {w} GROUP BY customer_id
    ) GROUP BY cohort_week
) AS z ON z.cohort_week = c.cohort_week
WHERE a.week >= c.cohort_week
GROUP BY cohort_week, cohort_size, week_offset
ORDER BY cohort_week, week_offset
"""

RECOMMENDATION_CTR = """
SELECT ifNull(model, '') AS model, ifNull(model_version, '') AS model_version,
       uniqExact(recommendation_id) AS served,
       uniqExactIf(recommendation_id, recommendation_id IN (
           SELECT recommendation_id FROM behaviour WHERE event_type = 'recommendation.clicked'
       )) AS clicked,
       if(served = 0, 0, clicked / served) AS ctr
FROM behaviour
WHERE event_type = 'recommendation.served' {w}
GROUP BY model, model_version
ORDER BY model, model_version
"""

FRAUD_BY_REGION = """
SELECT s.region AS region, s.checkouts AS checkouts, a.alerts AS alerts,
       if(checkouts = 0, 0, alerts / checkouts) AS rate
FROM (
    SELECT toString(region) AS region, count() AS checkouts FROM checkouts
    WHERE event_type = 'checkout.started' {w} GROUP BY region
) AS s
LEFT JOIN (
    SELECT toString(region) AS region, count() AS alerts FROM fraud_alerts
    WHERE 1 {w} GROUP BY region
) AS a ON a.region = s.region
ORDER BY region
"""

FRAUD_BY_RULE = """
SELECT arrayJoin(rules) AS rule, count() AS alerts
FROM fraud_alerts WHERE 1 {w}
GROUP BY rule
ORDER BY alerts DESC, rule
"""

ORDER_COUNTS = """
SELECT
    (SELECT count() FROM orders WHERE 1 {w_orders}) AS placed,
    (SELECT uniqExact(order_id) FROM order_events
     WHERE event_type = 'order.paid' {w_events}) AS paid,
    (SELECT uniqExact(order_id) FROM order_events
     WHERE event_type = 'order.cancelled' AND empty(line_ids) {w_events}) AS cancelled,
    (SELECT count() FROM customers WHERE 1 {w_customers}) AS customers,
    (SELECT count() FROM events WHERE 1 {w_all}) AS events
"""

#: Each metric: its SQL, the time column and region column its Window filters on.
METRICS: dict[str, tuple[str, str, str]] = {
    "gmv_by_day": (GMV_BY_DAY, "placed_at", "region"),
    "gmv_by_seller": (GMV_BY_SELLER, "placed_at", "region"),
    "aov": (AOV, "placed_at", "region"),
    "revenue": (REVENUE, "occurred_at", "region"),
    "funnel": (FUNNEL, "s.started_at", "s.region"),
    "cancellations": (CANCELLATIONS, "o.placed_at", "o.region"),
    "declines": (DECLINES, "occurred_at", "region"),
    "top_products": (TOP_PRODUCTS, "placed_at", "region"),
    "top_categories": (TOP_CATEGORIES, "l.placed_at", "l.region"),
    "cohorts": (COHORTS, "registered_at", "region"),
    "recommendation_ctr": (RECOMMENDATION_CTR, "occurred_at", "region"),
    "fraud_by_region": (FRAUD_BY_REGION, "occurred_at", "region"),
    "fraud_by_rule": (FRAUD_BY_RULE, "occurred_at", "region"),
}


def sql_of(name: str, window: Window = ALL, limit: int = 10) -> str:
    """The SQL of metric ``name`` for ``window`` (what ``souk analytics query`` can run too)."""
    if name == "order_counts":
        return ORDER_COUNTS.format(
            w_orders=window.sql("placed_at"),
            w_events=window.sql("occurred_at"),
            w_customers=window.sql("registered_at"),
            w_all=window.sql("occurred_at"),
        )
    template, time_column, region_column = METRICS[name]
    return template.format(w=window.sql(time_column, region_column), limit=int(limit))


def metric(
    reader: AnalyticsReader, name: str, window: Window = ALL, limit: int = 10
) -> list[dict[str, Any]]:
    """The rows of metric ``name`` (see the module's definitions)."""
    return rows(reader, sql_of(name, window, limit))


#: The metrics a headline report shows, in order.
NAMES: tuple[str, ...] = ("order_counts", *METRICS)


def all_metrics(
    reader: AnalyticsReader, window: Window = ALL, limit: int = 10
) -> dict[str, list[dict[str, Any]]]:
    """Every metric's rows by name."""
    run: Callable[[str], list[dict[str, Any]]] = lambda name: metric(reader, name, window, limit)  # noqa: E731
    return {name: run(name) for name in NAMES}
