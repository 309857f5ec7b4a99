"""The composition root of the HTTP services: adapters from settings, services from adapters.

``build_services`` is the one place that knows which adapter implements which port; the app
(`serving.app`) injects each service into the controllers by its dependency name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import Engine

from souk.settings import Settings
from souk.wiring import build_outbox
from transactional.customers.passwords import Argon2Passwords
from transactional.customers.repository import SqlCustomersUnitOfWork
from transactional.customers.service import CustomerService
from transactional.shared.auth import JwtTokens
from transactional.shared.db import create_db_engine
from transactional.shared.outbox import Outbox


def utc_now() -> datetime:
    """The wall clock, timezone-aware."""
    return datetime.now(UTC)


@dataclass
class Services:
    """Every service of the purchase path, by the dependency name controllers ask for."""

    settings: Settings
    engine: Engine
    redis: redis.Redis
    outbox: Outbox
    tokens: JwtTokens
    provided: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        return self.provided[name]

    def close(self) -> None:
        """Release pools and clients (idempotent)."""
        while self.closers:
            self.closers.pop()()


def build_services(
    settings: Settings,
    *,
    database_url: str,
    redis_url: str,
    clock: Callable[[], datetime] = utc_now,
    pool_size: int = 20,
) -> Services:
    """Wire every slice's service to PostgreSQL, Redis and the outbox."""
    engine = create_db_engine(database_url, pool_size=pool_size, application_name="souk-serve")
    redis_client = redis.Redis.from_url(redis_url, max_connections=4 * pool_size)
    outbox = build_outbox(settings)
    tokens = JwtTokens(settings.jwt_secret, ttl_s=settings.token_ttl_s, clock=clock)
    services = Services(settings, engine, redis_client, outbox, tokens)
    services.closers += [engine.dispose, redis_client.close]
    services.provided["tokens"] = tokens

    def uow_of(cls: Any) -> Callable[[], Any]:
        return lambda: cls(engine, outbox)

    # -- sellers + catalog --

    # -- inventory --

    # -- carts --

    # -- orders + payments --

    # -- checkout --

    # -- tracking --

    services.provided["customers"] = CustomerService(
        uow_of(SqlCustomersUnitOfWork),
        Argon2Passwords(
            time_cost=settings.password_time_cost, memory_cost_kib=settings.password_memory_kib
        ),
        tokens,
        regions=settings.regions,
        merge_cart=services.provided.get("cart_merger"),
        clock=clock,
    )
    return services
