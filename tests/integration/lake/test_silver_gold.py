"""Silver and gold on the local Spark session: hand-computed gold values, de-duplication, and an
incremental run after new events ending with exactly the tables a full rebuild builds.

Lake ``inc``: batch one, full silver and gold; then batch two (new days, a late status change of
an order from batch one, a re-archived event), silver from ``SINCE`` and gold with its default
window. Lake ``full``: the same bronze tables, rebuilt with ``--full``. A missing engine is an
error, never a skip.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from jobs import gold, silver
from jobs.lake.delta_rs import DeltaRsStore
from jobs.lake.port import LakeError
from jobs.lake.spark_delta import lake_store_for
from jobs.lake.tables import BRONZE_PARTITIONS, BRONZE_SCHEMA
from jobs.result import JobResult
from jobs.spark.delta_io import read_table, spark_has_delta
from souk.settings import Settings
from tests.integration.lake.conftest import (
    AS_OF,
    SINCE,
    Shop,
    assert_gold,
    at,
    by,
    first_archive,
    lake_settings_at,
    lake_store,
    rows,
    same_tables,
    second_archive,
    shop,
)

SILVER = (silver.EVENTS, silver.SESSIONS, silver.ORDERS, silver.ORDER_LINES, silver.PAYMENTS)
GOLD = (
    gold.INTERACTIONS,
    gold.ITEM_STATS,
    gold.CO_PURCHASES,
    gold.CUSTOMER_STATS,
    gold.SELLER_STATS,
    gold.TRENDING_DAILY,
)


@dataclass
class Lakes:
    """The incrementally built lake, the fully rebuilt one, and what the runs reported."""

    events: Shop
    inc: DeltaRsStore
    full: DeltaRsStore
    silver_inc: JobResult
    gold_inc: JobResult
    silver_full: JobResult


@pytest.fixture(scope="module")
def lakes(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Lakes:
    """Both lakes built (six job runs on the worker's Spark session)."""
    root: Path = tmp_path_factory.mktemp("lakes")
    inc_settings = lake_settings_at(root / "inc")
    full_settings = lake_settings_at(root / "full")
    inc, full = lake_store(inc_settings), lake_store(full_settings)
    events = shop()
    began = time.monotonic()

    first_archive(inc, events)
    silver.run(inc_settings, spark, full=True)
    gold.run(inc_settings, spark, full=True, as_of=AS_OF)
    second_archive(inc, events)
    silver_inc = silver.run(inc_settings, spark, since=SINCE)
    gold_inc = gold.run(inc_settings, spark, since=SINCE, as_of=AS_OF)
    incremental_s = time.monotonic() - began

    shutil.copytree(Path(inc.root) / "bronze", Path(full.root) / "bronze")
    silver_full = silver.run(full_settings, spark, full=True)
    gold.run(full_settings, spark, full=True, as_of=AS_OF)
    print(
        f"\nfull+incremental {incremental_s:.1f} s, "
        f"full rebuild {time.monotonic() - began - incremental_s:.1f} s"
    )
    return Lakes(events, inc, full, silver_inc, gold_inc, silver_full)


def test_gold_rows_match_the_hand_computed_values(lakes: Lakes) -> None:
    assert_gold(lakes.inc, lakes.events)
    assert_gold(lakes.full, lakes.events)


def test_an_event_archived_twice_is_one_silver_event(lakes: Lakes) -> None:
    bronze = Counter(row["event_id"] for row in rows(lakes.inc, "bronze/behaviour"))
    twice = {str(e.event_id) for e in lakes.events.copied_first + lakes.events.copied_second}
    assert {event_id for event_id, n in bronze.items() if n > 1} == twice  # the test has teeth
    events = rows(lakes.inc, silver.EVENTS)
    assert Counter(row["event_id"] for row in events).most_common(1)[0][1] == 1
    everything = lakes.events.first + lakes.events.second
    assert {row["event_id"] for row in events} == {str(e.event_id) for e in everything}
    # The first archived copy wins (the copies were archived later).
    view = next(row for row in events if row["event_id"] in twice and row["region"] == "us")
    assert view["archived_at"] == at(3, 23)
    assert (view["customer_id"], view["session_id"], view["product_id"]) == ("c3", "s4", "p1")


def test_incremental_runs_build_the_same_tables_as_a_full_rebuild(lakes: Lakes) -> None:
    same_tables(lakes.inc, lakes.full, SILVER + GOLD)


def test_silver_entities(lakes: Lakes) -> None:
    orders = by(lakes.inc, silver.ORDERS, "order_id")
    o1 = orders["o1"]
    # o1 was placed and paid in batch one and shipped in batch two (an incremental update)
    assert (o1["status"], o1["currency"], o1["total_minor"], o1["units"]) == (
        "shipped",
        "EUR",
        2400,
        3,
    )
    assert (o1["placed_at"], o1["paid_at"], o1["shipped_at"]) == (
        at(1, 10, 6),
        at(1, 10, 7),
        at(4, 12),
    )
    assert (orders["o4"]["status"], orders["o4"]["cancelled_at"]) == ("cancelled", at(3, 15, 30))
    assert orders["o3"]["region"] == "us" and orders["o3"]["currency"] == "USD"

    lines = by(lakes.inc, silver.ORDER_LINES, "order_id", "line_no")
    assert set(lines) == {
        ("o1", 1),
        ("o1", 2),
        ("o2", 1),
        ("o2", 2),
        ("o3", 1),
        ("o4", 1),
        ("o5", 1),
        ("o5", 2),
    }
    line = lines[("o1", 2)]
    assert (line["product_id"], line["seller_id"], line["quantity"]) == ("p2", "sb", 1)
    assert (line["unit_price_minor"], line["discount_minor"], line["line_total_minor"]) == (
        500,
        100,
        400,
    )

    sessions = by(lakes.inc, silver.SESSIONS, "session_id")
    s1 = sessions["s1"]
    assert (s1["customer_id"], s1["region"], s1["events"], s1["views"]) == ("c1", "eu", 4, 2)
    assert (s1["cart_adds"], s1["checkouts"], s1["ordered"]) == (1, 1, True)
    assert (s1["started_at"], s1["ended_at"]) == (at(1, 10), at(1, 10, 5))
    assert sessions["s3"]["customer_id"] is None and not sessions["s2"]["ordered"]

    payments = by(lakes.inc, silver.PAYMENTS, "payment_id")
    assert (
        payments["pay-o1"].items()
        >= {
            "order_id": "o1",
            "status": "captured",
            "currency": "EUR",
            "authorized_minor": 2400,
            "captured_minor": 2400,
            "refunded_minor": 0,
        }.items()
    )
    assert (payments["pay-o4"]["status"], payments["pay-o4"]["failures"]) == ("failed", 1)


def test_default_window_starts_the_lookback_before_the_newest_processed_day(
    spark: Any, lakes: Lakes
) -> None:
    newest = max(e.occurred_at.date() for e in lakes.events.first + lakes.events.second)
    start = silver.window_start(spark, lakes.inc, silver.EVENTS, "event_date", None)
    assert start == newest - timedelta(days=silver.LOOKBACK_DAYS)
    assert silver.window_start(spark, lakes.inc, "silver/missing", "event_date", None) is None


def test_job_results_count_rows(lakes: Lakes) -> None:
    everything = lakes.events.first + lakes.events.second
    copies = lakes.events.copied_first + lakes.events.copied_second
    assert lakes.silver_full.rows_in == len(everything) + len(copies)
    assert lakes.silver_full.rows_out[silver.EVENTS] == len(everything)
    # The window from the 3rd: batch two, the events of the 3rd and the copy of the 3rd.
    window = [e for e in everything if e.occurred_at.date() >= SINCE]
    assert lakes.silver_inc.rows_in == len(window) + 1
    assert lakes.silver_inc.rows_out[silver.EVENTS] == len(window)
    assert lakes.silver_inc.rows_out[silver.ORDERS] == 4  # o3, o4, o5 and o1 (shipped)
    assert set(lakes.gold_inc.rows_out) == set(GOLD)


def test_spark_reads_only_the_current_snapshot_and_types_an_empty_table(
    spark: Any, lake_settings: Settings
) -> None:
    store = lake_store(lake_settings)
    # Two overwrites leave the first one's file in the folder: a folder read would see 3 rows.
    store.overwrite("t/numbers", pa.table({"n": pa.array([1, 2], pa.int64())}))
    store.overwrite("t/numbers", pa.table({"n": pa.array([7], pa.int64())}))
    assert len(list((Path(store.uri("t/numbers"))).glob("*.parquet"))) == 2
    assert [row["n"] for row in read_table(spark, store, "t/numbers").collect()] == [7]

    store.overwrite("t/empty", BRONZE_SCHEMA.empty_table(), partition_by=BRONZE_PARTITIONS)
    empty = read_table(spark, store, "t/empty")
    assert empty.count() == 0
    assert empty.columns == BRONZE_SCHEMA.names
    types = dict(empty.dtypes)
    assert (types["event_date"], types["occurred_at"], types["kafka_offset"]) == (
        "date",
        "timestamp",
        "bigint",
    )
    with pytest.raises(LakeError):
        read_table(spark, store, "t/missing")


def test_without_delta_jars_the_jobs_use_the_delta_rs_store(
    spark: Any, lake_settings: Settings
) -> None:
    # Delta's jars cannot be installed here: the selector must fall back, not fail.
    assert not spark_has_delta(spark)
    assert isinstance(lake_store_for(spark, lake_settings), DeltaRsStore)
