"""`JobContext`: what a job's definition gets (settings, endpoints, its Flink environments)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from souk.settings import Settings

if TYPE_CHECKING:
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamStatementSet, StreamTableEnvironment


@dataclass
class JobContext:
    """One job being defined: its name, settings, servers and Flink environments."""

    name: str
    settings: Settings
    kafka_bootstrap: str
    redis_url: str
    env: StreamExecutionEnvironment
    t_env: StreamTableEnvironment
    statements: StreamStatementSet
    #: Consumer group of the job's Kafka sources (offsets committed on checkpoints).
    group_id: str = ""
    #: True once a DataStream sink was added (then the job runs through ``env.execute``).
    has_datastream: bool = field(default=False)

    def __post_init__(self) -> None:
        if not self.group_id:
            self.group_id = f"souk-pipeline-{self.name}"
