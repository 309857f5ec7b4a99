"""The composition root of the HTTP services: adapters from settings, services from adapters.

``build_services`` is the one place that knows which adapter implements which port; the app
(`serving.app`) injects each service into the controllers by its dependency name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import Engine

from serving.fraud.screen import LazyFraudScreen
from souk.settings import Settings
from souk.wiring import build_outbox
from transactional.carts.adapters import PipelinedShelf, customer_currency_of
from transactional.carts.repository import RedisCarts, SqlCartsUnitOfWork
from transactional.carts.service import CartService
from transactional.catalog.repository import SqlCatalogUnitOfWork
from transactional.catalog.service import CatalogService
from transactional.checkout.adapters import (
    CartsAdapter,
    OrdersAdapter,
    PaymentsAdapter,
    StockAdapter,
)
from transactional.checkout.dto import render as render_checkout
from transactional.checkout.pipelined import PipelinedCheckoutUnitOfWork
from transactional.checkout.repository import SqlCheckoutUnitOfWork
from transactional.checkout.service import CheckoutService
from transactional.customers.passwords import Argon2Passwords
from transactional.customers.repository import SqlCustomersUnitOfWork
from transactional.customers.service import CustomerService
from transactional.inventory.counters import RedisStockCounters
from transactional.inventory.directory import CatalogSkus, SellerDirectory
from transactional.inventory.repository import SqlInventoryUnitOfWork
from transactional.inventory.service import InventoryService
from transactional.orders.repository import SqlOrdersUnitOfWork
from transactional.orders.service import OrderService
from transactional.payments.repository import SqlPaymentsUnitOfWork
from transactional.payments.sandbox import SandboxCardGateway
from transactional.payments.sandbox_ledger import SqlSandboxLedger
from transactional.payments.service import PaymentService
from transactional.sellers.repository import SqlSellersUnitOfWork
from transactional.sellers.service import SellerService
from transactional.shared.auth import JwtTokens
from transactional.shared.db import create_db_engine
from transactional.shared.outbox import Outbox
from transactional.shared.unit_of_work import SqlUnitOfWork
from transactional.tracking.service import TrackingService


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


def payment_gateway(
    settings: Settings, engine: Engine, clock: Callable[[], datetime]
) -> SandboxCardGateway:
    """The card processor adapter named by ``SOUK_PAYMENT_GATEWAY`` (only the sandbox here)."""
    if settings.payment_gateway != "sandbox":
        raise ValueError(
            f"unknown payment gateway {settings.payment_gateway!r} (SOUK_PAYMENT_GATEWAY); "
            "the only adapter is 'sandbox'"
        )
    return SandboxCardGateway(
        SqlSandboxLedger(engine), clock=clock, latency_s=settings.sandbox_latency_ms / 1000
    )


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
    redis_client = redis.Redis.from_url(
        redis_url,
        max_connections=4 * pool_size,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        # No hidden retries: the timeout is the bound callers (and open transactions) rely on.
        retry=Retry(NoBackoff(), 0),
    )
    outbox = build_outbox(settings)
    tokens = JwtTokens(settings.jwt_secret, ttl_s=settings.token_ttl_s, clock=clock)
    services = Services(settings, engine, redis_client, outbox, tokens)
    services.closers += [engine.dispose, redis_client.close]
    services.provided["tokens"] = tokens

    def uow_of(cls: Any) -> Callable[[], Any]:
        return lambda: cls(engine, outbox)

    provided = services.provided
    provided["tokens"] = tokens
    sellers = SellerService(uow_of(SqlSellersUnitOfWork), regions=settings.regions, clock=clock)
    catalog = CatalogService(
        uow_of(SqlCatalogUnitOfWork), sellers, shards=settings.catalog_shards, clock=clock
    )
    inventory = InventoryService(
        uow_of(SqlInventoryUnitOfWork),
        RedisStockCounters(redis_client),
        skus=CatalogSkus(catalog),
        sellers=SellerDirectory(sellers),
        regions=settings.regions,
        reservation_ttl_s=settings.reservation_ttl_s,
        clock=clock,
    )
    cart_store = RedisCarts(redis_client, ttl_s=settings.cart_ttl_s)
    carts = CartService(
        lambda: SqlCartsUnitOfWork(engine, outbox, cart_store),
        cart_store,
        PipelinedShelf(engine.raw_connection, outbox),
        region=settings.region,
        # Customers need the cart merger, so they are built after carts: look them up lazily.
        customer_currency=customer_currency_of(lambda: provided["customers"]),
        clock=clock,
    )
    customers = CustomerService(
        uow_of(SqlCustomersUnitOfWork),
        Argon2Passwords(
            time_cost=settings.password_time_cost, memory_cost_kib=settings.password_memory_kib
        ),
        tokens,
        regions=settings.regions,
        merge_cart=carts.merge,
        clock=clock,
    )
    payments = PaymentService(
        uow_of(SqlPaymentsUnitOfWork),
        payment_gateway(settings, engine, clock),
        regions=settings.regions,
        default_region=settings.region,
        clock=clock,
    )
    orders = OrderService(
        uow_of(SqlOrdersUnitOfWork),
        inventory=inventory,
        payments=payments,
        regions=settings.regions,
        clock=clock,
    )
    checkout = CheckoutService(
        uow_of(SqlCheckoutUnitOfWork),
        lambda: PipelinedCheckoutUnitOfWork(engine.raw_connection, outbox),
        carts=CartsAdapter(carts),
        stock=StockAdapter(inventory),
        orders=OrdersAdapter(orders),
        payments=PaymentsAdapter(payments),
        render=render_checkout,
        # Keys the card fingerprint of idempotency keys: no raw card, no offline brute force.
        card_key=hashlib.sha256(b"souk-checkout-card:" + settings.jwt_secret.encode()).digest(),
        lease_s=settings.saga_recovery_after_s,
        idempotency_ttl_s=settings.idempotency_ttl_s,
        regions=settings.regions,
        clock=clock,
        # The fraud block below provides the screen (the scorer needs the customers).
        fraud=LazyFraudScreen(lambda: provided.get("fraud_screen"))
        if settings.fraud_screen
        else None,
        review_ttl_s=settings.fraud_review_ttl_s,
    )
    tracking = TrackingService(
        uow_of(SqlUnitOfWork),
        region=settings.region,
        max_event_bytes=settings.kafka_max_message_bytes,
        clock=clock,
    )
    provided.update(
        customers=customers,
        sellers=sellers,
        catalog=catalog,
        inventory=inventory,
        carts=carts,
        payments=payments,
        orders=orders,
        checkout=checkout,
        tracking=tracking,
    )
    # serving/ (issue 10): each block wires one serving domain, edited only by its owner.
    # --- search ---
    from serving.search.wiring import build_search_index, build_search_service

    provided["search_index"] = search_index = build_search_index(settings)
    services.closers.append(search_index.close)
    # Personalization: the recommendations service is also search's Reranker (wired below).
    provided["search"] = build_search_service(
        settings, search_index, reranker_lookup=lambda: provided.get("recommendations")
    )
    # --- suggest ---
    from serving.suggest.wiring import build_rate_limiter, build_suggest

    # Autosuggest reads the catalog at start-up and counts in Redis (serving/suggest).
    provided["suggest"] = build_suggest(settings, engine, redis_client, clock=clock)
    # Its own Redis client: a short timeout, so a slow Redis lets requests pass (fail open).
    provided["rate_limiter"] = rate_limiter = build_rate_limiter(settings, redis_url)
    services.closers.append(rate_limiter.close)
    # --- recommendations ---
    from serving.recommendations.wiring import build_recommendations

    # Also the search's personal Reranker (structurally: rerank(customer_id, ids, scores)).
    provided["recommendations"] = build_recommendations(settings, engine, redis_client, outbox)
    # --- fraud ---
    from serving.fraud.screen import CheckoutScreen
    from serving.fraud.wiring import build_scorer

    fraud_scorer = build_scorer(settings, redis_url, customers, clock=clock)
    provided["fraud_scorer"] = fraud_scorer
    provided["fraud_screen"] = CheckoutScreen(fraud_scorer)
    provided["order_reviews"] = checkout  # POST /v1/admin/orders/{id}/review
    # --- analytics ---
    from serving.analytics.service import build_analytics

    # Reads through the loader's loopback endpoint (or SOUK_ANALYTICS_URL), per request.
    provided["analytics"] = build_analytics(settings)
    # money (issue 12): each block wires one domain, edited only by its owner.
    # --- payments ---
    # --- vault ---
    # --- ledger ---
    # --- billing ---
    # --- returns ---
    return services
