"""The analytics tables (ClickHouse DDL, identical for chdb and a ClickHouse server).

Every table the loader writes is a plain MergeTree and carries where its row came from
(``topic``, ``kafka_partition``, ``kafka_offset``): exactly once is the loader's job (offsets
committed with each batch, rows of an uncommitted batch deleted on restart, event ids checked
before insert), not a ReplacingMergeTree's eventual merge.

- ``events``: every event of every topic, one wide row (envelope + common ids + JSON payload);
- typed tables: ``behaviour`` (views, searches, recommendations served/clicked), ``cart_events``,
  ``checkouts``, ``orders`` (order.placed) with ``order_lines``, ``order_events`` (the
  lifecycle after placement), ``payments``, ``customers`` (user.registered), ``products``
  (catalog snapshots), ``fraud_alerts``;
- ``sessions``: a view over behaviour and cart events, one row per storefront session;
- ``loader_offsets``: the last offset of each topic partition, one row per partition and batch;
- ``loader_runs``: each loader run's id and group, written before its first batch (a batch id
  starts with its run's id: whose rows they are);
- ``currency_rates``: the rate table of the settings (for analysts' SQL).
"""

from __future__ import annotations

import functools

import pyarrow as pa

_SOURCE = "topic LowCardinality(String), kafka_partition Int32, kafka_offset Int64, batch_id UInt64"
_TS = "DateTime64(3, 'UTC')"

TABLES: dict[str, str] = {
    "events": f"""
        event_id String, event_type LowCardinality(String), schema_version UInt16,
        occurred_at {_TS}, event_date Date, region LowCardinality(String),
        domain LowCardinality(String), aggregate_type LowCardinality(String), aggregate_id String,
        correlation_id Nullable(String), causation_id Nullable(String),
        customer_id Nullable(String), session_id Nullable(String), order_id Nullable(String),
        product_id Nullable(String), payload String, loaded_at {_TS}, {_SOURCE}
    """,
    "behaviour": f"""
        event_id String, event_type LowCardinality(String), occurred_at {_TS},
        region LowCardinality(String), session_id String, customer_id Nullable(String),
        product_id Nullable(String), sku Nullable(String), source Nullable(String),
        search_id Nullable(String), recommendation_id Nullable(String),
        placement Nullable(String), model Nullable(String), model_version Nullable(String),
        position Nullable(UInt32), product_ids Array(String), query Nullable(String),
        result_count Nullable(UInt32), price_minor Nullable(Int64), currency Nullable(String),
        channel LowCardinality(String), {_SOURCE}
    """,
    "cart_events": f"""
        event_id String, event_type LowCardinality(String), occurred_at {_TS},
        region LowCardinality(String), cart_id String, session_id String,
        customer_id Nullable(String), sku String, product_id String, seller_id Nullable(String),
        quantity UInt32, quantity_in_cart UInt32, unit_price_minor Nullable(Int64),
        currency Nullable(String), reason Nullable(String), channel LowCardinality(String),
        {_SOURCE}
    """,
    "checkouts": f"""
        event_id String, event_type LowCardinality(String), occurred_at {_TS},
        region LowCardinality(String), checkout_id String, cart_id Nullable(String),
        customer_id String, session_id Nullable(String), order_id Nullable(String),
        payment_id Nullable(String), amount_minor Nullable(Int64), currency Nullable(String),
        channel Nullable(String), step Nullable(String), code Nullable(String),
        device_id Nullable(String), ip_region Nullable(String), line_count UInt32, {_SOURCE}
    """,
    "orders": f"""
        event_id String, placed_at {_TS}, region LowCardinality(String), order_id String,
        customer_id String, checkout_id Nullable(String), currency LowCardinality(String),
        subtotal_minor Int64, discount_minor Int64, shipping_minor Int64, tax_minor Int64,
        grand_total_minor Int64, payment_method LowCardinality(String),
        channel LowCardinality(String), prime Bool, line_count UInt32, units UInt32,
        ship_country LowCardinality(String), {_SOURCE}
    """,
    "order_lines": f"""
        event_id String, placed_at {_TS}, region LowCardinality(String), order_id String,
        customer_id String, line_id String, sku String, product_id String, seller_id String,
        warehouse_id Nullable(String), quantity UInt32, unit_price_minor Int64,
        discount_minor Int64, line_total_minor Int64, currency LowCardinality(String), {_SOURCE}
    """,
    "order_events": f"""
        event_id String, event_type LowCardinality(String), occurred_at {_TS},
        region LowCardinality(String), order_id String, customer_id String,
        reason Nullable(String), cancelled_by Nullable(String), line_ids Array(String),
        amount_minor Nullable(Int64), currency Nullable(String),
        fulfilment_group_id Nullable(String), seller_id Nullable(String),
        warehouse_id Nullable(String), carrier Nullable(String), {_SOURCE}
    """,
    "payments": f"""
        event_id String, event_type LowCardinality(String), occurred_at {_TS},
        region LowCardinality(String), payment_id String, order_id String, customer_id String,
        amount_minor Int64, currency LowCardinality(String), method Nullable(String),
        gateway Nullable(String), stage Nullable(String), error_code Nullable(String),
        retryable Nullable(Bool), refund_id Nullable(String), reason Nullable(String),
        {_SOURCE}
    """,
    "customers": f"""
        event_id String, registered_at {_TS}, region LowCardinality(String),
        customer_id String, country LowCardinality(String), locale String,
        signup_channel LowCardinality(String), prime Bool, marketing_opt_in Bool, {_SOURCE}
    """,
    "products": f"""
        event_id String, event_type LowCardinality(String), occurred_at {_TS},
        region LowCardinality(String), product_id String, product_version UInt32,
        seller_id String, title String, category_id String, category_path Array(String),
        brand Nullable(String), status LowCardinality(String), price_minor Int64,
        currency LowCardinality(String), {_SOURCE}
    """,
    "fraud_alerts": f"""
        event_id String, occurred_at {_TS}, region LowCardinality(String), alert_id String,
        subject_type LowCardinality(String), subject_id String, order_id Nullable(String),
        payment_id Nullable(String), customer_id Nullable(String), score Float64,
        severity LowCardinality(String), rules Array(String), model_version Nullable(String),
        action LowCardinality(String), {_SOURCE}
    """,
}

#: Sorting keys: the columns queries filter on first; ``event_id`` last (the dedupe probe).
ORDER_BY: dict[str, str] = {
    "events": "(event_date, event_type, event_id)",
    "behaviour": "(event_type, occurred_at, event_id)",
    "cart_events": "(occurred_at, event_id)",
    "checkouts": "(event_type, occurred_at, event_id)",
    "orders": "(region, placed_at, order_id)",
    "order_lines": "(region, placed_at, order_id, line_id)",
    "order_events": "(event_type, occurred_at, event_id)",
    "payments": "(event_type, occurred_at, event_id)",
    "customers": "(registered_at, customer_id)",
    "products": "(product_id, product_version, event_id)",
    "fraud_alerts": "(occurred_at, event_id)",
}

#: The tables the loader writes events into (``loader_offsets`` is its commit log).
DATA_TABLES: tuple[str, ...] = tuple(TABLES)

OFFSETS_TABLE = "loader_offsets"
RUNS_TABLE = "loader_runs"
RATES_TABLE = "currency_rates"

#: The loader's own tables (and the rate table): columns and sorting keys, like ``TABLES``.
SYSTEM_TABLES: dict[str, tuple[str, str]] = {
    OFFSETS_TABLE: (
        f"group String, topic String, kafka_partition Int32, kafka_offset Int64, "
        f"batch_id UInt64, committed_at {_TS}",
        "(group, topic, kafka_partition, kafka_offset)",
    ),
    # A loader run's id, the high bits of its batch ids: whose batches they are
    # (jobs.analytics.loader).
    RUNS_TABLE: (f"group String, run_id UInt64, started_at {_TS}", "(group, run_id)"),
    RATES_TABLE: (
        "currency String, exponent UInt8, rate_to_base Float64, base String",
        "currency",
    ),
}

_EXTRA = [
    # One row per storefront session (its region and channel are those of its first event).
    """CREATE VIEW IF NOT EXISTS sessions AS
    SELECT session_id,
           argMin(region, occurred_at) AS region,
           argMin(channel, occurred_at) AS channel,
           max(customer_id) AS customer_id,
           min(occurred_at) AS started_at,
           max(occurred_at) AS ended_at,
           countIf(event_type = 'product.viewed') AS views,
           countIf(event_type = 'search.performed') AS searches,
           countIf(event_type = 'cart.item_added') AS cart_adds,
           groupUniqArrayIf(cart_id, cart_id != '') AS cart_ids
    FROM (
        SELECT session_id, toString(region) AS region, toString(channel) AS channel,
               customer_id, occurred_at, toString(event_type) AS event_type, '' AS cart_id
        FROM behaviour
        UNION ALL
        SELECT session_id, toString(region), toString(channel), customer_id, occurred_at,
               toString(event_type), cart_id
        FROM cart_events
    )
    GROUP BY session_id""",
]


def ddl() -> list[str]:
    """Every CREATE statement, idempotent (IF NOT EXISTS), in dependency order."""
    every = {**{n: (c, ORDER_BY[n]) for n, c in TABLES.items()}, **SYSTEM_TABLES}
    tables = [
        f"CREATE TABLE IF NOT EXISTS {name} ({' '.join(text.split())}) "
        f"ENGINE = MergeTree ORDER BY {order_by}"
        for name, (text, order_by) in every.items()
    ]
    return tables + [" ".join(statement.split()) for statement in _EXTRA]


def columns(table: str) -> list[tuple[str, str]]:
    """(name, ClickHouse type) of each column of a loader-written table, in DDL order."""
    text = TABLES[table] if table in TABLES else SYSTEM_TABLES[table][0]
    out, depth, start = [], 0, 0
    for at, char in enumerate(text + ","):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:  # commas inside Array(...) / DateTime64(...) stay
            name, _, kind = " ".join(text[start:at].split()).partition(" ")
            if name:
                out.append((name, kind))
            start = at + 1
    return out


def _arrow_type(kind: str) -> tuple[pa.DataType, bool]:
    """The Arrow type a ClickHouse column is written from, and whether it takes NULL."""
    for wrapper, nullable in (("Nullable(", True), ("LowCardinality(", False)):
        if kind.startswith(wrapper):
            inner, _ = _arrow_type(kind[len(wrapper) : -1])
            return inner, nullable
    if kind.startswith("Array("):
        inner, _ = _arrow_type(kind[len("Array(") : -1])
        return pa.list_(inner), False
    if kind.startswith("DateTime64(3"):
        return pa.timestamp("ms", tz="UTC"), False
    return _SCALARS[kind], False


_SCALARS: dict[str, pa.DataType] = {
    "String": pa.string(),
    "Bool": pa.bool_(),
    "Date": pa.date32(),
    "Float64": pa.float64(),
    "UInt8": pa.uint8(),
    "UInt16": pa.uint16(),
    "UInt32": pa.uint32(),
    "UInt64": pa.uint64(),
    "Int32": pa.int32(),
    "Int64": pa.int64(),
}


@functools.cache
def arrow_schema(table: str) -> pa.Schema:
    """The Arrow schema the loader's batches for ``table`` have (names and types of the DDL)."""
    fields = []
    for name, kind in columns(table):
        arrow, nullable = _arrow_type(kind)
        fields.append(pa.field(name, arrow, nullable=nullable))
    return pa.schema(fields)
