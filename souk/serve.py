"""`souk serve`: the HTTP APIs on uvicorn, with housekeeping and (optionally) the outbox relay."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import uvicorn

from serving.app import create_app
from serving.asgi import DOMAINS_VARIABLE
from souk.background import Housekeeper, housekeeping_tasks
from souk.services import build_services
from souk.settings import Settings
from souk.stack.endpoints import resolve_url


def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    domains: Sequence[str] | None = None,
    relay: bool = True,
    archive: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve until SIGINT/SIGTERM; the relay thread publishes what the APIs write.

    With ``archive`` the lake's archiver (jobs/archive.py) runs in a thread too: every topic
    lands in the bronze Delta tables as it is published.
    """
    database_url = resolve_url(settings, "postgres")
    services = build_services(
        settings, database_url=database_url, redis_url=resolve_url(settings, "redis")
    )
    housekeeper = Housekeeper(housekeeping_tasks(services))
    relay_stop = threading.Event()
    relay_thread = None
    if relay:
        from souk.wiring import build_relay

        relay_ = build_relay(settings, database_url, resolve_url(settings, "kafka"))

        def run_relay() -> None:
            try:
                relay_.run(
                    relay_stop,
                    poll_interval_s=settings.relay_poll_interval_s,
                    retention_s=settings.outbox_retention_hours * 3600,
                )
            finally:
                relay_.close()

        relay_thread = threading.Thread(target=run_relay, name="souk-relay", daemon=True)
    archiver_thread = None
    if archive:
        from jobs.archive import archive_forever

        archiver_thread = threading.Thread(
            target=archive_forever, args=(settings, relay_stop), name="souk-archiver", daemon=True
        )
    housekeeper.start()
    if relay_thread is not None:
        relay_thread.start()
    if archiver_thread is not None:
        archiver_thread.start()
    try:
        if settings.http_workers > 1:
            # One process holds one core (the GIL): the workers serve, this process keeps
            # house and relays. Each worker wires its own services from the same settings.
            os.environ[DOMAINS_VARIABLE] = ",".join(domains or [])
            uvicorn.run(
                "serving.asgi:create",
                factory=True,
                workers=settings.http_workers,
                host=host,
                port=port,
                log_level=log_level,
                access_log=False,
                proxy_headers=False,  # SOUK_TRUSTED_PROXIES decides, in the checkout's edge
            )
        else:
            app = create_app(services, domains)
            uvicorn.run(
                app,
                host=host,
                port=port,
                log_level=log_level,
                access_log=False,
                proxy_headers=False,  # SOUK_TRUSTED_PROXIES decides, in the checkout's edge
            )
    finally:
        housekeeper.stop()
        relay_stop.set()
        if relay_thread is not None:
            relay_thread.join(timeout=15)
        if archiver_thread is not None:
            archiver_thread.join(timeout=30)
        services.close()
