"""Every setting of Souk in one typed place (env prefix ``SOUK_``, ``.env`` supported).

A URL left unset means "start or use the embedded default"; a URL that is set means
"use that real server". The code path is the same either way.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Souk's configuration, read from the environment and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="SOUK_", env_file=".env", extra="ignore")

    home: Path = Field(default=Path(".souk"), description="Local state: data dirs, pids, logs.")
    region: str = Field(default="eu", description="The region this process serves.")
    regions: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["eu", "us", "in"])

    database_url: str | None = None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    search_url: str | None = None
    analytics_url: str | None = None
    lake_uri: str | None = None
    object_store_url: str | None = None
    flink_url: str | None = None
    spark_master: str | None = None

    kafka_partitions: int = Field(default=3, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    # Tansu holds a group join for half the session timeout: keep it short locally.
    kafka_session_timeout_ms: int = Field(default=6000, ge=1000)
    # Tansu answers a fetch only when this wait runs out, even with data ready (Kafka answers
    # at once), so it bounds delivery latency locally; raise it to 500 against a real cluster.
    kafka_fetch_wait_max_ms: int = Field(default=50, ge=1)
    # Below Kafka's default 1 MB message.max.bytes, leaving room for batch overhead and the
    # headers a dead letter adds; the outbox refuses larger events (value+key+headers).
    kafka_max_message_bytes: int = Field(default=900_000, ge=1024)

    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_interval_s: float = Field(default=0.05, gt=0)
    # No delivery report for this long: restart the producer (a restarted broker forgets it).
    relay_stall_timeout_s: float = Field(default=30.0, gt=0)
    outbox_retention_hours: float = Field(default=168, gt=0, description="Keep published rows.")
    consumer_max_attempts: int = Field(default=5, ge=1)
    consumer_backoff_s: float = Field(default=0.05, ge=0)

    @field_validator("regions", mode="before")
    @classmethod
    def _split_regions(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("region", "regions")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        if isinstance(value, str):
            return value.lower()
        if isinstance(value, list):
            return [str(item).lower() for item in value]
        return value

    @property
    def state_dir(self) -> Path:
        """Absolute path of the local state folder."""
        return self.home.resolve()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
