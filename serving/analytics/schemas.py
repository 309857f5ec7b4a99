"""Response bodies of the admin metrics endpoint (msgspec structs at the edge)."""

from __future__ import annotations

from datetime import date
from typing import Any

import msgspec

from jobs.analytics.rates import to_major
from jobs.analytics.report import Headline


class MoneyOut(msgspec.Struct, kw_only=True):
    """An amount of one currency: exact minor units and the display amount (its exponent)."""

    currency: str
    amount_minor: int
    amount: str  # major units as a decimal string, e.g. "59.00"; never a float

    @classmethod
    def of(cls, minor: int, currency: str) -> MoneyOut:
        """The amount of ``minor`` units of ``currency``."""
        return cls(currency=currency, amount_minor=minor, amount=str(to_major(minor, currency)))


class OrdersOut(msgspec.Struct, kw_only=True):
    """Orders placed, paid and cancelled (as a whole)."""

    placed: int
    paid: int
    cancelled: int


class FunnelOut(msgspec.Struct, kw_only=True):
    """Sessions at each step (each having reached the earlier ones); paid / viewed."""

    viewed: int
    carted: int
    checked_out: int
    paid: int
    conversion: float


class WindowOut(msgspec.Struct, kw_only=True):
    """The days (inclusive, UTC) and region the figures cover; null = unbounded."""

    since: date | None
    until: date | None
    region: str | None


def _money(by_currency: dict[str, int]) -> list[MoneyOut]:
    return [MoneyOut.of(v, c) for c, v in sorted(by_currency.items())]


class MetricsOut(msgspec.Struct, kw_only=True):
    """Headline metrics (money per currency; totals only through the rate table)."""

    window: WindowOut
    base_currency: str
    events: int
    customers: int
    orders: OrdersOut
    gmv: list[MoneyOut]
    gmv_total: str | None  # in base_currency; null when a currency has no rate
    revenue: list[MoneyOut]  # captured - refunded
    revenue_total: str | None
    aov: list[MoneyOut]
    cancellation_rate: float
    decline_rate: float
    funnel: FunnelOut
    fraud_alerts: int
    fraud_alert_rate: float
    missing_rates: list[str]
    # Every metric's rows by name (jobs/analytics/metrics.py documents each).
    details: dict[str, list[dict[str, Any]]]

    @classmethod
    def of(cls, h: Headline, window: WindowOut) -> MetricsOut:
        """The body of a headline."""
        return cls(
            window=window,
            base_currency=h.base_currency,
            events=h.events,
            customers=h.customers,
            orders=OrdersOut(
                placed=h.orders_placed, paid=h.orders_paid, cancelled=h.orders_cancelled
            ),
            gmv=_money(h.gmv),
            gmv_total=None if h.gmv_total is None else str(h.gmv_total),
            revenue=_money(h.revenue),
            revenue_total=None if h.revenue_total is None else str(h.revenue_total),
            aov=_money(h.aov),
            cancellation_rate=h.cancellation_rate,
            decline_rate=h.decline_rate,
            funnel=FunnelOut(**h.funnel, conversion=h.conversion),
            fraud_alerts=h.fraud_alerts,
            fraud_alert_rate=h.fraud_alert_rate,
            missing_rates=h.missing_rates,
            details=h.details,
        )
