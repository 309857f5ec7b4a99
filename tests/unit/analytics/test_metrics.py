"""Each metric against the values worked out by hand for ``scenario`` (real chdb, no server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from jobs.analytics.chdb_store import ChdbStore
from jobs.analytics.flatten import Source
from jobs.analytics.loader import BatchWriter, prepare
from jobs.analytics.metrics import Window, metric
from jobs.analytics.port import AnalyticsError
from jobs.analytics.rates import RateTable
from jobs.analytics.report import disagreements, headline, lines
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from tests.unit.analytics import scenario

EVENTS = scenario.build()


def _sources(events: list[Envelope]) -> list[tuple[Envelope, Source]]:
    return [
        (e, Source(topic_for(REGISTRY.spec(e.event_type).domain, e.region), 0, i))
        for i, e in enumerate(events)
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    """The scenario loaded in batches of 13, with duplicates inside and across batches."""
    home = tmp_path_factory.mktemp("analytics")
    store = ChdbStore(Path(home) / "chdb")
    prepare(store, Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    writer = BatchWriter(store, "test")
    records = _sources(EVENTS)
    for start in range(0, len(records), 13):
        batch = records[start : start + 13]
        batch = [*batch, batch[0]]  # the relay published one event twice
        writer.load(batch, {(s.topic, 0): s.offset for _, s in batch})
    writer.load(records[:20], {})  # a whole batch again (e.g. a replayed broker)
    yield store
    store.close()


def test_each_event_loaded_once(store: ChdbStore) -> None:
    got = store.arrow("SELECT event_id FROM events").column("event_id").to_pylist()
    assert sorted(got) == sorted(str(e.event_id) for e in EVENTS)
    orders = store.arrow("SELECT order_id FROM orders ORDER BY order_id").to_pylist()
    assert [r["order_id"] for r in orders] == ["o1", "o2", "o3", "o4"]
    assert store.arrow("SELECT count() AS n FROM order_lines").to_pylist() == [{"n": 6}]


def test_gmv_by_region_currency_day(store: ChdbStore) -> None:
    got = [
        (str(r["day"]), r["region"], r["currency"], r["orders"], r["gmv_minor"])
        for r in metric(store, "gmv_by_day")
    ]
    assert got == [
        ("2026-11-30", "eu", "EUR", 1, 2900),
        ("2026-12-01", "eu", "EUR", 1, 1500),
        ("2026-12-01", "us", "USD", 1, 4500),
        ("2026-12-08", "eu", "EUR", 1, 1500),
    ]
    window = Window(since=date(2026, 12, 1), until=date(2026, 12, 1), region="eu")
    assert [r["gmv_minor"] for r in metric(store, "gmv_by_day", window)] == [1500]


def test_gmv_by_seller_uses_line_totals(store: ChdbStore) -> None:
    got = [
        (r["seller_id"], r["currency"], r["orders"], r["units"], r["gmv_minor"])
        for r in metric(store, "gmv_by_seller")
    ]
    assert got == [
        ("s1", "EUR", 2, 3, 3500),  # o1 p1 2000 + o2 p3 1500
        ("s2", "EUR", 2, 4, 1900),  # o1 p2 500-100 + o4 p2 1500
        ("s1", "USD", 1, 3, 3600),
        ("s3", "USD", 1, 1, 400),
    ]


def test_aov_and_revenue_per_currency(store: ChdbStore) -> None:
    aov = {
        r["currency"]: (r["orders"], r["gmv_minor"], r["aov_minor"]) for r in metric(store, "aov")
    }
    assert aov["EUR"][:2] == (3, 5900) and aov["EUR"][2] == pytest.approx(5900 / 3)
    assert aov["USD"] == (1, 4500, 4500)
    revenue = {r["currency"]: r["net_minor"] for r in metric(store, "revenue")}
    assert revenue == {"EUR": 5900 - 1500, "USD": 4500}


def test_funnel_by_region_and_channel(store: ChdbStore) -> None:
    got = {
        (r["region"], r["channel"]): (r["viewed"], r["carted"], r["checked_out"], r["paid"])
        for r in metric(store, "funnel")
    }
    assert got == {
        ("eu", "ios"): (1, 0, 0, 0),  # s3
        ("eu", "web"): (3, 3, 2, 1),  # s1 s2 s6 / s1 s2 / s1
        ("us", "web"): (1, 1, 1, 1),  # s4 (s5 never viewed)
    }


def test_cancellation_and_decline_rates(store: ChdbStore) -> None:
    cancels = {r["region"]: (r["orders"], r["cancelled"]) for r in metric(store, "cancellations")}
    assert cancels == {"eu": (3, 1), "us": (1, 0)}  # o4's one-line cancel is not an order's
    declines = {
        r["region"]: (r["attempts"], r["declined"], r["rate"]) for r in metric(store, "declines")
    }
    assert declines == {"eu": (3, 0, 0.0), "us": (2, 1, 0.5)}  # o4's capture failure ignored


def test_top_products_and_categories(store: ChdbStore) -> None:
    products = [(r["product_id"], r["units"], r["orders"]) for r in metric(store, "top_products")]
    assert products == [("p1", 5, 2), ("p2", 4, 2), ("p3", 1, 1), ("p4", 1, 1)]
    categories = [(r["category"], r["units"], r["orders"]) for r in metric(store, "top_categories")]
    assert categories == [("cat_apparel", 5, 2), ("cat_home", 5, 3), ("unknown", 1, 1)]
    assert [r["product_id"] for r in metric(store, "top_products", limit=2)] == ["p1", "p2"]


def test_cohort_retention_by_signup_week(store: ChdbStore) -> None:
    got = [
        (str(r["cohort_week"]), r["cohort_size"], r["week_offset"], r["active"], r["retention"])
        for r in metric(store, "cohorts")
    ]
    assert got == [("2026-11-30", 3, 0, 3, 1.0), ("2026-11-30", 3, 1, 1, pytest.approx(1 / 3))]


def test_recommendation_ctr_per_model_version(store: ChdbStore) -> None:
    got = [
        (r["model"], r["model_version"], r["served"], r["clicked"], r["ctr"])
        for r in metric(store, "recommendation_ctr")
    ]
    assert got == [
        ("als", "v1", 3, 2, pytest.approx(2 / 3)),
        ("als", "v2", 1, 0, 0.0),
        ("trending", "", 1, 1, 1.0),
    ]


def test_fraud_alert_rates(store: ChdbStore) -> None:
    regions = {
        r["region"]: (r["checkouts"], r["alerts"], r["rate"])
        for r in metric(store, "fraud_by_region")
    }
    assert regions == {"eu": (2, 1, 0.5), "us": (1, 1, 1.0)}
    rules = [(r["rule"], r["alerts"]) for r in metric(store, "fraud_by_rule")]
    assert rules == [("velocity", 2), ("new_account_high_value", 1)]


def test_headline_converts_with_the_rate_table_only(store: ChdbStore) -> None:
    rates = RateTable("EUR", {"USD": Decimal("0.5")})
    h = headline(store, rates)
    assert (h.orders_placed, h.orders_paid, h.orders_cancelled, h.customers) == (4, 4, 1, 4)
    assert h.events == len(EVENTS)
    assert h.gmv == {"EUR": 5900, "USD": 4500}
    assert h.gmv_total == Decimal("81.50")  # 59.00 EUR + 45.00 USD x 0.5
    assert h.revenue_total == Decimal("66.50")  # 44.00 + 22.50
    assert h.aov == {"EUR": 1967, "USD": 4500}  # 5900 / 3 rounded to the cent
    assert (h.cancellation_rate, h.decline_rate) == (0.25, 0.2)
    assert h.funnel == {"viewed": 5, "carted": 4, "checked_out": 3, "paid": 2}
    assert h.conversion == 0.4 and h.fraud_alert_rate == pytest.approx(2 / 3)
    text = "\n".join(lines(h))
    assert "59.00 EUR" in text and "45.00 USD" in text and "81.50 EUR" in text
    no_rate = headline(store, RateTable("EUR", {}))
    assert no_rate.gmv_total is None and no_rate.missing_rates == ["USD"]
    assert "no rate for USD" in "\n".join(lines(no_rate))
    assert disagreements(h, 4, {"EUR": 4400, "USD": 4500}) == []
    assert disagreements(h, 5, {"EUR": 4400}) == [
        "orders: analytics 4 vs PostgreSQL 5",
        "revenue USD: analytics 45.00 USD vs PostgreSQL 0.00 USD",
    ]


def test_bad_sql_is_an_analytics_error(store: ChdbStore) -> None:
    with pytest.raises(AnalyticsError, match="nope"):
        store.arrow("SELECT * FROM nope")
