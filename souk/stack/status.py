"""Plain dataclasses that `Stack.status()` returns, each convertible to JSON."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Managed = Literal["embedded", "external"]


@dataclass(frozen=True)
class TopicStatus:
    """A Kafka topic and its partition count."""

    name: str
    partitions: int


@dataclass(frozen=True)
class PartitionOffsets:
    """A consumer group's position in one partition, as the broker reports it."""

    partition: int
    committed: int | None  # None: the group never committed here
    high_watermark: int | None  # None: the broker did not answer
    lag: int | None


@dataclass(frozen=True)
class GroupTopicOffsets:
    """A consumer group's committed offsets and lag on one topic."""

    topic: str
    partitions: list[PartitionOffsets]

    @property
    def lag(self) -> int | None:
        """Total lag over the partitions that have a known lag (None if none do)."""
        known = [p.lag for p in self.partitions if p.lag is not None]
        return sum(known) if known else None


@dataclass(frozen=True)
class ConsumerGroupStatus:
    """A consumer group, its state and its offsets per topic."""

    group_id: str
    state: str
    topics: list[GroupTopicOffsets]


@dataclass(frozen=True)
class ComponentStatus:
    """What `souk status` shows for one component."""

    name: str
    engine: str
    url: str | None
    up: bool
    version: str | None
    managed: Managed
    pid: int | None = None
    error: str | None = None
    topics: list[TopicStatus] = field(default_factory=list)
    consumer_groups: list[ConsumerGroupStatus] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (topic lag totals included)."""
        data = dataclasses.asdict(self)
        for group, raw in zip(self.consumer_groups, data["consumer_groups"], strict=True):
            for topic, raw_topic in zip(group.topics, raw["topics"], strict=True):
                raw_topic["lag"] = topic.lag
        return data


def statuses_to_json(statuses: Sequence[ComponentStatus]) -> dict[str, Any]:
    """``{"all_up": bool, "components": [...]}`` for `souk status --json`."""
    return {
        "all_up": all(s.up for s in statuses),
        "components": [s.to_json() for s in statuses],
    }
