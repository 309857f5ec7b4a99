"""The Litestar application: every slice's controllers behind one ASGI app.

The embedded default serves all domains from one process; ``domains`` picks a subset so each
service can be deployed as its own process from the same code.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from anyio import to_thread
from litestar import Litestar, get
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.types import ControllerRouterHandler

from serving.bodies import StrictJsonRequest
from serving.openapi import document_problems
from serving.problems import EXCEPTION_HANDLERS
from souk.services import Services
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


def worker_threads(count: int) -> Callable[[], Awaitable[None]]:
    """A startup hook sizing the thread pool that runs synchronous handlers (anyio's, 40 by
    default): a checkout waiting on the payment processor holds one thread."""

    async def size_pool() -> None:
        to_thread.current_default_thread_limiter().total_tokens = count

    return size_pool


def create_app(services: Services, domains: Sequence[str] | None = None) -> Litestar:
    """The ASGI app serving ``domains`` (all by default) over ``services``."""
    dependencies: dict[str, Provide] = {
        name: _constant(service) for name, service in services.provided.items()
    }
    dependencies["principal"] = Provide(provide_principal, sync_to_thread=False)
    dependencies["maybe_principal"] = Provide(provide_maybe_principal, sync_to_thread=False)
    app = Litestar(
        route_handlers=[health, *domain_routes(domains or list(DOMAIN_ROUTES))],
        dependencies=dependencies,
        exception_handlers=EXCEPTION_HANDLERS,
        # JSON bodies decoded strictly into each handler's type, bad bytes a 400 not a 500.
        request_class=StrictJsonRequest,
        openapi_config=OpenAPIConfig(
            title="Souk",
            version="0.1.0",
            description="Storefront, seller and admin APIs of the Souk purchase path.",
            path="/schema",
        ),
        cors_config=CORSConfig(allow_origins=["http://127.0.0.1:8000", "http://localhost:8000"]),
        on_startup=[worker_threads(services.settings.worker_threads)],
        on_shutdown=[services.close],
    )
    document_problems(app.openapi_schema)
    return app
