"""Real-time inventory: available units per SKU per warehouse and per region.

source  ``<region>.inventory.v1`` (stock.reserved / released / adjusted; keyed by SKU, so one
        SKU's movements arrive in order, each carrying ``available_after``, the warehouse's
        available units right after it, computed in the transaction that moved the stock)
transform  the latest ``available_after`` per (SKU, warehouse); their sum per (SKU, region)
sink    Redis hash ``souk:rt:stock:<sku>`` (fields ``wh:<warehouse>`` and ``region:<region>``,
        plus ``at:<warehouse>``, the event time of the value) and the compacted topic
        ``souk.inventory-availability.v1`` keyed by (sku, warehouse_id)

Every write is an upsert of a value held in Flink state, so a job restored from a checkpoint
ends with exactly the values an uninterrupted one would have. ``stock.committed`` does not
change availability (held units become sold ones); order and checkout events reach stock only
through these movements, which is why the job needs no other topic.

No event is ever too late here: the view is the latest value per key (in the SKU's partition
order, which is the order the transactions committed), not a window an event could miss, so
a late movement is applied like any other and nothing is dropped or counted as dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.common.context import JobContext
from pipelines.common.job import Job
from pipelines.common.runner import main
from pipelines.common.sinks import redis_sink, upsert_kafka_sink
from pipelines.common.sources import envelope_source
from souk.settings import Settings

#: Redis hash of one SKU's availability.
STOCK_KEY = "souk:rt:stock:{sku}"
#: Compacted topic of per-warehouse availability.
AVAILABILITY_TOPIC = "souk.inventory-availability.v1"

PAYLOAD = "ROW<sku STRING, warehouse_id STRING, available_after BIGINT>"


def stock_key(sku: str) -> str:
    """The Redis hash of ``sku``'s availability."""
    return STOCK_KEY.format(sku=sku)


def write_warehouse(kind: str, row: Any) -> Sequence[tuple[Any, ...]]:
    """(sku, warehouse_id, region, available, updated_at) → the SKU hash's warehouse fields."""
    sku, warehouse, _region, available, updated_at = row[0], row[1], row[2], row[3], row[4]
    key = stock_key(sku)
    if kind == "-D":
        return (("HDEL", key, f"wh:{warehouse}", f"at:{warehouse}"),)
    if kind == "-U":
        return ()  # the +U that follows overwrites the field
    return (("HSET", key, f"wh:{warehouse}", int(available), f"at:{warehouse}", updated_at or ""),)


def write_region(kind: str, row: Any) -> Sequence[tuple[Any, ...]]:
    """(sku, region, available) → the SKU hash's region field."""
    sku, region, available = row[0], row[1], row[2]
    if kind == "-D":
        return (("HDEL", stock_key(sku), f"region:{region}"),)
    if kind == "-U":
        return ()
    return (("HSET", stock_key(sku), f"region:{region}", int(available)),)


def define(ctx: JobContext) -> None:
    """stock movements → latest availability per warehouse and per region → Redis, topic."""
    t_env = ctx.t_env
    # Mini-batches: a burst of movements of one SKU becomes one change per batch (fewer Redis
    # round trips). Safe here as nothing reads event time (mini-batches replace watermarks).
    t_env.get_config().set("table.exec.mini-batch.enabled", "true")
    # source
    envelope_source(ctx, "stock_events", ["inventory"], PAYLOAD)
    # transform
    per_warehouse = t_env.sql_query(
        """
        SELECT payload.sku AS sku, payload.warehouse_id AS warehouse_id, region,
               LAST_VALUE(payload.available_after) AS available,
               MAX(occurred_at) AS updated_at
        FROM stock_events
        WHERE event_type IN ('stock.reserved', 'stock.released', 'stock.adjusted')
          AND payload.available_after IS NOT NULL
          AND payload.sku IS NOT NULL AND payload.warehouse_id IS NOT NULL
        GROUP BY payload.sku, payload.warehouse_id, region
        """
    )
    t_env.create_temporary_view("per_warehouse", per_warehouse)
    per_region = t_env.sql_query(
        "SELECT sku, region, SUM(available) AS available FROM per_warehouse GROUP BY sku, region"
    )
    # sinks
    # TIMESTAMP_LTZ does not cross into thread-mode Python: the time goes as ISO text.
    per_warehouse_text = t_env.sql_query(
        "SELECT sku, warehouse_id, region, available, "
        "DATE_FORMAT(updated_at, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') FROM per_warehouse"
    )
    redis_sink(ctx, per_warehouse_text, write_warehouse, "stock per warehouse")
    redis_sink(ctx, per_region, write_region, "stock per region")
    upsert_kafka_sink(
        ctx,
        "availability_topic",
        AVAILABILITY_TOPIC,
        "sku STRING, warehouse_id STRING, region STRING, available BIGINT, "
        "updated_at TIMESTAMP_LTZ(3)",
        ["sku", "warehouse_id"],
    )
    ctx.statements.add_insert("availability_topic", per_warehouse)


def sink_topics(_settings: Settings) -> Mapping[str, Mapping[str, str]]:
    """The compacted availability topic."""
    return {AVAILABILITY_TOPIC: {"cleanup.policy": "compact"}}


JOB = Job(
    name="inventory",
    description="Available units per SKU per warehouse and per region, into Redis and a topic.",
    source_domains=("inventory",),
    define=define,
    sink_topics=sink_topics,
    read_models=(STOCK_KEY, AVAILABILITY_TOPIC),
)

if __name__ == "__main__":
    main(JOB)
