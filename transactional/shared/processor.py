"""Delivery rules of every consumer, independent of Kafka: decode, apply once, retry, dead-letter.

Unit-tested on fakes; ``transactional.shared.consumer`` feeds it from a Kafka consumer group.
"""

from __future__ import annotations

import enum
import logging
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
from sqlalchemy import Connection

from schemas.envelope import Envelope
from schemas.registry import REGISTRY, SchemaError, SchemaRegistry, dlq_topic
from transactional.shared.errors import PublishFailed
from transactional.shared.inbox import Effect, Inbox
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
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.name = name
        self.stats = ConsumerStats()
        # Set to abandon an outage wait (the message stays unprocessed and uncommitted).
        self.stopping = threading.Event()
        self._handler = handler
        self.inbox = inbox
        self._dead_letters = dead_letters
        self._registry = registry
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        # Waits end early when stopping is set (tests pass their own sleep to record them).
        self._sleep = sleep or (lambda seconds: self.stopping.wait(seconds))

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

        attempt = 0  # handler failures only: an unreachable store is waited out, not counted
        outage_s = 0.0
        while True:
            try:
                applied = self.inbox.apply_once(
                    self.name, envelope, self._effect(envelope, payload)
                )
            except Exception as exc:
                if self.inbox.is_unavailable(exc):
                    if self.stopping.is_set():
                        raise
                    outage_s = min(self._max_backoff_s, max(self._backoff_s, outage_s * 2))
                    log.warning(
                        "%s: store unavailable, waiting %.2fs: %s", self.name, outage_s, exc
                    )
                    self._sleep(outage_s)
                    continue
                attempt += 1
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
            ran = self.inbox.apply_many(self.name, items)
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
        # A broker blip only delays the report (messages never time out): keep waiting, as
        # for a database outage, unless we are asked to stop.
        while not errors and self._dead_letters.flush(5) and not self.stopping.is_set():
            log.warning("%s: waiting for the broker to take a dead letter", self.name)
        if not errors or errors[0] is not None:
            # Never commit past a message that is neither applied nor safely dead-lettered.
            raise PublishFailed(
                f"{self.name}: could not dead-letter {message.topic}@{message.offset}: "
                f"{errors[0] if errors else 'stopped while the broker was unreachable'}"
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
