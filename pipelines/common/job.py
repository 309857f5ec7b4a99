"""`Job`: what a streaming job module declares (its topics and its definition)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pipelines.common.context import JobContext
from souk.settings import Settings


@dataclass(frozen=True)
class Job:
    """A streaming job: name, what it does, the topics it reads and writes, its definition."""

    name: str
    description: str
    #: Domains whose ``<region>.<domain>.v1`` topics the job reads (all must exist).
    source_domains: tuple[str, ...]
    #: ``define(ctx)`` adds the job's sources, transforms and sinks to the context.
    define: Callable[[JobContext], None]
    #: Topics the job writes (created when missing) → their topic config.
    sink_topics: Callable[[Settings], Mapping[str, Mapping[str, str]]] = field(
        default=lambda _settings: {}
    )
    #: Redis keys the job's read models live in (documentation, `souk pipelines list`).
    read_models: tuple[str, ...] = ()
