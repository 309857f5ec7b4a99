"""The headline figures: what `souk analytics metrics`, the admin API and `make demo` show."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from jobs.analytics.metrics import ALL, Window, all_metrics
from jobs.analytics.port import AnalyticsReader
from jobs.analytics.rates import RateTable, display


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


@dataclass
class Headline:
    """Headline metrics over a window; money in minor units per currency."""

    base_currency: str
    events: int = 0
    customers: int = 0
    orders_placed: int = 0
    orders_paid: int = 0
    orders_cancelled: int = 0
    orders_by_currency: dict[str, int] = field(default_factory=dict)
    gmv: dict[str, int] = field(default_factory=dict)
    gmv_total: Decimal | None = None  # in base_currency; None if a currency has no rate
    revenue: dict[str, int] = field(default_factory=dict)  # captured - refunded
    revenue_total: Decimal | None = None
    aov: dict[str, int] = field(default_factory=dict)  # rounded to the minor unit
    cancellation_rate: float = 0.0
    decline_rate: float = 0.0
    funnel: dict[str, int] = field(default_factory=dict)
    conversion: float = 0.0  # paid sessions / sessions that viewed a product
    fraud_alerts: int = 0
    fraud_alert_rate: float = 0.0
    missing_rates: list[str] = field(default_factory=list)
    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def headline(reader: AnalyticsReader, rates: RateTable, window: Window = ALL) -> Headline:
    """Every metric over ``window``, summarised (the rows stay in ``details``)."""
    details = all_metrics(reader, window)
    h = Headline(rates.base, details=details)
    counts = details["order_counts"][0] if details["order_counts"] else {}
    h.events = int(counts.get("events", 0))
    h.customers = int(counts.get("customers", 0))
    h.orders_placed = int(counts.get("placed", 0))
    h.orders_paid = int(counts.get("paid", 0))
    h.orders_cancelled = int(counts.get("cancelled", 0))
    for row in details["aov"]:
        h.orders_by_currency[row["currency"]] = int(row["orders"])
        h.gmv[row["currency"]] = int(row["gmv_minor"])
        h.aov[row["currency"]] = int(
            (Decimal(int(row["gmv_minor"])) / int(row["orders"])).to_integral_value()
        )
    h.revenue = {row["currency"]: int(row["net_minor"]) for row in details["revenue"]}
    h.missing_rates = rates.missing(set(h.gmv) | set(h.revenue))
    h.gmv_total = rates.total(h.gmv)
    h.revenue_total = rates.total(h.revenue)
    cancels = details["cancellations"]
    h.cancellation_rate = _ratio(
        sum(r["cancelled"] for r in cancels), sum(r["orders"] for r in cancels)
    )
    declines = details["declines"]
    h.decline_rate = _ratio(
        sum(r["declined"] for r in declines), sum(r["attempts"] for r in declines)
    )
    for stage in ("viewed", "carted", "checked_out", "paid"):
        h.funnel[stage] = sum(int(r[stage]) for r in details["funnel"])
    h.conversion = _ratio(h.funnel["paid"], h.funnel["viewed"])
    fraud = details["fraud_by_region"]
    h.fraud_alerts = sum(int(r["alerts"]) for r in fraud)
    h.fraud_alert_rate = _ratio(h.fraud_alerts, sum(int(r["checkouts"]) for r in fraud))
    return h


def _money(by_currency: Mapping[str, int]) -> str:
    return ", ".join(display(v, c) for c, v in sorted(by_currency.items())) or "-"


def _total(value: Decimal | None, base: str, missing: list[str]) -> str:
    if value is None:
        return f"no total (no rate for {', '.join(missing)})"
    return f"{value:,.2f} {base}"


def lines(h: Headline) -> list[str]:
    """The headline as text lines (the CLI's table and the demo's summary read these)."""
    f = h.funnel
    top = h.details.get("top_products", [])[:3]
    ctr = h.details.get("recommendation_ctr", [])
    return [
        f"events loaded: {h.events:,}; customers registered: {h.customers:,}",
        f"orders placed {h.orders_placed:,}, paid {h.orders_paid:,}, "
        f"cancelled {h.orders_cancelled:,}",
        f"GMV: {_money(h.gmv)} (total {_total(h.gmv_total, h.base_currency, h.missing_rates)})",
        f"revenue (paid - refunded): {_money(h.revenue)} "
        f"(total {_total(h.revenue_total, h.base_currency, h.missing_rates)})",
        f"average order value: {_money(h.aov)}",
        f"cancellation rate {h.cancellation_rate:.1%}, decline rate {h.decline_rate:.1%}",
        f"funnel (sessions): viewed {f.get('viewed', 0):,} → cart {f.get('carted', 0):,} → "
        f"checkout {f.get('checked_out', 0):,} → paid {f.get('paid', 0):,} "
        f"({h.conversion:.1%})",
        "top products: "
        + (", ".join(f"{r['product_id']} ({r['units']} units)" for r in top) or "-"),
        "recommendation CTR: "
        + (
            ", ".join(
                f"{r['model']} {r['model_version'] or '-'} {r['ctr']:.1%} of {r['served']:,}"
                for r in ctr
            )
            or "-"
        ),
        f"fraud alerts {h.fraud_alerts:,} ({h.fraud_alert_rate:.1%} of checkouts)",
    ]


def disagreements(h: Headline, orders_placed: int, revenue: Mapping[str, int]) -> list[str]:
    """Where ClickHouse differs from the purchase path's own figures (empty: they agree)."""
    found = []
    if h.orders_placed != orders_placed:
        found.append(f"orders: analytics {h.orders_placed} vs PostgreSQL {orders_placed}")
    for currency in sorted(set(h.revenue) | {c for c, v in revenue.items() if v}):
        mine, theirs = h.revenue.get(currency, 0), revenue.get(currency, 0)
        if mine != theirs:
            found.append(
                f"revenue {currency}: analytics {display(mine, currency)} vs PostgreSQL "
                f"{display(theirs, currency)}"
            )
    return found
