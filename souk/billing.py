"""Billing's processes: the invoicing consumer (a thread of `souk serve`, or
`souk billing consume`), wired from settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from souk.settings import Settings
from souk.wiring import build_consumer
from transactional.billing.consumer import GROUP, billing_topics
from transactional.billing.model import InvoiceNotFound
from transactional.billing.service import BillingService
from transactional.billing.tax import DEFAULT_RULES_PATH, TaxRules, load_rules
from transactional.shared.consumer import KafkaEventConsumer
from transactional.shared.db import create_db_engine

_LOG = logging.getLogger("souk.billing")


def tax_rules(settings: Settings) -> TaxRules | None:
    """The tax rules the checkout applies (None with SOUK_TAX_ENABLED=false); loaded once."""
    if not settings.tax_enabled:
        return None
    return load_rules(settings.tax_rules_file or DEFAULT_RULES_PATH)


def build_invoicing(
    settings: Settings,
    database_url: str,
    kafka_bootstrap: str,
    billing: BillingService,
    engine: Engine | None = None,
) -> KafkaEventConsumer:
    """A member of the invoicing consumer group, applying each event once (inbox)."""
    return build_consumer(
        settings,
        database_url,
        kafka_bootstrap,
        name=GROUP,
        topics=billing_topics(settings.regions),
        handler=billing.handle,
        engine=engine,
    )


def invoice_forever(
    settings: Settings, database_url: str, kafka_bootstrap: str, stop: threading.Event
) -> None:
    """Run the invoicing consumer until ``stop``; a failure is logged and a new member
    starts after a pause (unprocessed events come again, issued once)."""
    engine = create_db_engine(database_url, pool_size=2, application_name="souk-billing")
    billing = BillingService(engine, tax=tax_rules(settings), clock=lambda: datetime.now(UTC))
    try:
        while not stop.is_set():
            consumer = None
            try:
                consumer = build_invoicing(settings, database_url, kafka_bootstrap, billing, engine)
                consumer.run(stop)
            except Exception:
                _LOG.exception("invoicing consumer failed; restarting in 5 s")
                stop.wait(5.0)
            finally:
                if consumer is not None:
                    try:
                        consumer.close()
                    except Exception:  # closing a broken member: nothing left to save
                        _LOG.warning("invoicing consumer did not close cleanly")
    finally:
        engine.dispose()


def write_invoice_pdfs(
    billing: BillingService, order_ids: Sequence[str], directory: Path
) -> list[Path]:
    """Issue the paid orders' missing invoices and write each order's PDF (every seller's
    invoice, then its credit notes if any) under ``directory``; the files written (for
    `make demo`'s summary). Unpaid orders are skipped."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for order_id in order_ids:
        if not billing.issue(order_id):
            continue
        for kind in ("invoice", "credit_note"):
            try:
                content, _ = billing.pdf(order_id, None, kind=kind)
            except InvoiceNotFound:
                continue
            path = directory / f"{order_id}-{kind}.pdf"
            path.write_bytes(content)
            written.append(path)
    return written
