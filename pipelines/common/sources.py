"""Kafka sources: the outbox topics' envelopes as Flink SQL tables with event time.

Every topic holds envelopes (``schemas.envelope.Envelope`` as JSON). A source table exposes
the envelope's fields, its ``payload`` typed as a SQL ``ROW`` the job declares, and
``occurred_at`` as the event-time attribute with a bounded out-of-orderness watermark.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.common.context import JobContext
from schemas.registry import topic_for


def domain_topics(ctx: JobContext, domains: Sequence[str]) -> list[str]:
    """The topics of ``domains`` in every configured region (``<region>.<domain>.v1``)."""
    return [topic_for(domain, region) for domain in domains for region in ctx.settings.regions]


def seconds_literal(seconds: float) -> str:
    """A SQL interval of ``seconds`` (millisecond precision)."""
    return f"INTERVAL '{seconds:.3f}' SECOND(3)"


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def with_options(options: dict[str, str]) -> str:
    """A ``WITH (...)`` clause."""
    return ",\n  ".join(f"{quote(key)} = {quote(value)}" for key, value in options.items())


def kafka_options(ctx: JobContext, topics: Sequence[str]) -> dict[str, str]:
    """Options of a Kafka source reading ``topics`` from the job's committed offsets.

    A fresh job (no checkpoint, no committed offsets) reads from the earliest offset; a
    restored one from the offsets in its checkpoint.
    """
    return {
        "connector": "kafka",
        "topic": ";".join(topics),
        "properties.bootstrap.servers": ctx.kafka_bootstrap,
        "properties.group.id": ctx.group_id,
        "properties.auto.offset.reset": "earliest",
        "properties.fetch.max.wait.ms": str(ctx.settings.kafka_fetch_wait_max_ms),
        "scan.startup.mode": "group-offsets",
        "format": "json",
        "json.timestamp-format.standard": "ISO-8601",
        # A record that is not an envelope is skipped (the relay validated what it published).
        "json.ignore-parse-errors": "true",
        "json.fail-on-missing-field": "false",
    }


def envelope_source(
    ctx: JobContext,
    table: str,
    domains: Sequence[str],
    payload: str,
    *,
    out_of_orderness_s: float | None = None,
) -> str:
    """Create the source table ``table`` over the topics of ``domains``; return its name.

    ``payload`` is the SQL type of the payload fields the job reads, e.g.
    ``ROW<sku STRING, available_after INT>``. Columns: ``event_id, event_type, occurred_at``
    (event time), ``aggregate_id, region, payload``.
    """
    delay = out_of_orderness_s
    if delay is None:
        delay = ctx.settings.stream_out_of_orderness_s
    ctx.t_env.execute_sql(
        f"""
        CREATE TEMPORARY TABLE {table} (
          event_id STRING,
          event_type STRING,
          occurred_at TIMESTAMP_LTZ(3),
          aggregate_id STRING,
          region STRING,
          payload {payload},
          WATERMARK FOR occurred_at AS occurred_at - {seconds_literal(delay)}
        ) WITH (
          {with_options(kafka_options(ctx, domain_topics(ctx, domains)))}
        )
        """
    )
    return table
