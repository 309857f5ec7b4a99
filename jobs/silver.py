"""Silver: the bronze event archive as typed, de-duplicated events and the entities they describe.

source     ``bronze/<domain>`` for every registered domain (the archiver's Delta tables: the
           envelope plus the payload as JSON text), only ``event_date >= since`` unless ``full``
transform  events de-duplicated by ``event_id`` (the first archived copy wins: a redelivered or
           re-archived event counts once), ids pulled out of the payload; then sessions, orders,
           order lines and payments folded from those events
sink       ``silver/events`` (partitioned by event_date), ``silver/sessions``,
           ``silver/orders``, ``silver/order_lines``, ``silver/payments``

Incremental (the default, or ``--since``): the window's bronze partitions are MERGEd into
``silver/events`` on (event_date, event_id); every session, order and payment that has an
event in the window (a session also when a checkout it started completed in the window) is
then rebuilt from all of its events in ``silver/events`` and MERGEd on its key, so an order
placed last month and shipped today gets its new status. Without ``--since`` the window starts
``LOOKBACK_DAYS`` before the newest event date already in silver (the first run is a full
one). An event archived after its date fell out of every window (later than the lookback) is
picked up by a run with an earlier ``--since`` or ``--full``; ``--full`` rebuilds every table
from all of bronze with overwrite.

Money stays integer minor units next to its currency; statuses follow the latest lifecycle
event (ties broken by lifecycle order). A partial cancellation or return (some line_ids) does
not change an order's status; only a whole-order one does.

Run: ``spark-submit jobs/silver.py [--full | --since YYYY-MM-DD]`` (the repository on
PYTHONPATH) or ``python -m jobs.silver``; ``SOUK_SPARK_MASTER`` picks the cluster.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as sf
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

from jobs.lake.port import LakeError, TableStore
from jobs.lake.spark_delta import lake_store_for
from jobs.lake.tables import BRONZE_SCHEMA, bronze_table
from jobs.result import JobResult
from jobs.spark.delta_io import WriteMode, read_table, write_table
from jobs.spark.session import spark_session
from schemas.registry import REGISTRY
from souk.settings import Settings, get_settings

NAME = "silver"
EVENTS = "silver/events"
SESSIONS = "silver/sessions"
ORDERS = "silver/orders"
ORDER_LINES = "silver/order_lines"
PAYMENTS = "silver/payments"
#: MERGE keys (partition columns first: they prune the files a MERGE rewrites).
EVENT_KEYS = ("event_date", "event_id")
SESSION_KEYS = ("session_id",)
ORDER_KEYS = ("order_id",)
ORDER_LINE_KEYS = ("order_id", "line_no")
PAYMENT_KEYS = ("payment_id",)
#: How far before the newest date already processed a default incremental window starts:
#: events archived up to this late still land in a window.
LOOKBACK_DAYS = 2

#: An order's status after each lifecycle event; the rank breaks ties at equal times.
ORDER_STATUS = {
    "order.placed": (0, "placed"),
    "order.paid": (1, "paid"),
    "order.packed": (2, "packed"),
    "order.shipped": (3, "shipped"),
    "order.delivered": (4, "delivered"),
    "order.returned": (5, "returned"),
    "order.cancelled": (6, "cancelled"),
}
PAYMENT_STATUS = {
    "payment.authorized": (0, "authorized"),
    "payment.failed": (1, "failed"),
    "payment.captured": (2, "captured"),
    "payment.voided": (3, "voided"),
    "payment.refunded": (4, "refunded"),
}


# -- shared by the batch jobs' entry points ----------------------------------------------------


def job_arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line every batch job shares: ``--full`` or ``--since YYYY-MM-DD``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--full", action="store_true", help="Rebuild every table (overwrite).")
    window.add_argument(
        "--since",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="Incremental window: reprocess event dates from this day on.",
    )
    return parser


def with_session(
    settings: Settings,
    spark: SparkSession | None,
    app_name: str,
    body: Callable[[SparkSession], JobResult],
) -> JobResult:
    """Run ``body`` on ``spark``, or on a session of its own that is stopped afterwards."""
    if spark is not None:
        return body(spark)
    own = spark_session(settings, app_name)
    try:
        return body(own)
    finally:
        own.stop()


def latest_date(spark: SparkSession, store: TableStore, table: str, column: str) -> date | None:
    """The newest ``column`` date in ``table`` (None when the table is missing or empty)."""
    if not store.exists(table):
        return None
    row = read_table(spark, store, table).agg(sf.max(column).alias("newest")).first()
    newest = row["newest"] if row is not None else None
    return newest if isinstance(newest, date) else None


def window_start(
    spark: SparkSession, store: TableStore, table: str, column: str, since: date | None
) -> date | None:
    """The incremental window's first date: ``since``, else the lookback; None: a full run."""
    if since is not None:
        return since
    newest = latest_date(spark, store, table, column)
    return None if newest is None else newest - timedelta(days=LOOKBACK_DAYS)


def union_all(frames: Sequence[DataFrame]) -> DataFrame:
    """The rows of all ``frames`` (same columns, matched by name)."""
    return reduce(lambda left, right: left.unionByName(right), frames)


# -- source ------------------------------------------------------------------------------------


def read_bronze(spark: SparkSession, store: TableStore, since: date | None) -> DataFrame:
    """Every domain's bronze rows (of event dates from ``since`` on), with a ``domain`` column."""
    frames = []
    for domain in REGISTRY.domains():
        table = bronze_table(domain)
        if not store.exists(table):
            continue  # no event of this domain archived yet
        # Bronze's own columns only: a table a newer archiver widened still unions.
        frame = (
            read_table(spark, store, table)
            .select(*BRONZE_SCHEMA.names)
            .withColumn("domain", sf.lit(domain))
        )
        if since is not None:
            frame = frame.where(sf.col("event_date") >= sf.lit(since))
        frames.append(frame)
    if not frames:
        empty = spark.createDataFrame([], from_arrow_schema(BRONZE_SCHEMA))
        return empty.withColumn("domain", sf.lit(None).cast("string"))
    return union_all(frames)


# -- transforms --------------------------------------------------------------------------------


def _json(path: str) -> Column:
    return sf.get_json_object(sf.col("payload"), path)


def events(bronze: DataFrame) -> DataFrame:
    """Bronze rows → one typed row per event_id (the first archived copy), ids extracted."""
    first = Window.partitionBy("event_id").orderBy(
        "archived_at", "domain", "topic", "kafka_partition", "kafka_offset"
    )
    unique = bronze.withColumn("_copy", sf.row_number().over(first)).where("_copy = 1")
    return unique.select(
        "event_id",
        "event_type",
        "schema_version",
        "domain",
        "occurred_at",
        "event_date",
        "region",
        "aggregate_type",
        "aggregate_id",
        _json("$.customer_id").alias("customer_id"),
        _json("$.session_id").alias("session_id"),
        _json("$.product_id").alias("product_id"),
        _json("$.order_id").alias("order_id"),
        "correlation_id",
        "causation_id",
        "payload",
        "archived_at",
    )


def _count(event_type: str) -> Column:
    return sf.count(sf.when(sf.col("event_type") == event_type, True))


def _first_by_time(column: str) -> Column:
    """The value of ``column`` on the earliest event (event_id breaks ties)."""
    return sf.min(sf.struct("occurred_at", "event_id", column))[column]


def _last_non_null(column: str) -> Column:
    """The value of ``column`` on the latest event where it is set."""
    return sf.max(
        sf.when(sf.col(column).isNotNull(), sf.struct("occurred_at", "event_id", column))
    )[column]


def completed_checkouts(all_events: DataFrame) -> DataFrame:
    """checkout_id of every completed checkout."""
    return (
        all_events.where("event_type = 'checkout.completed'")
        .select(_json("$.checkout_id").alias("checkout_id"))
        .distinct()
    )


def sessions(session_events: DataFrame, all_events: DataFrame) -> DataFrame:
    """One row per session_id: who, where, when, how much it did and whether it ordered."""
    scoped = session_events.where(sf.col("session_id").isNotNull())
    started = scoped.where("event_type = 'checkout.started'").select(
        "session_id", _json("$.checkout_id").alias("checkout_id")
    )
    ordered = (
        started.join(completed_checkouts(all_events), "checkout_id")
        .select("session_id")
        .distinct()
        .withColumn("ordered", sf.lit(True))
    )
    folded = scoped.groupBy("session_id").agg(
        _last_non_null("customer_id").alias("customer_id"),
        _first_by_time("region").alias("region"),
        sf.min("occurred_at").alias("started_at"),
        sf.max("occurred_at").alias("ended_at"),
        sf.count(sf.lit(1)).alias("events"),
        _count("product.viewed").alias("views"),
        _count("cart.item_added").alias("cart_adds"),
        _count("checkout.started").alias("checkouts"),
    )
    return folded.join(ordered, "session_id", "left").select(
        "session_id",
        "customer_id",
        "region",
        "started_at",
        "ended_at",
        "events",
        "views",
        "cart_adds",
        "checkouts",
        sf.coalesce(sf.col("ordered"), sf.lit(False)).alias("ordered"),
    )


def _money() -> StructType:
    return StructType(
        [StructField("amount_minor", LongType()), StructField("currency", StringType())]
    )


def _placed_schema() -> StructType:
    """The part of order.placed's payload silver reads (from_json ignores the rest)."""
    money = _money()
    line = StructType(
        [
            StructField("line_id", StringType()),
            StructField("sku", StringType()),
            StructField("product_id", StringType()),
            StructField("seller_id", StringType()),
            StructField("warehouse_id", StringType()),
            StructField("quantity", LongType()),
            StructField("unit_price", money),
            StructField("discount", money),
        ]
    )
    totals = StructType(
        [
            StructField(name, money)
            for name in ("subtotal", "discount", "shipping", "tax", "grand_total")
        ]
    )
    return StructType(
        [
            StructField("order_id", StringType()),
            StructField("customer_id", StringType()),
            StructField("checkout_id", StringType()),
            StructField("region", StringType()),
            StructField("channel", StringType()),
            StructField("lines", ArrayType(line)),
            StructField("totals", totals),
        ]
    )


def _placed(order_events: DataFrame) -> DataFrame:
    """order.placed events with the payload parsed (the first placement of each order)."""
    first = Window.partitionBy("order_id").orderBy("occurred_at", "event_id")
    return (
        order_events.where("event_type = 'order.placed'")
        .select(
            sf.col("aggregate_id").alias("order_id"),
            "occurred_at",
            "event_id",
            sf.col("region").alias("event_region"),
            sf.from_json("payload", _placed_schema()).alias("p"),
        )
        .withColumn("_n", sf.row_number().over(first))
        .where("_n = 1")
        .drop("_n")
    )


def _whole() -> Column:
    """True when an event's ``line_ids`` is missing or empty (it concerns the whole order)."""
    ids = sf.from_json(_json("$.line_ids"), ArrayType(StringType()))
    return sf.coalesce(sf.size(ids), sf.lit(0)) == 0


def _ranked_status(mapping: dict[str, tuple[int, str]], applies: Column) -> Column:
    """struct(occurred_at, rank, status) of an event that sets a status, else null."""
    rank: Column = sf.lit(None).cast("int")
    status: Column = sf.lit(None).cast("string")
    for event_type, (order, name) in mapping.items():
        hit = sf.col("event_type") == event_type
        rank = sf.when(hit, sf.lit(order)).otherwise(rank)
        status = sf.when(hit, sf.lit(name)).otherwise(status)
    return sf.when(
        applies & status.isNotNull(),
        sf.struct(sf.col("occurred_at").alias("at"), rank.alias("rank"), status.alias("status")),
    )


def orders(order_events: DataFrame) -> DataFrame:
    """One row per placed order: who, where, money (minor units), status and its times."""
    placed = _placed(order_events)
    whole = _whole()
    cancelled = (sf.col("event_type") == "order.cancelled") & whole
    returned = (sf.col("event_type") == "order.returned") & whole
    partial = sf.col("event_type").isin("order.cancelled", "order.returned") & ~whole
    lifecycle = order_events.groupBy(sf.col("aggregate_id").alias("order_id")).agg(
        sf.max(_ranked_status(ORDER_STATUS, ~partial))["status"].alias("status"),
        sf.min(sf.when(sf.col("event_type") == "order.paid", sf.col("occurred_at"))).alias(
            "paid_at"
        ),
        sf.min(sf.when(sf.col("event_type") == "order.shipped", sf.col("occurred_at"))).alias(
            "shipped_at"
        ),
        sf.max(sf.when(sf.col("event_type") == "order.delivered", sf.col("occurred_at"))).alias(
            "delivered_at"
        ),
        sf.min(sf.when(cancelled, sf.col("occurred_at"))).alias("cancelled_at"),
        sf.min(sf.when(returned, sf.col("occurred_at"))).alias("returned_at"),
        sf.max("occurred_at").alias("updated_at"),
    )
    totals = sf.col("p.totals")
    return placed.join(lifecycle, "order_id").select(
        "order_id",
        sf.col("p.customer_id").alias("customer_id"),
        sf.coalesce(sf.col("p.region"), sf.col("event_region")).alias("region"),
        sf.col("p.checkout_id").alias("checkout_id"),
        sf.col("p.channel").alias("channel"),
        totals["grand_total"]["currency"].alias("currency"),
        totals["subtotal"]["amount_minor"].alias("subtotal_minor"),
        totals["discount"]["amount_minor"].alias("discount_minor"),
        totals["shipping"]["amount_minor"].alias("shipping_minor"),
        totals["tax"]["amount_minor"].alias("tax_minor"),
        totals["grand_total"]["amount_minor"].alias("total_minor"),
        sf.size("p.lines").cast("int").alias("line_count"),
        sf.aggregate("p.lines", sf.lit(0).cast("long"), lambda acc, x: acc + x["quantity"]).alias(
            "units"
        ),
        "status",
        sf.col("occurred_at").alias("placed_at"),
        "paid_at",
        "shipped_at",
        "delivered_at",
        "cancelled_at",
        "returned_at",
        "updated_at",
    )


def order_lines(order_events: DataFrame) -> DataFrame:
    """One row per line of each placed order (line_no from 1, in the payload's order)."""
    placed = _placed(order_events)
    exploded = placed.select(
        "order_id",
        sf.col("p.customer_id").alias("customer_id"),
        sf.coalesce(sf.col("p.region"), sf.col("event_region")).alias("region"),
        sf.col("occurred_at").alias("placed_at"),
        sf.posexplode("p.lines").alias("pos", "line"),
    )
    line = sf.col("line")
    quantity = line["quantity"]
    unit = line["unit_price"]["amount_minor"]
    discount = sf.coalesce(line["discount"]["amount_minor"], sf.lit(0).cast("long"))
    return exploded.select(
        "order_id",
        (sf.col("pos") + 1).cast("int").alias("line_no"),
        line["line_id"].alias("line_id"),
        line["product_id"].alias("product_id"),
        line["sku"].alias("sku"),
        line["seller_id"].alias("seller_id"),
        line["warehouse_id"].alias("warehouse_id"),
        quantity.alias("quantity"),
        unit.alias("unit_price_minor"),
        discount.alias("discount_minor"),
        (quantity * unit - discount).alias("line_total_minor"),
        line["unit_price"]["currency"].alias("currency"),
        "customer_id",
        "region",
        "placed_at",
    )


def payments(payment_events: DataFrame) -> DataFrame:
    """One row per payment: amounts authorised, captured and refunded, status and times."""
    amount = _json("$.amount.amount_minor").cast("long")

    def total(event_type: str) -> Column:
        return sf.sum(sf.when(sf.col("event_type") == event_type, amount))

    def first_at(event_type: str) -> Column:
        return sf.min(sf.when(sf.col("event_type") == event_type, sf.col("occurred_at")))

    folded = payment_events.groupBy(sf.col("aggregate_id").alias("payment_id")).agg(
        _last_non_null("order_id").alias("order_id"),
        _last_non_null("customer_id").alias("customer_id"),
        _first_by_time("region").alias("region"),
        sf.max(_json("$.method")).alias("method"),
        sf.max(_json("$.gateway")).alias("gateway"),
        sf.max(_json("$.amount.currency")).alias("currency"),
        sf.max(sf.when(sf.col("event_type") == "payment.authorized", amount)).alias(
            "authorized_minor"
        ),
        sf.coalesce(total("payment.captured"), sf.lit(0).cast("long")).alias("captured_minor"),
        sf.coalesce(total("payment.refunded"), sf.lit(0).cast("long")).alias("refunded_minor"),
        _count("payment.failed").alias("failures"),
        sf.max(_ranked_status(PAYMENT_STATUS, sf.lit(True)))["status"].alias("status"),
        first_at("payment.authorized").alias("authorized_at"),
        first_at("payment.captured").alias("captured_at"),
        first_at("payment.failed").alias("failed_at"),
        sf.max(sf.when(sf.col("event_type") == "payment.refunded", sf.col("occurred_at"))).alias(
            "refunded_at"
        ),
        sf.max("occurred_at").alias("updated_at"),
    )
    partly = (sf.col("status") == "refunded") & (
        sf.col("refunded_minor") < sf.col("captured_minor")
    )
    return folded.withColumn(
        "status", sf.when(partly, sf.lit("partially_refunded")).otherwise(sf.col("status"))
    )


# -- the job -----------------------------------------------------------------------------------


def build(spark: SparkSession, store: TableStore, *, full: bool, since: date | None) -> JobResult:
    """Bronze → silver on ``store``: a full rebuild, or the window from ``since`` (or default)."""
    start = None if full else window_start(spark, store, EVENTS, "event_date", since)
    full = start is None
    mode: WriteMode = "overwrite" if full else "merge"
    bronze = read_bronze(spark, store, start)
    rows_in = bronze.count()
    written = {
        EVENTS: write_table(
            store, EVENTS, events(bronze), mode=mode, keys=EVENT_KEYS, partition_by=("event_date",)
        )
    }
    # Everything below folds whole entities, so it reads silver's events (all of them, once
    # de-duplicated and merged), not the window's bronze rows.
    every = read_table(spark, store, EVENTS)
    window = None if start is None else every.where(sf.col("event_date") >= sf.lit(start))

    def touched(frame: DataFrame, key: str, ids: DataFrame | None) -> DataFrame:
        return frame if ids is None else frame.join(ids, key, "left_semi")

    def ids_in_window(domain: str) -> DataFrame | None:
        if window is None:
            return None
        return window.where(sf.col("domain") == domain).select("aggregate_id").distinct()

    session_ids = None
    if window is not None:
        # A session changes when it has an event in the window or a checkout it started
        # completed in the window (checkout.completed carries no session_id).
        started = every.where("event_type = 'checkout.started'").select(
            "session_id", _json("$.checkout_id").alias("checkout_id")
        )
        via_checkout = started.join(completed_checkouts(window), "checkout_id").select("session_id")
        session_ids = (
            window.where(sf.col("session_id").isNotNull())
            .select("session_id")
            .unionByName(via_checkout)
            .distinct()
        )
    order_events = touched(
        every.where("domain = 'orders'"), "aggregate_id", ids_in_window("orders")
    )
    payment_events = touched(
        every.where("domain = 'payments'"), "aggregate_id", ids_in_window("payments")
    )
    outputs = (
        (SESSIONS, sessions(touched(every, "session_id", session_ids), every), SESSION_KEYS),
        (ORDERS, orders(order_events), ORDER_KEYS),
        (ORDER_LINES, order_lines(order_events), ORDER_LINE_KEYS),
        (PAYMENTS, payments(payment_events), PAYMENT_KEYS),
    )
    for table, frame, keys in outputs:
        written[table] = write_table(store, table, frame, mode=mode, keys=keys)
    return JobResult(NAME, rows_in, written)


def run(
    settings: Settings,
    spark: SparkSession | None = None,
    full: bool = False,
    since: date | None = None,
) -> JobResult:
    """Build the silver tables of the lake in ``settings`` (see the module docstring)."""
    if full and since is not None:
        raise LakeError("a run is either full or incremental from a date, not both")

    def body(session: SparkSession) -> JobResult:
        return build(session, lake_store_for(session, settings), full=full, since=since)

    return with_session(settings, spark, "souk-silver", body)


def main(argv: list[str] | None = None) -> None:
    """``spark-submit jobs/silver.py [--full | --since YYYY-MM-DD]``."""
    parser = job_arguments("jobs.silver", "Bronze events → silver events, sessions, orders.")
    args = parser.parse_args(argv)
    try:
        result = run(get_settings(), full=args.full, since=args.since)
    except LakeError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(result.summary())


if __name__ == "__main__":
    main()
