"""The consumer base: consumer groups, commit after processing, inbox, retries and a DLQ.

``MessageProcessor`` holds the delivery rules and knows nothing of Kafka (unit-tested on fakes);
``KafkaEventConsumer`` feeds it from a confluent-kafka consumer group.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from sqlalchemy import Connection

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, SchemaError, SchemaRegistry, dlq_topic
from transactional.shared.errors import PublishFailed
from transactional.shared.inbox import Effect, Inbox
from transactional.shared.kafka import KafkaClientSettings, consumer_config
from transactional.shared.ports import EventPublisher, OutgoingMessage

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, msgspec.Struct, Connection], None]
"""A handler gets the envelope, its typed payload and the inbox transaction to write in."""


class Outcome(enum.Enum):
    """What became of one message."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message as the processor sees it, wherever it came from."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ConsumerStats:
    """Running counts of a consumer, for summaries and tests."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0

    def count(self, outcome: Outcome) -> None:
        """Add one outcome."""
        if outcome is Outcome.APPLIED:
            self.applied += 1
        elif outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        else:
            self.dead_lettered += 1


class MessageProcessor:
    """Decode, apply once through the inbox, retry with backoff, dead-letter what keeps failing."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        inbox: Inbox,
        dead_letters: EventPublisher,
        *,
        registry: SchemaRegistry = REGISTRY,
        max_attempts: int = 5,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.stats = ConsumerStats()
        self._handler = handler
        self._inbox = inbox
        self._dead_letters = dead_letters
        self._registry = registry
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep

    def process(self, message: IncomingMessage) -> Outcome:
        """Handle one message; returns only once it is applied, a duplicate, or dead-lettered."""
        try:
            envelope = self._registry.decode(message.value)
            payload = self._registry.validate(envelope)
        except SchemaError as exc:
            # A message that does not decode will never succeed: no point retrying.
            outcome = self._dead_letter(message, exc, attempts=1)
            self.stats.count(outcome)
            return outcome

        attempt = 0
        while True:
            attempt += 1
            try:
                applied = self._inbox.apply_once(
                    self.name, envelope, self._effect(envelope, payload)
                )
            except Exception as exc:
                if attempt >= self._max_attempts:
                    outcome = self._dead_letter(message, exc, attempts=attempt)
                    break
                self.stats.retries += 1
                delay = min(self._max_backoff_s, self._backoff_s * 2 ** (attempt - 1))
                log.warning(
                    "%s: %s %s failed (attempt %d/%d), retrying in %.2fs: %s",
                    self.name,
                    envelope.event_type,
                    envelope.event_id,
                    attempt,
                    self._max_attempts,
                    delay,
                    exc,
                )
                self._sleep(delay)
                continue
            outcome = Outcome.APPLIED if applied else Outcome.DUPLICATE
            break
        self.stats.count(outcome)
        return outcome

    def process_many(self, messages: Sequence[IncomingMessage]) -> list[Outcome]:
        """Handle a batch in one transaction; if anything in it fails, go one message at a time.

        A failed batch rolls back as a whole, so handlers must keep their effects inside the
        transaction (or be idempotent): the one-at-a-time pass runs them again.
        """
        if len(messages) <= 1:
            return [self.process(message) for message in messages]
        items = []
        for message in messages:
            try:
                envelope = self._registry.decode(message.value)
                payload = self._registry.validate(envelope)
            except SchemaError:
                return [self.process(message) for message in messages]
            items.append((envelope, self._effect(envelope, payload)))
        try:
            ran = self._inbox.apply_many(self.name, items)
        except Exception as exc:
            log.info("%s: batch of %d failed (%s); one at a time", self.name, len(items), exc)
            return [self.process(message) for message in messages]
        outcomes = [Outcome.APPLIED if applied else Outcome.DUPLICATE for applied in ran]
        for outcome in outcomes:
            self.stats.count(outcome)
        return outcomes

    def _effect(self, envelope: Envelope, payload: msgspec.Struct) -> Effect:
        return lambda tx: self._handler(envelope, payload, tx)

    def _dead_letter(self, message: IncomingMessage, exc: BaseException, attempts: int) -> Outcome:
        headers = dict(message.headers)
        headers.update(
            {
                "dlq.consumer": self.name,
                "dlq.error_type": type(exc).__name__,
                "dlq.error": str(exc)[:2000],
                "dlq.traceback": "".join(traceback.format_exception(exc))[-4000:],
                "dlq.attempts": str(attempts),
                "dlq.original_topic": message.topic,
                "dlq.original_partition": str(message.partition),
                "dlq.original_offset": str(message.offset),
            }
        )
        errors: list[str | None] = []
        self._dead_letters.publish(
            OutgoingMessage(
                topic=dlq_topic(message.topic),
                key=message.key or "",
                value=message.value,
                headers=headers,
            ),
            lambda _m, error: errors.append(error),
        )
        self._dead_letters.flush(30)
        if not errors or errors[0] is not None:
            # Never commit past a message that is neither applied nor safely dead-lettered.
            raise PublishFailed(
                f"{self.name}: could not dead-letter {message.topic}@{message.offset}: "
                f"{errors[0] if errors else 'no delivery report'}"
            )
        log.error(
            "%s: dead-lettered %s[%d]@%d after %d attempts: %s",
            self.name,
            message.topic,
            message.partition,
            message.offset,
            attempts,
            exc,
        )
        return Outcome.DEAD_LETTERED


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
        **overrides: Any,
    ) -> None:
        self.processor = processor
        self._topics = list(topics)
        self._consumer = Consumer(consumer_config(kafka, processor.name, **overrides))
        self._batch_size = batch_size
        self._commit_interval_s = commit_interval_s
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        self._subscribed = False
        self.assigned = threading.Event()  # set once the group gave us partitions

    def _subscribe(self) -> None:
        if not self._subscribed:
            self._consumer.subscribe(
                self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke
            )
            self._subscribed = True

    def _on_assign(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self.assigned.set()

    def _on_revoke(self, consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        # Hand over what we processed so the next owner starts after it.
        self._commit(force=True)

    def _commit(self, *, force: bool = False) -> None:
        # Time-based only: a replay after a crash costs inbox look-ups, not correctness.
        due = time.monotonic() - self._last_commit >= self._commit_interval_s
        if self._uncommitted and (force or due):
            try:
                # Routine commits are asynchronous (a synchronous one costs a broker round trip
                # per batch, ~0.5 s on Tansu); hand-overs on revoke and close wait for theirs.
                if force:
                    self._consumer.commit(asynchronous=False)
                else:
                    self._consumer.commit(asynchronous=True)
            except Exception as exc:  # commit failure only means a replay, which the inbox absorbs
                log.warning("%s: offset commit failed: %s", self.processor.name, exc)
            self._uncommitted = 0
            self._last_commit = time.monotonic()

    def poll_once(self, timeout_s: float = 0.5) -> list[Outcome]:
        """Process what arrives within ``timeout_s`` (up to a batch); empty when nothing did."""
        self._subscribe()
        batch: list[IncomingMessage] = []
        first = self._consumer.poll(timeout_s)
        # consume() waits for a full batch or its timeout; wait only for the first message,
        # then take what is already fetched, so a quiet topic costs no latency.
        arrived = [first] if first is not None else []
        if first is not None and self._batch_size > 1:
            arrived += self._consumer.consume(self._batch_size - 1, 0)
        for message in arrived:
            error = message.error()
            if error is None:
                batch.append(_incoming(message))
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning("%s: consumer error: %s", self.processor.name, error)
        outcomes = self.processor.process_many(batch)
        self._uncommitted += len(outcomes)
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
        handled = 0
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            if max_messages is not None and handled >= max_messages:
                break
            outcomes = self.poll_once()
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
