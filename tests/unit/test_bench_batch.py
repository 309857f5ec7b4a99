"""The batch benchmark's pure helpers: its data generators, figures and command line.

No Spark, no servers: the generators' shapes and determinism, that every generated payload is
a valid event, that the plain baseline counts what gold/item_stats counts, the formatting of
percentiles and ratios, and argument parsing.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from bench.batch import (
    BRONZE_START,
    INTERACTIONS_END,
    ORDER_EVENTS,
    PARTS,
    RssSampler,
    compare_item_stats,
    customer_stats_table,
    fmt,
    fmt_ratio,
    latency_ms,
    parse_args,
    parse_parts,
    plain_item_stats,
    product_titles,
    ratio,
    scaled,
    synthetic_bronze,
    taste_interactions,
    taste_shape,
    tree_rss,
)
from jobs.lake.delta_rs import DeltaRsStore
from jobs.lake.tables import BRONZE_PARTITIONS, BRONZE_SCHEMA
from schemas.registry import REGISTRY

# -- the command line --------------------------------------------------------------------------


def test_defaults_run_every_part_at_full_scale() -> None:
    args = parse_args([])
    assert args.scale == 1.0 and args.parts == list(PARTS) and args.json is None
    assert args.seed == 7 and args.spark_memory == "2g"


def test_parts_run_in_their_fixed_order_whatever_the_order_asked() -> None:
    assert parse_parts("faiss, als") == ["als", "faiss"]
    assert parse_args(["--parts", "feast,gold", "--scale", "0.05"]).parts == ["gold", "feast"]


@pytest.mark.parametrize("text", ["als,nope", "", " , "])
def test_unknown_or_no_parts_are_refused(text: str) -> None:
    with pytest.raises(SystemExit):
        parse_parts(text)


@pytest.mark.parametrize("scale", ["0", "-1", "11"])
def test_scale_out_of_range_is_refused(scale: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--scale", scale])


def test_json_path_is_parsed(tmp_path: Path) -> None:
    assert parse_args(["--json", str(tmp_path / "f.json")]).json == tmp_path / "f.json"


# -- figures -----------------------------------------------------------------------------------


def test_scaled_rounds_and_keeps_a_minimum() -> None:
    assert scaled(2_000_000, 1.0) == 2_000_000
    assert scaled(2_000_000, 0.05) == 100_000
    assert scaled(100, 0.001, 10) == 10
    assert scaled(3, 0.5) == 2  # round half to even, but never below the minimum of 1


def test_ratio_is_none_without_both_figures_or_with_a_zero_base() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(None, 1.0) is None and ratio(1.0, None) is None and ratio(1.0, 0) is None


def test_formatting_of_figures_and_ratios() -> None:
    assert fmt(1234567.891, " ms", 1) == "1,234,567.9 ms"
    assert fmt(12.0) == "12"
    assert fmt(None) == "-" and fmt(float("nan"), " s") == "-"
    assert fmt_ratio(19.537) == "19.54x"
    assert fmt_ratio(0.0063) == "0.006x"
    assert fmt_ratio(None) == "-" and fmt_ratio(float("inf")) == "-"


def test_latency_summary_uses_nearest_rank_percentiles() -> None:
    samples = [float(n) for n in range(1, 101)]  # 1..100 ms
    summary = latency_ms(samples)
    assert summary == {"p50": 51.0, "p99": 100.0, "mean": 50.5, "samples": 100}
    assert latency_ms([]) == {"p50": None, "p99": None, "mean": None, "samples": 0}


# -- part 1's interactions ---------------------------------------------------------------------


def test_taste_interactions_have_the_asked_shape_and_gold_columns() -> None:
    frame = taste_interactions(500, 200, 5_000, seed=3)
    assert list(frame.columns) == ["customer_id", "product_id", "strength", "last_at"]
    assert len(frame) == 5_000
    assert not frame.duplicated(["customer_id", "product_id"]).any()
    assert frame["customer_id"].nunique() <= 500 and frame["product_id"].nunique() <= 200
    assert (frame["strength"] > 0).all()
    assert str(frame["last_at"].dt.tz) == "UTC"
    assert frame["last_at"].max() <= INTERACTIONS_END
    assert frame["last_at"].min() >= INTERACTIONS_END - pd.Timedelta(days=60)


def test_taste_interactions_are_deterministic_per_seed() -> None:
    first = taste_interactions(300, 100, 2_000, seed=11)
    again = taste_interactions(300, 100, 2_000, seed=11)
    other = taste_interactions(300, 100, 2_000, seed=12)
    assert first.equals(again)
    assert not first.equals(other)


def test_customers_draw_mostly_from_their_taste_group() -> None:
    items = 2_000
    shape = taste_shape(items)
    frame = taste_interactions(400, items, 20_000, seed=5)
    group = (frame["product_id"].str[1:].astype(int) - shape.head) // shape.group_size
    grouped = frame.assign(group=group.where(group.between(0, shape.groups - 1)))
    # Each customer's most frequent group holds far more than 1/groups of their rows.
    share = grouped.groupby("customer_id")["group"].agg(
        lambda g: g.value_counts().iloc[0] / len(g) if g.notna().any() else 0.0
    )
    assert share.median() > 0.4 > 1 / shape.groups


def test_too_dense_an_interaction_table_is_refused() -> None:
    with pytest.raises(ValueError):
        taste_interactions(10, 10, 60, seed=1)


# -- part 2's bronze events --------------------------------------------------------------------


def test_bronze_tables_hold_the_asked_events_in_the_archivers_schema() -> None:
    tables = synthetic_bronze(4_000, seed=2)
    assert set(tables) == {
        f"bronze/{d}" for d in ("behaviour", "carts", "checkout", "orders", "payments")
    }
    assert sum(t.num_rows for t in tables.values()) == 4_000
    for table in tables.values():
        assert table.schema == BRONZE_SCHEMA
    ids = [i for t in tables.values() for i in t.column("event_id").to_pylist()]
    assert len(set(ids)) == len(ids)
    types = Counter(e for t in tables.values() for e in t.column("event_type").to_pylist())
    orders = types["order.placed"]
    assert (
        orders > 0
        and sum(types.values()) - types["product.viewed"] - types["cart.item_added"]
        == ORDER_EVENTS * orders
    )


def test_bronze_is_deterministic_per_seed() -> None:
    first = synthetic_bronze(1_500, seed=4)
    again = synthetic_bronze(1_500, seed=4)
    other = synthetic_bronze(1_500, seed=5)
    assert all(first[name].equals(again[name]) for name in first)
    assert not first["bronze/behaviour"].equals(other["bronze/behaviour"])


def test_every_bronze_row_is_a_valid_event_of_its_topic_and_date() -> None:
    tables = synthetic_bronze(3_000, seed=6)
    for name, table in tables.items():
        domain = name.split("/")[1]
        for row in table.to_pylist():
            envelope = REGISTRY.new_event(
                row["event_type"],
                json.loads(row["payload"]),
                region=row["region"],
                occurred_at=row["occurred_at"],
            )
            assert envelope.aggregate_id == row["aggregate_id"]
            assert REGISTRY.spec(row["event_type"]).domain == domain
            assert row["topic"] == f"{row['region']}.{domain}.v1"
            assert row["event_date"] == row["occurred_at"].date()
            assert row["archived_at"] > row["occurred_at"] >= BRONZE_START


def test_too_few_bronze_events_are_refused() -> None:
    with pytest.raises(ValueError):
        synthetic_bronze(5, seed=1)


def test_the_plain_pass_counts_item_stats_once_per_event(tmp_path: Path) -> None:
    tables = synthetic_bronze(2_000, seed=8)
    store = DeltaRsStore(str(tmp_path / "lake"))
    for name, table in tables.items():
        store.append(name, table, partition_by=BRONZE_PARTITIONS)
    # A view archived twice (a redelivery) counts once.
    views = tables["bronze/behaviour"]
    copy = views.slice(0, 1).set_column(
        views.schema.get_field_index("kafka_offset"), "kafka_offset", pa.array([99_999])
    )
    store.append("bronze/behaviour", copy, partition_by=BRONZE_PARTITIONS)

    views_of: Counter[str] = Counter(
        json.loads(row["payload"])["product_id"] for row in views.to_pylist()
    )
    carts_of: Counter[str] = Counter(
        json.loads(row["payload"])["product_id"] for row in tables["bronze/carts"].to_pylist()
    )
    orders_of: dict[str, set[str]] = {}
    units_of: Counter[str] = Counter()
    for row in tables["bronze/orders"].to_pylist():
        if row["event_type"] == "order.placed":
            for line in json.loads(row["payload"])["lines"]:
                orders_of.setdefault(line["product_id"], set()).add(row["aggregate_id"])
                units_of[line["product_id"]] += line["quantity"]
    products = set(views_of) | set(carts_of) | set(orders_of)
    want = {p: (views_of[p], carts_of[p], len(orders_of.get(p, ())), units_of[p]) for p in products}
    assert plain_item_stats(str(tmp_path / "lake")) == want


def test_item_stats_comparison_counts_differing_and_one_sided_products() -> None:
    plain = {"p1": (3, 1, 1, 2), "p2": (1, 0, 0, 0), "p3": (5, 0, 0, 0)}
    gold = pa.table(
        {
            "product_id": ["p1", "p2", "p4"],
            "views": [3, 2, 1],
            "cart_adds": [1, 0, 0],
            "purchases": [1, 0, 0],
            "units": [2, 0, 0],
            "conversion": [0.3, 0.0, 0.0],
        }
    )
    assert compare_item_stats(plain, gold) == (3, 4)  # p2 differs, p3 and p4 one-sided


# -- parts 3 and 4 -----------------------------------------------------------------------------


def test_customer_stats_rows_are_shaped_as_gold_writes_them() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 3, 1, tzinfo=UTC)
    table = customer_stats_table(50, seed=1, now=now)
    assert table.num_rows == 50 and len(set(table.column("customer_id").to_pylist())) == 50
    assert table.column_names == [
        "customer_id",
        "currency",
        "orders",
        "spend_minor",
        "first_order_at",
        "last_order_at",
        "recency_days",
    ]
    assert table.schema.field("last_order_at").type == pa.timestamp("us", tz="UTC")
    assert all(row["last_order_at"] <= now for row in table.to_pylist())
    assert table.equals(customer_stats_table(50, seed=1, now=now))


def test_product_titles_are_deterministic_and_varied() -> None:
    titles = product_titles(120, seed=3)
    assert len(titles) == 120 and titles == product_titles(120, seed=3)
    assert len(set(titles)) > 100 and all(" for " in title for title in titles)


# -- memory sampling ---------------------------------------------------------------------------


def test_rss_sampler_records_this_process_and_windows_its_peak() -> None:
    with RssSampler(os.getpid(), period=0.01) as sampler:
        time.sleep(0.08)
    assert len(sampler.samples) >= 3
    peak = sampler.peak()
    assert peak is not None and peak > 10 * 1024 * 1024
    assert sampler.peak(end=0.0) is None
    first_at = sampler.samples[0][0]
    assert sampler.peak(first_at, first_at) == sampler.samples[0][1]


def test_tree_rss_of_a_gone_process_is_zero() -> None:
    assert tree_rss(2**22 + 12345) == 0
    assert tree_rss(os.getpid()) > 0
