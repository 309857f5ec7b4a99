"""The Litestar application: every slice's controllers behind one ASGI app.

The embedded default serves all domains from one process; ``domains`` picks a subset so each
service can be deployed as its own process from the same code.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from litestar import Litestar, get
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from serving.bodies import StrictJsonRequest
from serving.docs_assets import assets_router, render_plugins
from serving.openapi import document_problems
from serving.problems import EXCEPTION_HANDLERS
from serving.ratelimit import rate_limit_middleware
from souk.services import Services
from transactional.checkout.dto import ClientNetworks
from transactional.shared.http import provide_maybe_principal, provide_principal

# Domain → module exporting ROUTES; the order is the order in the OpenAPI document.
DOMAIN_ROUTES: dict[str, str] = {
    "customers": "transactional.customers.api",
    "sellers": "transactional.sellers.api",
    "catalog": "transactional.catalog.api",
    "inventory": "transactional.inventory.api",
    "carts": "transactional.carts.api",
    "checkout": "transactional.checkout.api",
    "orders": "transactional.orders.api",
    "tracking": "transactional.tracking.api",
    # serving/ (issue 10): each domain's block is edited only by its owner
    # --- search ---
    "search": "serving.search.api",
    # --- suggest ---
    "suggest": "serving.suggest.api",
    # --- recommendations ---
    "recommendations": "serving.recommendations.api",
    # --- fraud ---
    "fraud": "serving.fraud.api",
    # --- analytics ---
    "analytics": "serving.analytics.api",
    # money (issue 12): each domain's block is edited only by its owner
    # --- payments ---
    "payments": "transactional.payments.api",
    # --- ledger ---
    # --- billing ---
    "billing": "transactional.billing.api",  # GET /v1/orders/{id}/invoice (PDF)
    # --- returns ---
    "returns": "transactional.returns.api",
}


@get("/health", tags=["ops"], sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def domain_routes(domains: Iterable[str]) -> list[ControllerRouterHandler]:
    """The controllers of the given domains."""
    routes: list[ControllerRouterHandler] = []
    for domain in domains:
        if domain not in DOMAIN_ROUTES:
            raise ValueError(f"unknown domain {domain!r}; known: {', '.join(DOMAIN_ROUTES)}")
        routes.extend(importlib.import_module(DOMAIN_ROUTES[domain]).ROUTES)
    return routes


def _constant(value: Any) -> Provide:
    def provide() -> Any:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def handler_threads(count: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """Startup and shutdown hooks giving synchronous handlers a pool of ``count`` threads.

    Litestar runs them on the event loop's default executor: 6 threads on 2 cores, so a
    checkout waiting on the payment processor would hold one of six. Sized from the
    processor's latency (``Settings.worker_threads``).
    """
    pools: dict[asyncio.AbstractEventLoop, ThreadPoolExecutor] = {}

    def start() -> None:  # one pool per run of the app (tests run it on several loops)
        loop = asyncio.get_running_loop()
        pools[loop] = ThreadPoolExecutor(count, thread_name_prefix="souk-handler")
        loop.set_default_executor(pools[loop])

    def stop() -> None:
        pool = pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    return start, stop


def create_app(services: Services, domains: Sequence[str] | None = None) -> Litestar:
    """The ASGI app serving ``domains`` (all by default) over ``services``."""
    dependencies: dict[str, Provide] = {
        name: _constant(service) for name, service in services.provided.items()
    }
    start_threads, stop_threads = handler_threads(services.settings.worker_threads)
    dependencies["principal"] = Provide(provide_principal, sync_to_thread=False)
    # Which peers may say who the client is (X-Forwarded-For) and where an IP is.
    dependencies.setdefault(
        "client_networks",
        _constant(
            ClientNetworks.of(services.settings.trusted_proxies, services.settings.ip_regions)
        ),
    )
    dependencies["maybe_principal"] = Provide(provide_maybe_principal, sync_to_thread=False)
    app = Litestar(
        route_handlers=[
            health,
            assets_router(),  # the docs pages' scripts and styles, served offline
            *domain_routes(domains or list(DOMAIN_ROUTES)),
        ],
        dependencies=dependencies,
        exception_handlers=EXCEPTION_HANDLERS,
        # JSON bodies decoded strictly into each handler's type, bad bytes a 400 not a 500.
        request_class=StrictJsonRequest,
        openapi_config=OpenAPIConfig(
            title="Souk",
            version="0.1.0",
            description="Storefront, seller and admin APIs of the Souk purchase path.",
            path="/schema",
            render_plugins=render_plugins(),
        ),
        middleware=rate_limit_middleware(services),
        cors_config=CORSConfig(allow_origins=["http://127.0.0.1:8000", "http://localhost:8000"]),
        on_startup=[start_threads],
        on_shutdown=[stop_threads, services.close],
    )
    document_problems(app.openapi_schema)
    return app
