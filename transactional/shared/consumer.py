"""The Kafka side of every consumer: a consumer-group member that commits only what it processed.

Offsets are tracked per partition as messages come back from the processor (applied, duplicate
or dead-lettered) and committed explicitly; nothing fetched but unprocessed is ever committed,
and partitions taken away by a rebalance mid-batch are not committed by us afterwards.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from transactional.shared.kafka import LIBRDKAFKA_LOG, KafkaClientSettings, consumer_config
from transactional.shared.processor import (
    ConsumerStats,
    IncomingMessage,
    MessageProcessor,
    Outcome,
)

log = logging.getLogger(__name__)

Partition = tuple[str, int]


def _incoming(message: Message) -> IncomingMessage:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    key = message.key()
    return IncomingMessage(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=key.decode() if isinstance(key, bytes) else key,
        value=message.value() or b"",
        headers={
            name: value.decode(errors="replace") if isinstance(value, bytes) else (value or "")
            for name, value in pairs
        },
    )


class KafkaEventConsumer:
    """Feeds a consumer group's messages to a processor and commits offsets after processing."""

    def __init__(
        self,
        processor: MessageProcessor,
        topics: Sequence[str],
        kafka: KafkaClientSettings,
        *,
        batch_size: int = 200,
        commit_interval_s: float = 5.0,
        inbox_retention_s: float = 8 * 24 * 3600,
        purge_every_s: float = 3600,
        **overrides: Any,
    ) -> None:
        self.processor = processor
        self._topics = list(topics)
        self._consumer = Consumer(
            consumer_config(kafka, processor.name, **overrides), logger=LIBRDKAFKA_LOG
        )
        self._batch_size = batch_size
        self._commit_interval_s = commit_interval_s
        self._last_commit = time.monotonic()
        self._subscribed = False
        self._processed: dict[Partition, int] = {}  # next offset to commit, per partition
        self._owned: set[Partition] = set()
        self._inbox_retention_s = inbox_retention_s
        self._purge_every_s = purge_every_s
        self._next_purge = time.monotonic() + purge_every_s
        self.assigned = threading.Event()  # set once the group gave us partitions

    def _subscribe(self) -> None:
        if not self._subscribed:
            self._consumer.subscribe(
                self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            self._subscribed = True

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._owned.update((p.topic, p.partition) for p in partitions)
        self.assigned.set()

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Hand over what we processed; anything of these partitions still in our hands
        # (fetched, not yet processed) is the next owner's to process.
        self._commit(force=True)
        self._owned.difference_update((p.topic, p.partition) for p in partitions)

    def _record(self, batch: Sequence[IncomingMessage]) -> None:
        for message in batch:
            partition = (message.topic, message.partition)
            if partition in self._owned:
                self._processed[partition] = message.offset + 1

    def _rewind(self, batch: Sequence[IncomingMessage]) -> None:
        first: dict[Partition, int] = {}
        for message in batch:
            first.setdefault((message.topic, message.partition), message.offset)
        for (topic, partition), offset in first.items():
            if (topic, partition) in self._owned:
                try:
                    self._consumer.seek(TopicPartition(topic, partition, offset))
                except Exception as exc:  # the group moved on: the next owner starts there
                    log.warning(
                        "%s: could not rewind %s[%d]: %s",
                        self.processor.name,
                        topic,
                        partition,
                        exc,
                    )

    def _commit(self, *, force: bool = False) -> None:
        # Time-based only: a replay after a crash costs inbox look-ups, not correctness.
        due = time.monotonic() - self._last_commit >= self._commit_interval_s
        if not self._processed or not (force or due):
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._processed.items()]
        try:
            # Routine commits are asynchronous (a synchronous one stalls fetching on Tansu);
            # hand-overs on revoke and close wait for theirs.
            if force:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            else:
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except Exception as exc:  # a lost commit only means a replay, which the inbox absorbs
            log.warning("%s: offset commit failed: %s", self.processor.name, exc)
        self._processed.clear()
        self._last_commit = time.monotonic()

    def poll_once(self, timeout_s: float = 0.5) -> list[Outcome]:
        """Process what arrives within ``timeout_s`` (up to a batch); empty when nothing did."""
        self._subscribe()
        first = self._consumer.poll(timeout_s)
        # consume() waits for a full batch or its timeout; wait only for the first message,
        # then take what is already fetched, so a quiet topic costs no latency.
        arrived = [first] if first is not None else []
        if first is not None and self._batch_size > 1:
            arrived += self._consumer.consume(self._batch_size - 1, 0)
        batch: list[IncomingMessage] = []
        for message in arrived:
            error = message.error()
            if error is None:
                batch.append(_incoming(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("%s: consumer error: %s", self.processor.name, error)
        try:
            outcomes = self.processor.process_many(batch)
        except BaseException:
            # Nothing of the batch is recorded; rewind so a caller that runs us again sees
            # it again instead of skipping it (we already fetched past it).
            self._rewind(batch)
            raise
        self._record(batch)
        self._commit()
        return outcomes

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        max_messages: int | None = None,
        idle_timeout_s: float | None = None,
    ) -> ConsumerStats:
        """Consume until stopped, ``max_messages`` handled, or idle for ``idle_timeout_s``."""
        if stop is not None:
            self.processor.stopping = stop  # also ends a wait for an unreachable store
        handled = 0
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            if max_messages is not None and handled >= max_messages:
                break
            outcomes = self.poll_once()
            if time.monotonic() >= self._next_purge:
                self._next_purge = time.monotonic() + self._purge_every_s
                try:
                    self.processor.inbox.purge(self._inbox_retention_s)
                except Exception as exc:  # housekeeping: try again at the next interval
                    log.warning("%s: inbox purge failed: %s", self.processor.name, exc)
            if not outcomes:
                if idle_timeout_s is not None and time.monotonic() - idle_since > idle_timeout_s:
                    break
                continue
            handled += len(outcomes)
            idle_since = time.monotonic()
        self._commit(force=True)
        return self.processor.stats

    def close(self) -> None:
        """Commit processed offsets and leave the group."""
        self._commit(force=True)
        self._consumer.close()
