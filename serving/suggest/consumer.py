"""The autosuggest consumer: behaviour and catalog topics → the count store (Redis).

A Kafka consumer group (``souk-suggest``) over ``<region>.behaviour.v1`` and
``<region>.catalog.v1`` of every configured region. Each batch goes to the store in one
atomic script that skips event ids it already applied, then the offsets are committed: a
crash in between redelivers the batch, which then counts nothing twice. Serving processes
pick the changes up from the store's change log (``SuggestService``), so any number of them
share one group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import msgspec
from confluent_kafka import Consumer, Message, TopicPartition

from schemas.envelope import Envelope
from schemas.registry import topic_for
from serving.suggest.events import op_of
from serving.suggest.ports import CountStore, Op
from transactional.shared.kafka import LIBRDKAFKA_LOG, KafkaClientSettings, consumer_config

_LOG = logging.getLogger("souk.suggest.consumer")
GROUP = "souk-suggest"
_DECODER = msgspec.json.Decoder(Envelope)


def suggest_topics(regions: Sequence[str]) -> list[str]:
    """The topics autosuggest reads: behaviour and catalog of every region."""
    return [topic_for(domain, region) for region in regions for domain in ("behaviour", "catalog")]


def ops_of(messages: Sequence[Message], half_life_days: float) -> list[Op]:
    """The store ops of a batch; records that are not envelopes are skipped (the archiver
    keeps them in bronze's rejected table)."""
    ops: list[Op] = []
    for message in messages:
        try:
            envelope = _DECODER.decode(message.value() or b"")
            op = op_of(envelope, half_life_days)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, KeyError, TypeError):
            _LOG.warning(
                "autosuggest: skipped a bad record at %s/%s", message.topic(), message.offset()
            )
            continue
        if op is not None:
            ops.append(op)
    return ops


class SuggestConsumer:
    """A member of the autosuggest consumer group writing into the count store."""

    def __init__(
        self,
        store: CountStore,
        kafka: KafkaClientSettings,
        regions: Sequence[str],
        *,
        half_life_days: float,
        group: str = GROUP,
        batch_max: int = 2000,
        batch_wait_s: float = 0.2,
    ) -> None:
        self.store = store
        self.topics = suggest_topics(regions)
        self.half_life_days = half_life_days
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.consumer = Consumer(consumer_config(kafka, group), logger=LIBRDKAFKA_LOG)
        self.applied = 0
        self.assigned = threading.Event()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        consumer.assign(partitions)
        self.assigned.set()

    def poll_once(self) -> int:
        """Consume one batch into the store and commit it; the events newly applied."""
        messages = [
            m
            for m in self.consumer.consume(self.batch_max, timeout=self.batch_wait_s)
            if m.error() is None
        ]
        if not messages:
            return 0
        applied = self.store.apply(ops_of(messages, self.half_life_days))
        self.applied += applied
        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            ends[(message.topic() or "", message.partition() or 0)] = (message.offset() or 0) + 1
        self.consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()], asynchronous=False
        )
        return applied

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set."""
        self.consumer.subscribe(self.topics, on_assign=self._on_assign)
        try:
            while not stop.is_set():
                self.poll_once()
        finally:
            self.consumer.close()


def consume_forever(
    make: Callable[[], SuggestConsumer], stop: threading.Event, retry_s: float = 5.0
) -> None:
    """Run consumers until ``stop``; an error (Redis or the broker down) is logged and a new
    consumer starts after ``retry_s`` (uncommitted batches come again, counted once)."""
    while not stop.is_set():
        try:
            make().run(stop)
        except Exception:
            _LOG.exception("autosuggest consumer failed; restarting in %.0f s", retry_s)
            stop.wait(retry_s)
