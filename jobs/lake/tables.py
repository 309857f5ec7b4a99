"""The lake's tables: names, schemas and keys of the bronze layer (silver and gold: jobs/)."""

from __future__ import annotations

import pyarrow as pa

#: Bronze: every event of one domain as it travelled (the envelope, the payload as JSON text),
#: with where it came from. Partitioned by event date and region; unique per event_id.
BRONZE_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("schema_version", pa.int32(), nullable=False),
        pa.field("occurred_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("aggregate_type", pa.string(), nullable=False),
        pa.field("aggregate_id", pa.string(), nullable=False),
        pa.field("correlation_id", pa.string()),
        pa.field("causation_id", pa.string()),
        pa.field("payload", pa.string(), nullable=False),  # JSON text
        pa.field("topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("archived_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("event_date", pa.date32(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
    ]
)
BRONZE_PARTITIONS = ("event_date", "region")
#: A MERGE on these inserts each event once (partition columns first: they prune files).
BRONZE_KEYS = ("event_date", "region", "event_id")


def bronze_table(domain: str) -> str:
    """The bronze table of ``domain``'s events, e.g. ``bronze/orders``."""
    return f"bronze/{domain}"
