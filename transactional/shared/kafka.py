"""confluent-kafka adapters: client configuration, the event publisher and topic admin."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from transactional.shared.errors import BrokerUnavailable
from transactional.shared.ports import DeliveryCallback, OutgoingMessage


class _DropExperimentalWarning(logging.Filter):
    """librdkafka warns at every start that the gapless guarantee is experimental; we know."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "enable.gapless.guarantee is experimental" not in record.getMessage()


LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
LIBRDKAFKA_LOG.addFilter(_DropExperimentalWarning())
# Admin calls report failure through their result; librdkafka's per-retry connection errors
# would bury the one-line message the caller prints.
_ADMIN_LOG = logging.getLogger("librdkafka.admin")
_ADMIN_LOG.setLevel(logging.CRITICAL)
_ADMIN_LOG.propagate = False


@dataclass(frozen=True, slots=True)
class KafkaClientSettings:
    """What every Kafka client of ours needs; built from ``souk.settings.Settings``."""

    bootstrap: str
    session_timeout_ms: int = 6000
    fetch_wait_max_ms: int = 50
    client_id: str = "souk"


def producer_config(kafka: KafkaClientSettings, **overrides: Any) -> dict[str, Any]:
    """An idempotent, ordered, fully acknowledged producer."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": kafka.client_id,
        # Idempotence keeps per-partition order and drops broker-side duplicates on retry.
        "enable.idempotence": True,
        # A failed message must not be followed by a delivered one of the same partition:
        # librdkafka raises a fatal error instead, and the publisher starts a fresh producer.
        "enable.gapless.guarantee": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        # Never time a message out: the gapless guarantee does not cover timeouts, and a timed
        # out message followed by a delivered one of the same key would reorder the aggregate.
        # Undelivered messages stay queued in order; the relay just does not mark them yet.
        "message.timeout.ms": 0,
    }
    config.update(overrides)
    return config


def consumer_config(kafka: KafkaClientSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A consumer that commits only what it has processed."""
    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": kafka.client_id,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,  # offsets are committed explicitly, once processed
        "auto.offset.reset": "earliest",
        "session.timeout.ms": kafka.session_timeout_ms,
        "heartbeat.interval.ms": max(500, kafka.session_timeout_ms // 6),
        "fetch.wait.max.ms": kafka.fetch_wait_max_ms,
        "isolation.level": "read_committed",
    }
    config.update(overrides)
    return config


class KafkaEventPublisher:
    """EventPublisher adapter over confluent-kafka's idempotent producer."""

    def __init__(self, kafka: KafkaClientSettings, **overrides: Any) -> None:
        self._config = producer_config(kafka, **overrides)
        self._producer = Producer(self._config, logger=LIBRDKAFKA_LOG)
        self._fatal = False

    def publish(self, message: OutgoingMessage, on_delivery: DeliveryCallback) -> None:
        """Queue one message; the callback fires from ``flush``/``poll``."""
        if self._fatal:
            # A fatal producer cannot send again; a new one gets a new producer id and epoch.
            self._producer = Producer(self._config, logger=LIBRDKAFKA_LOG)
            self._fatal = False

        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is not None and err.fatal():
                self._fatal = True
            on_delivery(message, None if err is None else str(err))

        headers: list[tuple[str, str | bytes | None]] = [
            (name, value.encode()) for name, value in message.headers.items()
        ]
        while True:
            try:
                self._producer.produce(
                    message.topic,
                    key=message.key.encode(),
                    value=message.value,
                    headers=headers,
                    on_delivery=report,
                )
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if isinstance(error, KafkaError) and error.fatal():
                    self._fatal = True
                on_delivery(message, str(exc))
                return
            except BufferError:
                # Local queue full: serve delivery reports to make room, then retry.
                self._producer.poll(0.1)

    def flush(self, timeout: float) -> int:
        """Wait for delivery reports; return the number still in flight."""
        return int(self._producer.flush(timeout))

    def reset(self) -> None:
        """Purge the queue (its reports fire as failures) and start a new producer."""
        self._producer.purge(in_queue=True, in_flight=True)
        self._producer.flush(0)  # serve the purge reports
        self._producer = Producer(self._config, logger=LIBRDKAFKA_LOG)
        self._fatal = False

    def close(self) -> None:
        """Deliver what is queued (bounded wait)."""
        self._producer.flush(10)


def consume_batch(
    consumer: Any, *, max_records: int, wait_s: float, who: str, first_only: bool = False
) -> list[Message]:
    """Up to ``max_records`` records within ``wait_s`` (with ``first_only``, whatever the first
    poll that returns records brings: latency before batch size). Per-record errors librdkafka
    retries itself are skipped; a fatal one raises RuntimeError naming ``who``."""
    deadline = time.monotonic() + wait_s
    batch: list[Message] = []
    while len(batch) < max_records:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for message in consumer.consume(min(max_records - len(batch), 1000), timeout=left):
            error = message.error()
            if error is None:
                batch.append(message)
            elif not error.retriable() and error.fatal():
                raise RuntimeError(f"{who}: Kafka error {error}")
        if first_only and batch:
            break
    return batch


def admin_client(bootstrap: str) -> AdminClient:
    """An admin client with short timeouts suited to health checks."""
    return AdminClient(
        {"bootstrap.servers": bootstrap, "socket.timeout.ms": 5000}, logger=_ADMIN_LOG
    )


def existing_topics(bootstrap: str, timeout: float = 10.0) -> dict[str, int]:
    """Topic name → partition count, as the broker reports them."""
    try:
        metadata = admin_client(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"Kafka broker at {bootstrap} is unreachable ({exc}): run `souk up` "
            "or check SOUK_KAFKA_BOOTSTRAP"
        ) from exc
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def create_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    present = existing_topics(bootstrap)
    missing = sorted(set(topics) - set(present))
    if not missing:
        return []
    admin = admin_client(bootstrap)
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=replication_factor,
                config=dict(config or {}),
            )
            for name in missing
        ],
        request_timeout=timeout,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # another process created it in between
            raise BrokerUnavailable(f"could not create topic {name} at {bootstrap}: {exc}") from exc
    return sorted(created)
