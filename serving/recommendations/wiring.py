"""Build the recommendation service from settings: the adapters behind its ports."""

from __future__ import annotations

import redis
from sqlalchemy import Engine

from models.registry import ModelRegistry
from serving.recommendations.adapters import (
    LakeTrendingBaseline,
    OutboxServedLog,
    RedisActivity,
    RedisClickStats,
    RedisListCache,
    RedisStock,
    RedisTrending,
    SqlCatalog,
    SqlPurchases,
    lake_reader,
)
from serving.recommendations.engines import ModelSet
from serving.recommendations.service import RecommendationService
from souk.settings import Settings
from transactional.shared.outbox import Outbox


def build_recommendations(
    settings: Settings,
    engine: Engine,
    redis_client: redis.Redis,
    outbox: Outbox,
    *,
    registry: ModelRegistry | None = None,
) -> RecommendationService:
    """The service over PostgreSQL, Redis, the lake, the outbox and the model registry."""
    models = ModelSet.of(
        registry or ModelRegistry(settings=settings), check_every_s=settings.recs_model_check_s
    )
    return RecommendationService(
        models=models,
        catalog=SqlCatalog(engine, ttl_s=settings.recs_catalog_ttl_s),
        stock=RedisStock(redis_client, engine, ttl_s=settings.recs_catalog_ttl_s),
        purchases=SqlPurchases(engine),
        trending=RedisTrending(redis_client),
        baseline=LakeTrendingBaseline(lake_reader(settings)),
        activity=RedisActivity(redis_client),
        served_log=OutboxServedLog(
            engine, outbox, redis_client, served_ttl_s=settings.recs_served_ttl_s
        ),
        cache=RedisListCache(redis_client, ttl_s=settings.recs_cache_ttl_s),
        stats=RedisClickStats(redis_client),
        regions=settings.regions,
        default_region=settings.region,
        recent_events=settings.recs_recent_events,
        rerank_weight=settings.recs_rerank_weight,
    )
