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
    # Autosuggest: this process's member of the consumer group that counts searches and
    # titles into Redis (every serving process reads them back from Redis's change log).
    from serving.suggest.consumer import consume_forever
    from serving.suggest.wiring import build_suggest_consumer

    kafka_url, redis_url = resolve_url(settings, "kafka"), resolve_url(settings, "redis")
    suggest_thread = threading.Thread(
        target=consume_forever,
        args=(lambda: build_suggest_consumer(settings, kafka_url, redis_url), relay_stop),
        name="souk-suggest-consumer",
        daemon=True,
    )
    suggest_thread.start()
    if settings.http_workers == 1:  # build the indexes before the first request asks
        threading.Thread(
            target=services["suggest"].warm, name="souk-suggest-warm", daemon=True
        ).start()
    search_thread = None
    if settings.search_indexer and (not domains or "search" in domains):
        from serving.search.wiring import indexer_thread

        # Keeps the search index current from catalog, stock and behaviour events.
        search_thread = indexer_thread(settings, services["search_index"], relay_stop)
    # Recommendations: each customer's recent views, carts and purchases (the feed's and
    # search's re-ranking) and click-through per model version, from the stream.
    from serving.recommendations.activity import run_activity

    activity_thread = threading.Thread(
        target=run_activity, args=(settings, relay_stop), name="souk-recs-activity", daemon=True
    )
    # --- billing (issue 12) ---
    # Invoices of paid orders and credit notes of refunds, from the orders and payments
    # topics (the invoicing consumer group; each event applied once through the inbox).
    invoicing_thread = None
    if settings.invoices_enabled:
        from souk.billing import invoice_forever

        invoicing_thread = threading.Thread(
            target=invoice_forever,
            args=(settings, database_url, kafka_url, relay_stop),
            name="souk-invoicing",
            daemon=True,
        )
        invoicing_thread.start()
    # --- end billing ---
    housekeeper.start()
    activity_thread.start()
    if search_thread is not None:
        search_thread.start()
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
        if search_thread is not None:
            search_thread.join(timeout=15)
        suggest_thread.join(timeout=10)
        activity_thread.join(timeout=15)
        if invoicing_thread is not None:
            invoicing_thread.join(timeout=15)
        services.close()
