"""The activity consumer: customers' recent signals and click-through counts in Redis.

A consumer group on ``<region>.behaviour.v1``, ``<region>.carts.v1`` and
``<region>.orders.v1`` of every served region:

- ``product.viewed``, ``cart.item_added``, ``order.placed`` (one per line) of a signed-in
  customer → ``souk:rec:recent:<customer_id>`` (list of ``v|c|p:<product_id>``, newest first,
  the last ``recs_recent_events`` kept), the taste that re-ranks the feed and search;
- ``recommendation.served`` → ``souk:rec:ctr`` field ``served|<model>|<version>`` += 1;
- ``recommendation.clicked`` → ``clicked|<model>|<version>`` += 1 the first time a list is
  clicked (its version from ``souk:rec:served:<recommendation_id>``, written when served).

Offsets are committed after Redis has applied a batch (at least once); each event id is
applied once (``souk:rec:seen:<event_id>``, SET NX in the same script), so a replay changes
nothing. Runs as a thread of ``souk serve`` or alone (``souk recommendations activity``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from confluent_kafka import Consumer, KafkaError, Message

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, SchemaError, topic_for
from serving.recommendations.adapters import (
    COUNTS_KEY,
    SIGNAL_CODES,
    recent_key,
    served_key,
)
from souk.settings import Settings
from transactional.shared.kafka import KafkaClientSettings, consumer_config

log = logging.getLogger("souk.recommendations.activity")

DOMAINS = ("behaviour", "carts", "orders")
SEEN_KEY = "souk:rec:seen:{event_id}"
CLICKED_KEY = "souk:rec:clicked:{recommendation_id}"
#: How long an applied event id is remembered (replays come within the topics' retention).
SEEN_TTL_S = 8 * 24 * 3600

# KEYS: seen, recent list. ARGV: seen ttl, keep, list ttl, entries (oldest first).
_SIGNALS = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then return 0 end
for i = 4, #ARGV do redis.call('LPUSH', KEYS[2], ARGV[i]) end
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""
# KEYS: seen, served key, counts. ARGV: seen ttl, "<model>|<version>", served ttl.
_SERVED = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'served|' .. ARGV[2], 1)
return 1
"""
# KEYS: seen, served key, clicked-once key, counts. ARGV: seen ttl, clicked ttl.
_CLICKED = """
if not redis.call('SET', KEYS[1], 1, 'NX', 'EX', ARGV[1]) then return 0 end
local version = redis.call('GET', KEYS[2])
if not version then version = 'unknown|unknown' end
if redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[4], 'clicked|' .. version, 1)
end
return 1
"""


def activity_topics(settings: Settings) -> list[str]:
    """The topics the consumer reads: behaviour, carts and orders of every served region."""
    return [topic_for(domain, region) for region in settings.regions for domain in DOMAINS]


class ActivityWriter:
    """Applies envelopes to the Redis read models (idempotent per event id)."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._keep = settings.recs_recent_events
        self._recent_ttl = settings.recs_recent_ttl_s
        self._served_ttl = settings.recs_served_ttl_s
        self._signals = client.register_script(_SIGNALS)
        self._served = client.register_script(_SERVED)
        self._clicked = client.register_script(_CLICKED)

    def apply(self, envelopes: Iterable[Envelope]) -> int:
        """Apply a batch in one pipelined round trip; how many envelopes were relevant."""
        pipe = self._client.pipeline(transaction=False)
        count = 0
        for envelope in envelopes:
            if self._queue(pipe, envelope):
                count += 1
        if count:
            pipe.execute()
        return count

    def _queue(self, pipe: Any, envelope: Envelope) -> bool:
        payload = envelope.payload
        seen = SEEN_KEY.format(event_id=envelope.event_id)
        kind = envelope.event_type
        if kind == "recommendation.served":
            version = f"{payload.get('model')}|{payload.get('model_version') or 'none'}"
            self._served(
                keys=[seen, served_key(str(payload["recommendation_id"])), COUNTS_KEY],
                args=[SEEN_TTL_S, version, self._served_ttl],
                client=pipe,
            )
            return True
        if kind == "recommendation.clicked":
            rid = str(payload["recommendation_id"])
            self._clicked(
                keys=[
                    seen,
                    served_key(rid),
                    CLICKED_KEY.format(recommendation_id=rid),
                    COUNTS_KEY,
                ],
                args=[SEEN_TTL_S, self._served_ttl],
                client=pipe,
            )
            return True
        customer, products, signal = _signal(kind, payload)
        if customer is None or not products:
            return False
        code = SIGNAL_CODES[signal]
        self._signals(
            keys=[seen, recent_key(customer)],
            args=[SEEN_TTL_S, self._keep, self._recent_ttl, *(f"{code}:{p}" for p in products)],
            client=pipe,
        )
        return True


def _signal(kind: str, payload: dict[str, Any]) -> tuple[str | None, list[str], str]:
    """(customer, product ids, signal kind) of a behaviour, cart or order event."""
    customer = payload.get("customer_id")
    if kind == "product.viewed":
        return customer, [str(payload["product_id"])], "view"
    if kind == "cart.item_added":
        return customer, [str(payload["product_id"])], "cart"
    if kind == "order.placed":
        lines = payload.get("lines") or []
        return customer, list(dict.fromkeys(str(line["product_id"]) for line in lines)), "purchase"
    return None, [], "view"


class ActivityConsumer:
    """A consumer-group member feeding :class:`ActivityWriter` from the topics."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        client: redis.Redis,
        *,
        topics: Sequence[str] | None = None,
        group: str | None = None,
        batch_max: int = 500,
    ) -> None:
        kafka = KafkaClientSettings(
            bootstrap=bootstrap,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
            client_id="souk-recommendations",
        )
        self.consumer = Consumer(consumer_config(kafka, group or settings.recs_consumer_group))
        self.topics = list(topics or activity_topics(settings))
        self.writer = ActivityWriter(client, settings)
        self.batch_max = batch_max
        self.applied = 0

    def poll_once(self, timeout_s: float = 0.5) -> int:
        """Consume one batch, apply it, commit its offsets; how many events were applied."""
        messages: list[Message] = self.consumer.consume(self.batch_max, timeout=timeout_s)
        envelopes: list[Envelope] = []
        done: list[Message] = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("activity consumer: %s", error)
                continue
            done.append(message)
            try:
                envelopes.append(REGISTRY.decode(message.value() or b""))
            except SchemaError as exc:  # not ours to fix: the archiver keeps rejected records
                log.warning("activity consumer skips a record of %s: %s", message.topic(), exc)
        applied = self.writer.apply(envelopes)
        if done:  # only now, with Redis written, do these offsets count as processed
            for message in done:
                self.consumer.store_offsets(message=message)
            self.consumer.commit(asynchronous=False)
        self.applied += applied
        return applied

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then leave the group."""
        self.consumer.subscribe(self.topics)
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                except redis.RedisError as exc:  # Redis away: retry the batch from Kafka
                    log.warning("activity consumer: Redis error %s; rewinding", exc)
                    self._rewind()
                    stop.wait(1.0)
        finally:
            self.consumer.close()

    def _rewind(self) -> None:
        """Seek every assigned partition back to its committed offset (re-read the batch)."""
        assigned = self.consumer.assignment()
        if assigned:
            for partition in self.consumer.committed(assigned, timeout=10):
                if partition.offset >= 0:
                    self.consumer.seek(partition)


def run_activity(settings: Settings, stop: threading.Event) -> None:
    """The consumer over the stack's broker and Redis, until ``stop`` (a `souk serve` thread)."""
    from souk.stack.endpoints import resolve_url

    client = redis.Redis.from_url(resolve_url(settings, "redis"))
    consumer = ActivityConsumer(settings, resolve_url(settings, "kafka"), client)
    try:
        consumer.run(stop)
    finally:
        client.close()
