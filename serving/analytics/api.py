"""HTTP controller of the admin metrics: the same figures as `souk analytics metrics`."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from litestar import Controller, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import QueryParameter

from jobs.analytics.metrics import Window
from serving.analytics.schemas import MetricsOut, WindowOut
from serving.analytics.service import AnalyticsService
from transactional.shared.auth import Principal
from transactional.shared.errors import InvalidRequest
from transactional.shared.http import Inject

_EXAMPLE = {
    "window": {"since": "2026-12-01", "until": "2026-12-07", "region": None},
    "base_currency": "EUR",
    "events": 48210,
    "customers": 412,
    "orders": {"placed": 950, "paid": 921, "cancelled": 12},
    "gmv": [
        {"currency": "EUR", "amount_minor": 5412300, "amount": "54123.00"},
        {"currency": "USD", "amount_minor": 3120050, "amount": "31200.50"},
    ],
    "gmv_total": "82827.46",
    "revenue": [
        {"currency": "EUR", "amount_minor": 5301100, "amount": "53011.00"},
        {"currency": "USD", "amount_minor": 3098050, "amount": "30980.50"},
    ],
    "revenue_total": "81513.06",
    "aov": [
        {"currency": "EUR", "amount_minor": 9850, "amount": "98.50"},
        {"currency": "USD", "amount_minor": 7722, "amount": "77.22"},
    ],
    "cancellation_rate": 0.0126,
    "decline_rate": 0.031,
    "funnel": {
        "viewed": 3900,
        "carted": 1510,
        "checked_out": 990,
        "paid": 921,
        "conversion": 0.2362,
    },
    "fraud_alerts": 41,
    "fraud_alert_rate": 0.0414,
    "missing_rates": [],
    "details": {
        "gmv_by_day": [
            {
                "day": "2026-12-01",
                "region": "eu",
                "currency": "EUR",
                "orders": 140,
                "gmv_minor": 790000,
            }
        ],
        "recommendation_ctr": [
            {
                "model": "als",
                "model_version": "20261207T021500Z-a1b2c3",
                "served": 800,
                "clicked": 84,
                "ctr": 0.105,
            }
        ],
    },
}


class AdminMetricsController(Controller):
    """/v1/admin/metrics: the analytics store's headline figures."""

    path = "/v1/admin/metrics"
    tags = ("analytics", "admin")

    @get(
        "/",
        sync_to_thread=True,
        responses={
            200: ResponseSpec(
                MetricsOut,
                description="Headline metrics, money per currency, every metric's rows",
                examples=[Example(summary="One week, all regions", value=_EXAMPLE)],
            )
        },
    )
    def metrics(
        self,
        analytics: Inject[AnalyticsService],
        principal: Inject[Principal],
        since: Annotated[
            date | None, QueryParameter(description="First day (UTC, inclusive), YYYY-MM-DD.")
        ] = None,
        until: Annotated[
            date | None, QueryParameter(description="Last day (UTC, inclusive), YYYY-MM-DD.")
        ] = None,
        region: Annotated[
            str | None,
            QueryParameter(min_length=2, max_length=16, description="One region, e.g. eu."),
        ] = None,
    ) -> MetricsOut:
        """GMV, revenue, AOV, funnel, rates, top products, cohorts, CTR and fraud (admins)."""
        principal.require_admin()
        try:
            window = Window(since, until, region)
        except ValueError as error:
            raise InvalidRequest(str(error), code="invalid_window") from error
        figures = analytics.metrics(window)
        return MetricsOut.of(figures, WindowOut(since=since, until=until, region=region))


ROUTES = [AdminMetricsController]
