"""Gold: what recommendations, trending and reporting read, folded from the silver tables.

source     ``silver/events``, ``silver/orders``, ``silver/order_lines`` (run silver first), only
           what happened up to the run's as-of time (``--as-of``, default now)
transform  signals: a product view or cart add (its event) and a purchase (one per order line,
           as the streaming trending job counts them: quantity does not multiply)
sink       ``gold/user_item_interactions``  customer_id, product_id, strength (each signal's
                                            weight, view 1 / cart 3 / purchase 5, times
                                            ``exp(-ln 2 * age_days / half_life_days)``, age up to
                                            the as-of time), views, cart_adds, purchases,
                                            events, last_at
           ``gold/item_stats``              product_id, views, cart_adds, purchases (orders
                                            with the product), units, conversion
                                            (purchases / views; null without views)
           ``gold/co_purchases``            product_a < product_b, orders holding both
           ``gold/customer_stats``          per customer and currency: orders, spend_minor,
                                            first/last order time, recency_days
           ``gold/seller_stats``            per seller and currency: orders, units, revenue_minor
           ``gold/trending_daily``          per UTC day and region: the top ``trending_top_n``
                                            products by summed signal weights (the settings'
                                            trending weights), rank 1 = best (ties: product id)

Purchase signals count every placed order (intent, also when it was later cancelled, as in the
streaming job); money (spend, revenue) counts only orders paid by the as-of time and not
cancelled as a whole, in integer minor units per currency, never summed across currencies.
Seller revenue is the lines' ``quantity * unit_price - line discount``; customer spend is the
orders' grand totals.

Incremental: ``gold/trending_daily`` (its days are independent): the days from ``--since`` (or,
by default, ``LOOKBACK_DAYS`` before its newest day) are recomputed and MERGEd on (day, region,
rank); a day only gains signals, so every rank it had stays filled. The other tables are
totals over all time or decay with the as-of time, so every run recomputes them (overwrite).
``--full`` overwrites every table; run it after changing ``trending_top_n`` or the trending
weights, and give gold the same ``--since`` as silver when silver reprocessed older days.

Run: ``spark-submit jobs/gold.py [--full | --since YYYY-MM-DD] [--as-of ISO-TIME]``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as sf

from jobs.lake.port import LakeError, TableStore
from jobs.lake.spark_delta import lake_store_for
from jobs.result import JobResult
from jobs.silver import EVENTS, ORDER_LINES, ORDERS, job_arguments, window_start, with_session
from jobs.spark.delta_io import WriteMode, read_table, write_table
from souk.settings import Settings, get_settings

NAME = "gold"
INTERACTIONS = "gold/user_item_interactions"
ITEM_STATS = "gold/item_stats"
CO_PURCHASES = "gold/co_purchases"
CUSTOMER_STATS = "gold/customer_stats"
SELLER_STATS = "gold/seller_stats"
TRENDING_DAILY = "gold/trending_daily"
TRENDING_KEYS = ("day", "region", "rank")
#: A signal loses half its interaction strength in this many days.
HALF_LIFE_DAYS = 30.0
_MICROS_PER_DAY = 86_400_000_000


@dataclass(frozen=True)
class Weights:
    """Points of one signal of each kind."""

    view: int = 1
    cart: int = 3
    purchase: int = 5


#: The interaction weights (the recommender's implicit-feedback confidence).
INTERACTION_WEIGHTS = Weights()


def trending_weights(settings: Settings) -> Weights:
    """The streaming trending job's weights, so the daily baseline ranks alike."""
    return Weights(
        view=settings.trending_weight_view,
        cart=settings.trending_weight_cart,
        purchase=settings.trending_weight_purchase,
    )


# -- transforms --------------------------------------------------------------------------------


def signals(events: DataFrame, lines: DataFrame, weights: Weights) -> DataFrame:
    """(kind, customer_id, product_id, region, occurred_at, weight): views, cart adds, buys."""

    def of(frame: DataFrame, kind: str, at: str, weight: int) -> DataFrame:
        return frame.select(
            sf.lit(kind).alias("kind"),
            "customer_id",
            "product_id",
            "region",
            sf.col(at).alias("occurred_at"),
            sf.lit(weight).cast("long").alias("weight"),
        )

    product = sf.col("product_id").isNotNull()
    views = events.where((sf.col("event_type") == "product.viewed") & product)
    carts = events.where((sf.col("event_type") == "cart.item_added") & product)
    return (
        of(views, "view", "occurred_at", weights.view)
        .unionByName(of(carts, "cart", "occurred_at", weights.cart))
        .unionByName(of(lines.where(product), "purchase", "placed_at", weights.purchase))
    )


def _kind(kind: str) -> Column:
    return sf.count(sf.when(sf.col("kind") == kind, True))


def interactions(signal: DataFrame, as_of: datetime, half_life_days: float) -> DataFrame:
    """Per (customer, product): decayed strength, counts and the last signal's time."""
    age_days = (sf.unix_micros(sf.lit(as_of)) - sf.unix_micros("occurred_at")) / sf.lit(
        float(_MICROS_PER_DAY)
    )
    decay = sf.exp(sf.lit(-math.log(2) / half_life_days) * age_days)
    return (
        signal.where(sf.col("customer_id").isNotNull())
        .groupBy("customer_id", "product_id")
        .agg(
            sf.sum(sf.col("weight") * decay).alias("strength"),
            _kind("view").alias("views"),
            _kind("cart").alias("cart_adds"),
            _kind("purchase").alias("purchases"),
            sf.count(sf.lit(1)).alias("events"),
            sf.max("occurred_at").alias("last_at"),
        )
    )


def item_stats(signal: DataFrame, lines: DataFrame) -> DataFrame:
    """Per product: views, cart adds, orders holding it, units sold and conversion."""
    counted = signal.groupBy("product_id").agg(
        _kind("view").alias("views"), _kind("cart").alias("cart_adds")
    )
    bought = lines.groupBy("product_id").agg(
        sf.countDistinct("order_id").alias("purchases"), sf.sum("quantity").alias("units")
    )
    joined = counted.join(bought, "product_id", "full")
    views = sf.coalesce(sf.col("views"), sf.lit(0).cast("long"))
    purchases = sf.coalesce(sf.col("purchases"), sf.lit(0).cast("long"))
    return joined.select(
        "product_id",
        views.alias("views"),
        sf.coalesce(sf.col("cart_adds"), sf.lit(0).cast("long")).alias("cart_adds"),
        purchases.alias("purchases"),
        sf.coalesce(sf.col("units"), sf.lit(0).cast("long")).alias("units"),
        # Spark 4 is ANSI: a plain division by zero views would fail the job.
        sf.when(views > 0, purchases.cast("double") / views.cast("double")).alias("conversion"),
    )


def co_purchases(lines: DataFrame) -> DataFrame:
    """Pairs of products (product_a < product_b) and how many orders held both."""
    held = lines.select("order_id", "product_id").where("product_id IS NOT NULL").distinct()
    a, b = held.alias("a"), held.alias("b")
    pairs = a.join(
        b,
        (sf.col("a.order_id") == sf.col("b.order_id"))
        & (sf.col("a.product_id") < sf.col("b.product_id")),
    )
    return pairs.groupBy(
        sf.col("a.product_id").alias("product_a"), sf.col("b.product_id").alias("product_b")
    ).agg(sf.countDistinct("a.order_id").alias("orders"))


def counted_orders(orders: DataFrame, as_of: datetime) -> DataFrame:
    """Orders whose money counts: paid by ``as_of`` and not cancelled as a whole by then."""
    moment = sf.lit(as_of)
    paid = sf.col("paid_at").isNotNull() & (sf.col("paid_at") <= moment)
    cancelled = sf.col("cancelled_at").isNotNull() & (sf.col("cancelled_at") <= moment)
    return orders.where(paid & ~cancelled)


def customer_stats(paid: DataFrame, as_of: datetime) -> DataFrame:
    """Per customer and currency: orders, spend (minor units), first/last order, recency."""
    since_last = sf.unix_micros(sf.lit(as_of)) - sf.unix_micros(sf.max("placed_at"))
    return paid.groupBy("customer_id", "currency").agg(
        sf.count(sf.lit(1)).alias("orders"),
        sf.sum("total_minor").cast("long").alias("spend_minor"),
        sf.min("placed_at").alias("first_order_at"),
        sf.max("placed_at").alias("last_order_at"),
        sf.floor(since_last / sf.lit(_MICROS_PER_DAY)).cast("int").alias("recency_days"),
    )


def seller_stats(lines: DataFrame, paid: DataFrame) -> DataFrame:
    """Per seller and currency: orders, units and revenue (minor units) of counted orders."""
    sold = lines.join(paid.select("order_id"), "order_id", "left_semi")
    return sold.groupBy("seller_id", "currency").agg(
        sf.countDistinct("order_id").alias("orders"),
        sf.sum("quantity").cast("long").alias("units"),
        sf.sum("line_total_minor").cast("long").alias("revenue_minor"),
    )


def trending_daily(signal: DataFrame, top_n: int) -> DataFrame:
    """Per UTC day and region, the ``top_n`` products by summed weights, ranked from 1."""
    scored = (
        signal.withColumn("day", sf.to_date("occurred_at"))
        .groupBy("day", "region", "product_id")
        .agg(sf.sum("weight").cast("long").alias("score"))
    )
    best = Window.partitionBy("day", "region").orderBy(sf.desc("score"), sf.asc("product_id"))
    ranked = scored.withColumn("rank", sf.row_number().over(best).cast("int"))
    return ranked.where(sf.col("rank") <= top_n).select(
        "day", "region", "rank", "product_id", "score"
    )


# -- the job -----------------------------------------------------------------------------------


def _silver(spark: SparkSession, store: TableStore, table: str) -> DataFrame:
    if not store.exists(table):
        raise LakeError(f"{table} is missing: run the silver job first (jobs/silver.py)")
    return read_table(spark, store, table)


def _count_all(*frames: DataFrame) -> int:
    """The rows of all ``frames`` in one Spark job (it also fills their caches)."""
    ones = [frame.select(sf.lit(1).alias("one")) for frame in frames]
    return reduce(lambda left, right: left.union(right), ones).count()


def build(
    spark: SparkSession,
    store: TableStore,
    settings: Settings,
    *,
    full: bool,
    since: date | None,
    as_of: datetime,
    half_life_days: float = HALF_LIFE_DAYS,
) -> JobResult:
    """Silver → gold on ``store`` as of ``as_of`` (see the module docstring)."""
    if half_life_days <= 0:
        raise LakeError(f"half_life_days must be positive, got {half_life_days}")
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    moment = sf.lit(as_of)
    events = _silver(spark, store, EVENTS).where(sf.col("occurred_at") <= moment)
    orders = _silver(spark, store, ORDERS).where(sf.col("placed_at") <= moment)
    lines = _silver(spark, store, ORDER_LINES).where(sf.col("placed_at") <= moment)
    # Read once, used by every table below.
    events, orders, lines = events.persist(), orders.persist(), lines.persist()
    try:
        rows_in = _count_all(events, orders, lines)
        interaction_signals = signals(events, lines, INTERACTION_WEIGHTS)
        paid = counted_orders(orders, as_of)
        written = {
            INTERACTIONS: interactions(interaction_signals, as_of, half_life_days),
            ITEM_STATS: item_stats(interaction_signals, lines),
            CO_PURCHASES: co_purchases(lines),
            CUSTOMER_STATS: customer_stats(paid, as_of),
            SELLER_STATS: seller_stats(lines, paid),
        }
        rows_out = {
            table: write_table(store, table, frame, mode="overwrite")
            for table, frame in written.items()
        }
        start = None if full else window_start(spark, store, TRENDING_DAILY, "day", since)
        trending_signals = signals(events, lines, trending_weights(settings))
        mode: WriteMode = "overwrite"
        if start is not None:
            trending_signals = trending_signals.where(sf.to_date("occurred_at") >= sf.lit(start))
            mode = "merge"
        rows_out[TRENDING_DAILY] = write_table(
            store,
            TRENDING_DAILY,
            trending_daily(trending_signals, settings.trending_top_n),
            mode=mode,
            keys=TRENDING_KEYS,
            partition_by=("day",),
        )
    finally:
        events.unpersist()
        orders.unpersist()
        lines.unpersist()
    return JobResult(NAME, rows_in, rows_out)


def run(
    settings: Settings,
    spark: SparkSession | None = None,
    full: bool = False,
    since: date | None = None,
    *,
    as_of: datetime | None = None,
    half_life_days: float = HALF_LIFE_DAYS,
) -> JobResult:
    """Build the gold tables of the lake in ``settings`` as of ``as_of`` (default now)."""
    if full and since is not None:
        raise LakeError("a run is either full or incremental from a date, not both")
    moment = as_of or datetime.now(UTC)

    def body(session: SparkSession) -> JobResult:
        store = lake_store_for(session, settings)
        return build(
            session,
            store,
            settings,
            full=full,
            since=since,
            as_of=moment,
            half_life_days=half_life_days,
        )

    return with_session(settings, spark, "souk-gold", body)


def _as_of(text: str) -> datetime:
    """An ISO time (a date or date-time; UTC when it names no zone)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def main(argv: list[str] | None = None) -> None:
    """``spark-submit jobs/gold.py [--full | --since YYYY-MM-DD] [--as-of ISO-TIME]``."""
    parser = job_arguments("jobs.gold", "Silver tables → gold interactions, stats, trending.")
    parser.add_argument(
        "--as-of", type=_as_of, default=None, help="Time the gold tables describe (default now)."
    )
    parser.add_argument(
        "--half-life-days",
        type=float,
        default=HALF_LIFE_DAYS,
        help=f"Interaction decay half-life (default {HALF_LIFE_DAYS:g}).",
    )
    args = parser.parse_args(argv)
    try:
        result = run(
            get_settings(),
            full=args.full,
            since=args.since,
            as_of=args.as_of,
            half_life_days=args.half_life_days,
        )
    except LakeError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    print(result.summary())


if __name__ == "__main__":
    main()
