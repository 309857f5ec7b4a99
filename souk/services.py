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
from souk.vault_wiring import build_card_vault
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
        # The sandbox's cards are sealed by the card vault (SOUK_VAULT_*).
        SqlSandboxLedger(engine, build_card_vault(settings, engine)),
        clock=clock,
        latency_s=settings.sandbox_latency_ms / 1000,
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
        action_ttl_s=settings.payment_action_ttl_s,  # waiting on the payer (3DS, UPI)
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
    from souk.wallet_wiring import wire_wallet

    # WALLET: the card gateway behind the regional router (retried on timeouts), with the
    # wallet and split (wallet + card) adapters; provides `wallet`. Before ASYNC's UPI wrap.
    wire_wallet(provided, settings, engine, outbox, clock)
    from souk.async_payments_wiring import wire_async_payments

    # ASYNC: UPI (the UPI sandbox) beside the cards, the 3-D Secure page, signed webhooks; a
    # payer's answer drives its waiting checkout on.
    wire_async_payments(provided, settings, engine, outbox, clock)
    # --- vault ---
    # --- ledger ---
    from transactional.ledger.commission import load_commission, use_rates

    # Captures and refunds are booked by the payment and checkout units of work themselves
    # (same transaction); this only sets the commission table they book with.
    use_rates(load_commission(settings.ledger_commission_file))
    checkout.book_ledger = settings.ledger_hot_path
    # --- billing ---
    from souk.billing import tax_rules
    from transactional.billing.service import BillingService

    # Tax at checkout from the rules file (loaded once; None: SOUK_TAX_ENABLED=false); the
    # invoices themselves are issued by the invoicing consumer (souk/billing.py).
    checkout.tax = billing_tax = tax_rules(settings)
    provided["billing"] = BillingService(engine, tax=billing_tax, clock=clock)
    # --- returns ---
    from transactional.inventory.directory import SellerDirectory as _ReturnsSellers
    from transactional.returns.adapters import (
        CatalogCategories,
        InventoryReturns,
        PaymentRefunds,
        load_windows,
    )
    from transactional.returns.adapters import OrdersAdapter as ReturnsOrders
    from transactional.returns.repository import SqlReturnsUnitOfWork
    from transactional.returns.service import ReturnService

    # Refunds go back through the payment service: a card's gateway, or the wallet's (a
    # wallet payment's refund credits the wallet), booking the ledger's reversal with it.
    provided["returns"] = ReturnService(
        uow_of(SqlReturnsUnitOfWork),
        orders=ReturnsOrders(orders),
        categories=CatalogCategories(catalog),
        stock=InventoryReturns(inventory),
        destinations=PaymentRefunds(provided.get("payments", payments)),
        sellers=_ReturnsSellers(sellers),
        windows=load_windows(settings.returns_windows_file),
        auto_refund=settings.returns_auto_refund,
        clock=clock,
    )
    # --- end returns ---
    return services
