"""Adapters of autosuggest and the rate limiter, built from the settings (composition root)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine

from serving.ratelimit import RateLimiter
from serving.suggest.catalog import SqlCatalogTitles
from serving.suggest.consumer import SuggestConsumer
from serving.suggest.redis_store import RedisCountStore
from serving.suggest.service import SuggestConfig, SuggestService
from souk.settings import Settings
from transactional.shared.kafka import KafkaClientSettings


def suggest_config(settings: Settings) -> SuggestConfig:
    """The service's tuning from the settings."""
    return SuggestConfig(
        regions=tuple(settings.regions),
        default_region=settings.region,
        half_life_days=settings.suggest_half_life_days,
        product_base_weight=settings.suggest_product_weight,
        max_queries=settings.suggest_max_queries,
        refresh_s=settings.suggest_refresh_s,
        rebuild_s=settings.suggest_rebuild_s,
    )


def build_suggest(
    settings: Settings, engine: Engine, client: redis.Redis, *, clock: Callable[[], datetime]
) -> SuggestService:
    """Autosuggest over the catalog in PostgreSQL and the counts in Redis (built lazily)."""
    return SuggestService(
        RedisCountStore(client), SqlCatalogTitles(engine), suggest_config(settings), clock=clock
    )


def build_suggest_consumer(settings: Settings, bootstrap: str, redis_url: str) -> SuggestConsumer:
    """A member of the autosuggest consumer group writing to the settings' Redis."""
    kafka = KafkaClientSettings(
        bootstrap=bootstrap,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
        client_id="souk-suggest",
    )
    store = RedisCountStore(
        redis.Redis.from_url(redis_url, socket_timeout=settings.redis_timeout_s)
    )
    return SuggestConsumer(
        store, kafka, settings.regions, half_life_days=settings.suggest_half_life_days
    )


def build_rate_limiter(settings: Settings, redis_url: str) -> RateLimiter:
    """The limiter on its own Redis client: a short timeout and no retries (fail open)."""
    client = redis.Redis.from_url(
        redis_url,
        socket_timeout=settings.ratelimit_redis_timeout_s,
        socket_connect_timeout=settings.ratelimit_redis_timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return RateLimiter(client)
