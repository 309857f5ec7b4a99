"""Fraud signals: per-entity velocity, amount, region, quantity and sharing features, and alerts.

source  ``<region>.checkout.v1`` (checkout.started: amount, lines, shipping country, device,
        client IP and its region, payment instrument) and ``<region>.customers.v1``
        (user.registered: the account's home region; its ``occurred_at`` is the account's
        creation time), one Flink SQL source with the envelopes' event-time watermark,
        payload kept as raw JSON
transform  each checkout fanned out to the entities it counts for (customer, instrument,
        device, client IP; a registration to its customer) → keyed by entity → one keyed
        state per entity (``pipelines.fraud_rules.History``: the orders of the last 24 h of
        event time, the customer's all-time amount moments and account) → the entity's
        features as of its newest order; once the watermark passes a checkout's event time
        (or, in a quiet stream, a few seconds after it arrived) each entity evaluates its rules
        as of that checkout → the rule hits, keyed by checkout, wait for every entity of it
sink    the Feast online store (``features.views``: customer_fraud_signals,
        instrument_fraud_signals, device_fraud_signals, ip_fraud_signals: every event's
        new values, written in batches per view at most PUSH_DELAY_MS after the event) and
        ``fraud.alert_raised`` events on ``<region>.fraud.v1`` (the checkout's region) keyed
        by alert id, for every checkout at least one rule fired on, with all the rules that
        fired

Time is the envelope's ``occurred_at``. No event is dropped for lateness: a late checkout still
counts in its entities' state and its rules are evaluated as soon as it arrives behind the
watermark. Features are a pure function of the orders an entity has seen
(``pipelines.fraud_rules``), whatever order they arrived in, and every Feast write is an upsert
of the entity's values as of its newest order; Feast's "skip an older timestamp" check is
turned off for the job's store (the job is the views' only writer and writes each key's values
in state order), so a recomputed value always lands. Alerts are evaluated in event time and
their event id and alert id derive from the checkout. A job restored from a checkpoint
therefore ends with the same feature values, and republishes the same alert events (consumers
dedupe by event id), as one that never stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, MapFunction, TimeDomain
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from pipelines import fraud_rules as fr
from pipelines.common.context import JobContext
from pipelines.common.job import Job
from pipelines.common.runner import main
from pipelines.common.sources import envelope_source
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings

_LOG = logging.getLogger("souk.pipelines.fraud")

#: The source table.
SOURCE = "fraud_events"
#: The event types the job reads.
CHECKOUT_STARTED = "checkout.started"
USER_REGISTERED = "user.registered"
#: Epoch milliseconds of ``occurred_at`` (a TIMESTAMP_LTZ cannot cross into thread-mode
#: Python; the environment's session time zone is UTC).
EPOCH_MS = (
    "CAST(EXTRACT(EPOCH FROM occurred_at) AS BIGINT) * 1000 "
    "+ MOD(CAST(EXTRACT(MILLISECOND FROM occurred_at) AS BIGINT), 1000)"
)
#: How long past its arrival a checkout's rules wait for the watermark at most (on top of
#: the out-of-orderness and idle timeout): a quiet stream still gets its alerts.
EVALUATION_GRACE_S = 1.0
#: Feature rows wait at most this long (processing time) for a batched Feast write...
PUSH_DELAY_MS = 50
#: ...or until this many wait.
PUSH_BATCH = 256
#: How long (event time) a checkout's collected rule hits are kept after its alert.
COLLECT_TTL_MS = fr.HOUR_MS

# Records between the operators (pickled Python tuples).
ORDER = "order"
ACCOUNT = "account"
PUSH = "push"
PART = "part"
#: The collector's marker of a checkout whose alert was decided.
DONE = "*"


def fraud_topic(region: str) -> str:
    """The topic a region's alerts go to."""
    return topic_for("fraud", region)


#: Where the job's results live: the Feast views and the fraud topics.
READ_MODELS: tuple[str, ...] = (
    *(f"feast:{view}" for view, _key in fr.VIEWS.values()),
    "<region>.fraud.v1",
)


# --- the functions Flink runs (module level: they are pickled with the job) --------------------


def entity_key(kind: str, entity_id: str) -> str:
    """The key of an entity's state: ``<kind>:<id>``."""
    return f"{kind}:{entity_id}"


def fan_out(row: Any) -> Iterator[tuple[str, tuple[str, Any]]]:
    """A source row (event_id, event_type, region, at_ms, payload JSON) → one record per entity.

    A malformed payload is skipped (the relay validated what it published; one bad record
    must not stop the job).
    """
    event_id, event_type, region, at_ms, payload = row[0], row[1], row[2], row[3], row[4]
    try:
        data = json.loads(payload)
        if event_type == CHECKOUT_STARTED:
            order = fr.order_of(data, at_ms, region, event_id or "")
            fields = fr.order_fields(order)  # plain tuples pickle faster between operators
            for kind, entity_id in order.entities():
                yield entity_key(kind, entity_id), (ORDER, fields)
        elif event_type == USER_REGISTERED:
            account = fr.account_of(data, at_ms)
            yield entity_key(fr.CUSTOMER, str(data["customer_id"])), (ACCOUNT, account)
    except (ValueError, KeyError, TypeError) as error:
        _LOG.warning("fraud: skipped a malformed %s event %s: %s", event_type, event_id, error)


def _record_key(record: tuple[str, Any]) -> str:
    return str(record[0])


def _is_push(record: tuple[str, Any, Any]) -> bool:
    return record[0] == PUSH


def _is_part(record: tuple[str, Any, Any]) -> bool:
    return record[0] == PART


def _checkout_key(record: tuple[str, Any, Any]) -> str:
    return str(record[1])


def _view_key(record: tuple[str, Any, Any]) -> str:
    return str(record[1])


def _never(_value: Any) -> bool:
    return False


class EntitySignals(KeyedProcessFunction):  # type: ignore[misc]
    """One entity's state → its feature rows (on every event) and rule hits (per order).

    Emits ``(PUSH, view, row)`` after each event that changed the entity, and
    ``(PART, checkout_id, (order, kind, rules))`` once per order of a customer, instrument
    or device: when the watermark passes the order's event time, or ``grace_ms`` of
    processing time after it arrived, whichever comes first.
    """

    def __init__(self, grace_ms: int) -> None:
        self.grace_ms = grace_ms
        self.state: Any = None

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(
            ValueStateDescriptor("history", Types.PICKLED_BYTE_ARRAY())
        )

    def _history(self) -> fr.History | None:
        state = self.state.value()
        if state is None or isinstance(state, fr.History):  # (a checkpoint of older code)
            return state
        return fr.History.from_state(state)

    def process_element(self, value: Any, ctx: Any) -> Iterator[tuple[str, Any, Any]]:
        kind, entity_id = str(ctx.get_current_key()).split(":", 1)
        history = self._history() or fr.History()
        tag, item = value[1]
        if tag == ACCOUNT:
            if kind != fr.CUSTOMER or not history.register(item):
                return
        else:
            item = fr.Order(*item)
            if not history.add(item):
                return  # a redelivered checkout
            # (an order more than HISTORY_MS behind the newest only counts in the moments)
            if kind in fr.RULE_ENTITIES and item.checkout_id in history.orders:
                service = ctx.timer_service()
                service.register_event_time_timer(item.at_ms)
                # One processing-time timer per entity, at its earliest deadline (deadlines
                # only grow: a pending one means a timer at or before this one exists).
                due = service.current_processing_time() + self.grace_ms
                if not history.due_ms:
                    service.register_processing_time_timer(due)
                history.due_ms[item.checkout_id] = due
        self.state.update(history.to_state())
        latest = history.latest()
        if latest is not None:
            row = fr.feature_row(fr.features(kind, entity_id, history, latest))
            yield PUSH, fr.VIEWS[kind][0], row

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[tuple[str, Any, Any]]:
        history = self._history()
        if history is None:
            return
        processing = ctx.time_domain() != TimeDomain.EVENT_TIME
        due = history.overdue(timestamp) if processing else history.pending(at_ms=timestamp)
        kind, entity_id = str(ctx.get_current_key()).split(":", 1)
        for order in due:
            row = fr.features(kind, entity_id, history, order)
            history.mark_evaluated(order)
            yield PART, order.checkout_id, (order, kind, fr.rules(kind, row))
        if processing:
            # the entity's next deadline gets the timer (orders evaluated on the watermark
            # in between moved it)
            following = history.next_due()
            if following is not None:
                ctx.timer_service().register_processing_time_timer(following)
        if due:
            self.state.update(history.to_state())


class AlertCollector(KeyedProcessFunction):  # type: ignore[misc]
    """A checkout's rule hits from each of its entities → one alert if any rule fired.

    Emits ``(topic, alert_id, envelope JSON)``; keeps a marker until ``COLLECT_TTL_MS``
    (event time) after the checkout, so a late duplicate part raises nothing twice.
    """

    def __init__(self) -> None:
        self.state: Any = None

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(
            ValueStateDescriptor("parts", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, value: Any, ctx: Any) -> Iterator[tuple[str, str, bytes]]:
        order, kind, fired = value[2]
        parts: dict[str, list[str]] | None = self.state.value()
        if parts is None:
            parts = {}
            ctx.timer_service().register_event_time_timer(order.at_ms + COLLECT_TTL_MS)
        if DONE in parts:
            return  # already alerted (or found clean)
        parts[kind] = list(fired)
        if len(parts) < order.rule_parts():
            self.state.update(parts)
            return
        self.state.update({DONE: []})
        envelope = fr.alert_event(order, (rule for hits in parts.values() for rule in hits))
        if envelope is not None:
            alert = str(envelope.payload["alert_id"])
            yield fraud_topic(order.region), alert, REGISTRY.encode(envelope)

    def on_timer(self, timestamp: int, ctx: Any) -> None:
        self.state.clear()


class FeastPush(KeyedProcessFunction):  # type: ignore[misc]
    """Writes feature rows to the Feast online store in batches, keyed by view.

    Rows wait in checkpointed list state at most ``PUSH_DELAY_MS`` (or until
    ``PUSH_BATCH`` of them are in), then go in one write; of several rows of one entity the
    last wins. A checkpoint taken while rows wait holds them and the timer that writes them,
    so a restored job still writes them: no value computed before a checkpoint is lost.
    (Rows go to the online store as protos, ``OnlineWriter``: no DataFrame per write.)
    """

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.store: Any = None
        self.rows: Any = None
        self.count: Any = None

    def open(self, runtime_context: Any) -> None:
        self.store = OnlineWriter(job_feature_store(self.settings, self.redis_url))
        self.rows = runtime_context.get_list_state(
            ListStateDescriptor("rows", Types.PICKLED_BYTE_ARRAY())
        )
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.INT()))

    def process_element(self, value: Any, ctx: Any) -> Iterator[bool]:
        waiting = self.count.value() or 0
        self.rows.add(value[2])
        if waiting + 1 >= PUSH_BATCH:
            self._write(value[1])
            return
        if waiting == 0:
            service = ctx.timer_service()
            service.register_processing_time_timer(
                service.current_processing_time() + PUSH_DELAY_MS
            )
        self.count.update(waiting + 1)
        yield from ()

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[bool]:
        self._write(str(ctx.get_current_key()))
        yield from ()

    def _write(self, view: str) -> None:
        rows = list(self.rows.get() or ())
        if rows:
            self.store.write(view, latest_rows(view, rows))
        self.rows.clear()
        self.count.clear()


class OnlineWriter:
    """Feature rows → Feast's online store, straight to the provider's ``online_write_batch``.

    ``features.store.push_signals`` builds a DataFrame, then Feast turns it into Arrow and
    back into protos: 20-40 ms a write on the loaded 2-core machine, which made the job's
    Python thread the bottleneck at a few hundred checkouts/s. The job's rows are already
    typed by ``fraud_rules`` (ints, floats, strings, aware datetimes), so they go to the same
    protos directly (same stored values: the job's tests read them through Feast).
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.provider = store._get_provider()
        self._views: dict[str, tuple[Any, str, list[tuple[str, Any]]]] = {}

    def _view(self, view: str) -> tuple[Any, str, list[tuple[str, Any]]]:
        found = self._views.get(view)
        if found is None:
            feature_view = self.store.get_feature_view(view, allow_registry_cache=True)
            (join_key,) = [column.name for column in feature_view.entity_columns]
            types = [(f.name, f.dtype.to_value_type()) for f in feature_view.features]
            found = self._views[view] = (feature_view, join_key, types)
        return found

    def write(self, view: str, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` (the entity key, every feature, ``event_timestamp``) to ``view``."""
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        feature_view, join_key, types = self._view(view)
        batch = []
        for row in rows:
            values = {name: _proto_value(Value, kind, row[name]) for name, kind in types}
            key = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=row[join_key])])
            batch.append((key, values, row["event_timestamp"], None))
        self.provider.online_write_batch(self.store.config, feature_view, batch, progress=None)


def _proto_value(value_class: Any, kind: Any, value: Any) -> Any:
    """A Feast ``Value`` proto of ``value`` for the feature's value type."""
    from feast.value_type import ValueType

    if kind == ValueType.INT64:
        return value_class(int64_val=int(value))
    if kind == ValueType.DOUBLE:
        return value_class(double_val=float(value))
    if kind == ValueType.STRING:
        return value_class(string_val=str(value))
    if kind == ValueType.INT32:
        return value_class(int32_val=int(value))
    if kind == ValueType.FLOAT:
        return value_class(float_val=float(value))
    raise ValueError(f"fraud: no proto for a {kind} feature")


def latest_rows(view: str, rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The last row of each entity of ``view`` among ``rows`` (first-seen order)."""
    key = next(join_key for name, join_key in fr.VIEWS.values() if name == view)
    last: dict[str, dict[str, Any]] = {}
    for row in rows:
        last[str(row[key])] = dict(row)
    return list(last.values())


class AlertProducer(MapFunction):  # type: ignore[misc]
    """Publishes alert envelopes and waits for the broker's ack (a failure fails the task)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer: Any = None

    def open(self, runtime_context: Any) -> None:
        from confluent_kafka import Producer

        self.producer = Producer(
            {"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 0}
        )

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)

    def map(self, record: tuple[str, str, bytes]) -> bool:
        errors: list[Any] = []

        def delivered(error: Any, _message: Any) -> None:
            if error is not None:
                errors.append(error)

        topic, key, value = record
        self.producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
        if self.producer.flush(30) != 0 or errors:
            raise RuntimeError(f"fraud: alert {key} not published to {topic}: {errors}")
        return False


def job_feature_store(settings: Settings, redis_url: str) -> Any:
    """The job's ``FeatureStore``: Souk's, with Feast's timestamp check on writes off.

    Feast skips a write whose timestamp is not newer than the stored one, which drops a
    value recomputed at the same event time (a redelivered or out-of-order event, two orders
    in one millisecond). The job is the only writer of its views and writes each key's
    values in the order its state changes, so the last write is always the right one.
    """
    from features.store import feature_store

    store = feature_store(settings, redis_url)
    store.config.online_store.skip_dedup = True
    return store


def define(ctx: JobContext) -> None:
    """envelopes → per-entity state → features (Feast) and rule hits → alerts (Kafka)."""
    from features.store import apply, feature_store

    settings = ctx.settings
    # The feature views are registered before any task pushes to them.
    apply(feature_store(settings, ctx.redis_url))
    # source
    envelope_source(ctx, SOURCE, ["checkout", "customers"], "STRING")
    events = ctx.t_env.sql_query(
        f"""
        SELECT event_id, event_type, region, {EPOCH_MS} AS at_ms, payload
        FROM {SOURCE}
        WHERE event_type IN ('{CHECKOUT_STARTED}', '{USER_REGISTERED}') AND payload IS NOT NULL
        """
    )
    # transform
    wait_s = settings.stream_out_of_orderness_s + settings.stream_idle_timeout_s
    grace_ms = round(1000 * (wait_s + EVALUATION_GRACE_S))
    pickled = Types.PICKLED_BYTE_ARRAY()
    signals = (
        ctx.t_env.to_data_stream(events)
        .flat_map(fan_out, output_type=pickled)
        .name("fraud: fan out to entities")
        .key_by(_record_key, key_type=Types.STRING())
        .process(EntitySignals(grace_ms), output_type=pickled)
        .name("fraud: entity signals")
    )
    # sinks
    (
        signals.filter(_is_push)
        .key_by(_view_key, key_type=Types.STRING())
        .process(FeastPush(settings, ctx.redis_url), output_type=Types.BOOLEAN())
        .name("feast: fraud signals")
        .print()
    )
    (
        signals.filter(_is_part)
        .key_by(_checkout_key, key_type=Types.STRING())
        .process(AlertCollector(), output_type=pickled)
        .name("fraud: alerts per checkout")
        .map(AlertProducer(ctx.kafka_bootstrap), output_type=Types.BOOLEAN())
        .name("kafka: fraud alerts")
        .filter(_never)
        .print()
    )
    ctx.has_datastream = True


JOB = Job(
    name="fraud",
    description=(
        "Fraud signals per customer, payment instrument, device and client IP into the Feast "
        "online store, and fraud.alert_raised events for checkouts that fire a rule."
    ),
    source_domains=("checkout", "customers"),
    define=define,
    read_models=READ_MODELS,
)

if __name__ == "__main__":
    main(JOB)
