"""Trending products: weighted views, cart adds and purchases in sliding event-time windows.

source  ``<region>.behaviour.v1`` (product.viewed), ``<region>.carts.v1`` (cart.item_added),
        ``<region>.orders.v1`` (order.placed: one purchase signal per line) and
        ``<region>.catalog.v1`` (product.created / product.updated: each product's category)
transform  each signal weighted (view 1, cart add 3, purchase 5 by default), its category taken
        from the catalog as of the signal's event time (temporal join; a product the catalog
        never announced counts under ``unknown``), counted in four scopes (``all``,
        ``region:<r>``, ``category:<c>``, ``region:<r>:category:<c>``), summed per product in
        tumbling panes (the greatest divisor of window and slide), the panes summed in hopping
        windows (``trending_window_s`` sliding by ``trending_slide_s``), the top
        ``trending_top_n`` kept per scope and window
sink    Redis sorted set ``souk:rt:trending:<scope>:<window_end_ms>`` (member product id, score
        the weighted sum; expires after two window sizes), hash ``souk:rt:trending:latest``
        (scope → newest window end written) and the compacted topic ``souk.trending.v1`` keyed
        by (scope, window_end, rank) with product_id and score

Time: the envelope's ``occurred_at``, with the sources' bounded out-of-orderness watermark. A
window fires once the watermark passes its end, and fires again for every event that arrives
up to ``stream_allowed_lateness_s`` after that (late firing). An event later than that
(``occurred_at`` behind the watermark minus the lateness) is dropped before any window sees
it, so it counts in no window at all, and is counted in ``souk:pipeline:trending``
(``late_dropped:<source>``). Catalog events are never dropped: a late category change applies
from the time it arrives.

Quantity does not multiply: an order line is one purchase and a cart add one add, whatever the
units (ten cables bought by one customer are one buying decision, and bulk orders would
otherwise drown what many customers pick).

Every Redis and topic write is an upsert of a value held in Flink state (ZADD of the score,
ZREM of a product that left the top N), so a job restored from a checkpoint that replays
events ends with exactly the values an uninterrupted one would have.

Everything up to the ranking runs in Flink SQL (the JVM); Python only applies the ranked
changes to Redis (batched: ``pipelines.common.sinks.redis_sink``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipelines.common.context import JobContext
from pipelines.common.job import Job
from pipelines.common.runner import main
from pipelines.common.sinks import StatsWriter, redis_sink, upsert_kafka_sink
from pipelines.common.sources import envelope_source, quote
from souk.settings import Settings

if TYPE_CHECKING:
    from pyflink.table import Table

#: Sorted set of one scope's top N in one window (member product id, score).
WINDOW_KEY = "souk:rt:trending:{scope}:{window_end_ms}"
#: Hash: scope → end (epoch ms) of the newest window written for it.
LATEST_KEY = "souk:rt:trending:latest"
#: Compacted topic of the rankings, keyed by (scope, window_end, rank).
TRENDING_TOPIC = "souk.trending.v1"
#: Category of a product the catalog has not announced (yet).
UNKNOWN_CATEGORY = "unknown"
#: The scope over every region and category.
ALL = "all"
#: Kind of the scores' rows (the others count late events), see scores().
SCORE = "score"

#: Moves ``LATEST_KEY[scope]`` forward only: ARGV = scope, window end (epoch ms).
ADVANCE_LATEST = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (not current) or tonumber(current) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

# Source tables (the late-event counts are named after them).
VIEWS = "trending_views"
CART_ADDS = "trending_cart_adds"
ORDERS = "trending_orders"
CATALOG = "trending_catalog"

PRODUCT_PAYLOAD = "ROW<product_id STRING>"
ORDER_PAYLOAD = "ROW<lines ARRAY<ROW<product_id STRING>>>"
CATALOG_PAYLOAD = "ROW<product_id STRING, category_id STRING>"


def region_scope(region: str) -> str:
    """The scope of one region."""
    return f"region:{region}"


def category_scope(category: str) -> str:
    """The scope of one category (every region)."""
    return f"category:{category}"


def region_category_scope(region: str, category: str) -> str:
    """The scope of one category in one region."""
    return f"region:{region}:category:{category}"


def window_key(scope: str, window_end_ms: int) -> str:
    """The sorted set of ``scope``'s top N in the window ending at ``window_end_ms``."""
    return WINDOW_KEY.format(scope=scope, window_end_ms=int(window_end_ms))


class TrendingWriter:
    """(scope, window_end_ms, product_id, score) changes → the window's sorted set (picklable).

    +I/+U set the product's score (ZADD, never an increment) and move the scope's latest
    pointer forward; -U/-D remove the product (it left the top N, or its +U follows).
    """

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = int(ttl_s)

    def __call__(self, kind: str, row: Any) -> Sequence[tuple[Any, ...]]:
        scope, window_end, product_id, score = row[0], int(row[1]), row[2], int(row[3])
        key = window_key(scope, window_end)
        if kind in ("-U", "-D"):
            return (("ZREM", key, product_id),)
        return (
            ("ZADD", key, score, product_id),
            ("EXPIRE", key, self.ttl_s),
            ("EVAL", ADVANCE_LATEST, 1, LATEST_KEY, scope, window_end),
        )


def latest_window(redis_client: Any, scope: str) -> int | None:
    """End (epoch ms) of the newest window written for ``scope``, or None."""
    value = redis_client.hget(LATEST_KEY, scope)
    return None if value is None else int(value)


def window_top(redis_client: Any, scope: str, window_end_ms: int, n: int) -> list[tuple[str, int]]:
    """The top ``n`` (product_id, score) of ``scope`` in one window, best first.

    Ties go to the smaller product id, as in the job's ranking.
    """
    members = redis_client.zrange(window_key(scope, window_end_ms), 0, -1, withscores=True)
    ranked = sorted(((_text(member), int(score)) for member, score in members), key=_order)
    return ranked[: max(n, 0)]


def top(redis_client: Any, scope: str, n: int) -> list[tuple[str, int]]:
    """The top ``n`` (product_id, score) of ``scope`` in its newest window, best first."""
    end = latest_window(redis_client, scope)
    return [] if end is None else window_top(redis_client, scope, end, n)


def _order(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _interval(seconds: float) -> str:
    """A SQL day-time interval of ``seconds`` (millisecond precision, up to 99 days)."""
    millis = round(seconds * 1000)
    days, rest = divmod(millis, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"INTERVAL '{days} {hours:02}:{minutes:02}:{secs:02}.{millis:03}' DAY TO SECOND(3)"


def pane_s(window_s: int, slide_s: int) -> int:
    """The pane (seconds) that tiles both the window and its slide: their greatest divisor."""
    return math.gcd(int(window_s), int(slide_s))


def _not_too_late(lateness_s: float) -> str:
    """Keeps events no later than the allowed lateness (scores() counts the others)."""
    return (
        "(CURRENT_WATERMARK(occurred_at) IS NULL OR occurred_at >= "
        f"CURRENT_WATERMARK(occurred_at) - {_interval(lateness_s)})"
    )


def scores(ctx: JobContext) -> Table:
    """Sources → weighted, categorised signals → windowed scores per region, category, product.

    Columns: kind, region, category_id, window_end (epoch ms), product_id, score; an updating
    table (a late event fires its windows again). Rows of kind ``score`` are the windows'
    scores; a row of kind ``late_dropped:<source>`` counts (in ``score``) the events of that
    source dropped as later than the allowed lateness.
    """
    settings = ctx.settings
    t_env = ctx.t_env
    config = t_env.get_config()
    config.set("table.local-time-zone", "UTC")  # window ends in epoch ms (below)
    # A mini-batch assigner replaces the sources' event-time watermarks with processing-time
    # ones, which CURRENT_WATERMARK would then read (the late filter below and the late
    # counters): no mini-batches in any stage that reads the sources (the environment's
    # default; define turns them on for the later stages).
    config.set("table.exec.mini-batch.enabled", "false")
    lateness_ms = round(settings.stream_allowed_lateness_s * 1000)
    config.set("table.exec.emit.allow-lateness", f"{lateness_ms} ms")
    config.set("table.exec.emit.late-fire.enabled", "true")
    config.set("table.exec.emit.late-fire.delay", "0 s")
    # sources
    envelope_source(ctx, VIEWS, ["behaviour"], PRODUCT_PAYLOAD)
    envelope_source(ctx, CART_ADDS, ["carts"], PRODUCT_PAYLOAD)
    envelope_source(ctx, ORDERS, ["orders"], ORDER_PAYLOAD)
    envelope_source(ctx, CATALOG, ["catalog"], CATALOG_PAYLOAD)
    # signals: (occurred_at, region, product_id, points), too-late events dropped
    keep = _not_too_late(settings.stream_allowed_lateness_s)
    t_env.execute_sql(
        f"""
        CREATE TEMPORARY VIEW trending_signals AS
        SELECT occurred_at, region, payload.product_id AS product_id,
               CAST({settings.trending_weight_view} AS BIGINT) AS points
        FROM {VIEWS}
        WHERE event_type = 'product.viewed' AND payload.product_id IS NOT NULL AND {keep}
        UNION ALL
        SELECT occurred_at, region, payload.product_id AS product_id,
               CAST({settings.trending_weight_cart} AS BIGINT) AS points
        FROM {CART_ADDS}
        WHERE event_type = 'cart.item_added' AND payload.product_id IS NOT NULL AND {keep}
        UNION ALL
        SELECT o.occurred_at, o.region, line.product_id AS product_id,
               CAST({settings.trending_weight_purchase} AS BIGINT) AS points
        FROM (SELECT * FROM {ORDERS} WHERE event_type = 'order.placed' AND {keep}) AS o
        CROSS JOIN UNNEST(o.payload.lines) AS line (product_id)
        WHERE line.product_id IS NOT NULL
        """
    )
    # each product's category over time: the latest catalog snapshot (a versioned view)
    t_env.execute_sql(
        f"""
        CREATE TEMPORARY VIEW trending_products AS
        SELECT product_id, category_id, occurred_at FROM (
          SELECT product_id, category_id, occurred_at,
                 ROW_NUMBER() OVER (PARTITION BY product_id ORDER BY occurred_at DESC) AS rn
          FROM (
            SELECT payload.product_id AS product_id,
                   COALESCE(payload.category_id, {quote(UNKNOWN_CATEGORY)}) AS category_id,
                   occurred_at
            FROM {CATALOG}
            WHERE event_type IN ('product.created', 'product.updated')
              AND payload.product_id IS NOT NULL
          )
        ) WHERE rn = 1
        """
    )
    # the category as of each signal's event time
    t_env.execute_sql(
        f"""
        CREATE TEMPORARY VIEW trending_categorised AS
        SELECT s.occurred_at, s.region, s.product_id, s.points,
               COALESCE(p.category_id, {quote(UNKNOWN_CATEGORY)}) AS category_id
        FROM trending_signals AS s
        LEFT JOIN trending_products FOR SYSTEM_TIME AS OF s.occurred_at AS p
          ON s.product_id = p.product_id
        """
    )
    slide = _interval(settings.trending_slide_s)
    size = _interval(settings.trending_window_s)
    pane = _interval(pane_s(settings.trending_window_s, settings.trending_slide_s))
    # Panes first: a hopping group window registers two timers for every window an event
    # falls in (120 for 1 h by 1 min: most of the job's CPU), a tumbling one two per event.
    # Each pane's sums (one row per product, region and category) then feed the hopping
    # windows, so those timers are paid per pane row instead of per event. Both are group
    # windows with the same allowed lateness: a late event re-fires its pane (an update),
    # which re-fires the hopping windows that hold it; later events are dropped above.
    # A pane's rowtime is its end minus 1 ms and it is emitted before the watermark that
    # closed it moves on, so it is never late for the hopping windows ending with it.
    t_env.execute_sql(
        f"""
        CREATE TEMPORARY VIEW trending_panes AS
        SELECT TUMBLE_ROWTIME(occurred_at, {pane}) AS pane_time, region, category_id,
               product_id, SUM(points) AS points
        FROM trending_categorised
        GROUP BY TUMBLE(occurred_at, {pane}), region, category_id, product_id
        """
    )
    # A window's rowtime is its end minus 1 ms; windows are whole seconds (the settings are),
    # so the end in epoch ms is (the rowtime's epoch seconds + 1) x 1000. EXTRACT reads the
    # wall clock of the session time zone, UTC here (as in every job's environment).
    # The windows count each pane once (the finest grain), the scopes are sums of their
    # results (define).
    # The late counts ride in the same query (rows of kind ``late_dropped:<source>``), so the
    # planner reads each source once for both.
    late = " UNION ALL ".join(
        f"""
        SELECT 'late_dropped:{source}' AS kind, CAST(NULL AS STRING) AS region,
               CAST(NULL AS STRING) AS category_id, CAST(NULL AS BIGINT) AS window_end,
               CAST(NULL AS STRING) AS product_id, COUNT(*) AS score
        FROM {source} WHERE NOT {keep}
        """
        for source in (VIEWS, CART_ADDS, ORDERS)
    )
    return t_env.sql_query(
        f"""
        SELECT {quote(SCORE)} AS kind, region, category_id,
               CAST((EXTRACT(EPOCH FROM HOP_ROWTIME(pane_time, {slide}, {size})) + 1) * 1000
                    AS BIGINT) AS window_end,
               product_id, SUM(points) AS score
        FROM trending_panes
        GROUP BY HOP(pane_time, {slide}, {size}), region, category_id, product_id
        UNION ALL
        {late}
        """
    )


def _scoped(source: str) -> str:
    """The scores of ``source`` (per region, category, product) summed per scope."""
    return f"""
        SELECT `scope`, window_end, product_id, SUM(score) AS score
        FROM {source}
        CROSS JOIN UNNEST(ARRAY[
          {quote(ALL)},
          'region:' || region,
          'category:' || category_id,
          'region:' || region || ':category:' || category_id
        ]) AS t (`scope`)
        GROUP BY `scope`, window_end, product_id
    """


def _top(source: str, n: int, columns: str) -> str:
    """The ``columns`` of the top ``n`` of ``source`` per (scope, window_end); ``rn`` is the rank.

    Ties go to the smaller product id.
    """
    return f"""
        SELECT {columns} FROM (
          SELECT *, ROW_NUMBER() OVER (PARTITION BY `scope`, window_end
                                       ORDER BY score DESC, product_id) AS rn
          FROM {source}
        ) WHERE rn <= {n}
    """


def define(ctx: JobContext) -> None:
    """signals → weighted scores per scope in sliding windows → top N → Redis, topic."""
    t_env = ctx.t_env
    n = ctx.settings.trending_top_n
    # source, transform
    windowed = scores(ctx)
    # Each stage is translated when it becomes a changelog stream; the next one reads that
    # stream, so the sources are read once (not once per sink) and every stage gets the
    # settings in force when it is translated.
    first = t_env.from_changelog_stream(t_env.to_changelog_stream(windowed))
    t_env.create_temporary_view("trending_first", first)
    t_env.create_temporary_view(
        "trending_fine",
        t_env.sql_query(
            "SELECT region, category_id, window_end, product_id, score FROM trending_first "
            f"WHERE kind = {quote(SCORE)}"
        ),
    )
    late = t_env.sql_query(f"SELECT kind, score FROM trending_first WHERE kind <> {quote(SCORE)}")
    redis_sink(ctx, late, StatsWriter(ctx.name), "late events")
    # What follows has a state TTL (the scope sums and the rankings keep every product of
    # every window, until their state expires; the catalog versions, windows and late counts
    # above must never expire) and mini-batches (a window fires all its products at once:
    # batching nets out partial sums, and products that pass through the top N on the way).
    ttl_s = 2 * ctx.settings.trending_window_s + ctx.settings.stream_allowed_lateness_s
    t_env.get_config().set("table.exec.state.ttl", f"{round(ttl_s * 1000)} ms")
    t_env.get_config().set("table.exec.mini-batch.enabled", "true")
    scoped = t_env.sql_query(_scoped("trending_fine"))
    shared = t_env.from_changelog_stream(t_env.to_changelog_stream(scoped))
    t_env.create_temporary_view("trending_scores", shared)
    # sinks
    # Without the rank column a product's row changes only when its own score does, so the
    # Redis writer can add and remove members by product id. Most products of a window pass
    # through the top N while it fires (+I then -D): a mini-batched aggregation per product
    # nets that out in the JVM, so Redis sees at most one change per product and batch.
    members = t_env.sql_query(
        f"""
        SELECT `scope`, window_end, product_id, MAX(score) AS score
        FROM ({_top("trending_scores", n, "`scope`, window_end, product_id, score")})
        GROUP BY `scope`, window_end, product_id
        """
    )
    redis_sink(ctx, members, TrendingWriter(2 * ctx.settings.trending_window_s), "trending")
    upsert_kafka_sink(
        ctx,
        "trending_topic",
        TRENDING_TOPIC,
        "`scope` STRING, window_end TIMESTAMP_LTZ(3), `rank` BIGINT, "
        "product_id STRING, score BIGINT",
        ["`scope`", "window_end", "`rank`"],
    )
    # The end is a timestamp before ranking, so the ranking's key is the topic's key.
    with_time = (
        "(SELECT `scope`, TO_TIMESTAMP_LTZ(window_end, 3) AS window_end, product_id, score "
        "FROM trending_scores)"
    )
    ranks = t_env.sql_query(
        _top(with_time, n, "`scope`, window_end, rn AS `rank`, product_id, score")
    )
    ctx.statements.add_insert("trending_topic", ranks)


def sink_topics(settings: Settings) -> Mapping[str, Mapping[str, str]]:
    """The rankings topic: compacted (the latest ranking per key) and pruned after a day.

    Every window has keys of its own, so compaction alone would keep every window forever.
    """
    retention_ms = max(86_400_000, 2 * settings.trending_window_s * 1000)
    return {TRENDING_TOPIC: {"cleanup.policy": "compact,delete", "retention.ms": str(retention_ms)}}


JOB = Job(
    name="trending",
    description=(
        "Top products by weighted views, cart adds and purchases in sliding windows, "
        "overall, per region and per category, into Redis and a topic."
    ),
    source_domains=("behaviour", "carts", "orders", "catalog"),
    define=define,
    sink_topics=sink_topics,
    read_models=(WINDOW_KEY, LATEST_KEY, TRENDING_TOPIC),
)

if __name__ == "__main__":
    main(JOB)
