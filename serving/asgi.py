"""The app of one `souk serve` worker process (``SOUK_HTTP_WORKERS`` > 1), built from the
environment's settings: uvicorn imports and calls :func:`create` in each worker."""

from __future__ import annotations

import os

from litestar import Litestar

from serving.app import create_app
from souk.services import build_services
from souk.settings import get_settings
from souk.stack.endpoints import resolve_url

# The domains the parent `souk serve` was asked to serve, comma-separated (empty: all).
DOMAINS_VARIABLE = "SOUK_SERVE_DOMAINS"


def create() -> Litestar:
    """The app of this worker: its own pools and clients, the parent's settings."""
    settings = get_settings()
    services = build_services(
        settings,
        database_url=resolve_url(settings, "postgres"),
        redis_url=resolve_url(settings, "redis"),
    )
    domains = [d for d in os.environ.get(DOMAINS_VARIABLE, "").split(",") if d]
    return create_app(services, domains or None)
