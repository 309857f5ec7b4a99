"""No card number, CVC or full expiry in the logs, the database or the events of a real run.

Checkouts over HTTP with test cards (typed bare, with spaces, with dashes), a declined card
and invalid ones, with every logger at DEBUG (SQL statements and their parameters included);
then a scan of (a) the captured logs and the HTTP answers, (b) a pg_dump of the database,
(c) the outbox and every event the relay published to the broker. The scan is first shown to
catch a number planted in each place (a scratch table, a log line, a broker message).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from confluent_kafka import Producer
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine, text

from souk.services import Services
from souk.settings import Settings
from souk.stack.endpoints import Endpoints
from souk.topics import ensure_topics
from tests.integration.http import admin_headers, register
from tests.integration.purchase.catalog_helpers import approved_seller
from tests.integration.purchase.test_checkout_api import ADDRESS, filled_cart, stock_sku
from tests.integration.vault.scan import find_leaks, kafka_values, pg_dump
from transactional.shared.kafka import KafkaClientSettings, KafkaEventPublisher, create_topics
from transactional.shared.outbox_store import PostgresOutboxStore
from transactional.shared.relay import Relay

EXP_MONTH, EXP_YEAR = 7, 2041
# (as typed, CVC, expected HTTP status); the CVCs are unusual so the scan can name them.
PAID = [
    ("4242424242424242", "739", 201),
    ("5555 5555 5555 4444", "862", 201),
    ("3782-822463-10005", "4518", 201),  # Amex: four-digit CVC
    ("6011111111111117", "951", 201),
]
DECLINED = [("4000000000000002", "306", 402)]
INVALID = [
    ("4242424242424241", "417", 422),  # Luhn fails
    ("5105105105105100", "38x", 422),  # bad CVC on a valid number
]
CARDS = PAID + DECLINED + INVALID
NUMBERS = ["".join(ch for ch in typed if ch.isdigit()) for typed, _, _ in CARDS]
CVCS = [cvc for _, cvc, _ in CARDS]
EXPIRY_FORMS = [f"{EXP_MONTH:02d}/{EXP_YEAR % 100}", f"{EXP_MONTH:02d}/{EXP_YEAR}"]
PLANTED = "4111111111111111"  # never used by the flow: only the probes carry it
PROBE_LOGGER = "tests.vault.leak_probe"


def body(cart_id: str, number: str, cvc: str) -> dict[str, Any]:
    return {
        "cart_id": cart_id,
        "shipping_address": dict(ADDRESS),
        "payment_method": {
            "type": "card",
            "card": {
                "number": number,
                "exp_month": EXP_MONTH,
                "exp_year": EXP_YEAR,
                "cvc": cvc,
                "holder": "Ada Lovelace",
            },
        },
    }


def checkout(client: Any, shopper: Mapping[str, Any], payload: Mapping[str, Any]) -> Any:
    headers = {**shopper["headers"], "Idempotency-Key": str(uuid.uuid4())}
    return client.post("/v1/checkout", json=dict(payload), headers=headers)


def relay_everything(endpoints: Endpoints, settings: Settings) -> None:
    ensure_topics(settings, endpoints.kafka_bootstrap)
    relay = Relay(
        PostgresOutboxStore(endpoints.database_url),
        KafkaEventPublisher(KafkaClientSettings(endpoints.kafka_bootstrap)),
    )
    try:
        relay.drain()
    finally:
        relay.close()


def outbox_texts(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT concat_ws(' ', message_key, convert_from(value, 'UTF8'), "
                    "headers::text) FROM outbox"
                )
            ).scalars()
        )


def published_topics(engine: Engine) -> list[str]:
    """The topics the relay published this session's events to."""
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT DISTINCT topic FROM outbox WHERE published_at IS NOT NULL")
            ).scalars()
        )


def log_text(records: list[logging.LogRecord]) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in records)


def test_a_real_run_leaks_no_card_number_cvc_or_expiry(
    app: Litestar,
    services: Services,
    souk_settings: Settings,
    endpoints: Endpoints,
    engine: Engine,
    clean_outbox: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    detached = debug_everywhere(caplog)
    try:
        run_and_scan(app, services, souk_settings, endpoints, engine, caplog)
    finally:
        for logger in detached:
            logger.removeHandler(caplog.handler)


def debug_everywhere(caplog: pytest.LogCaptureFixture) -> list[logging.Logger]:
    """Every logger at DEBUG into the capture (SQLAlchemy's SQL and parameters included),
    also those that do not propagate; the loggers given the capture's handler."""
    caplog.set_level(logging.DEBUG)
    detached = []
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        if logger.level != logging.NOTSET:
            caplog.set_level(logging.DEBUG, logger=name)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
            detached.append(logger)
    return detached


def run_and_scan(
    app: Litestar,
    services: Services,
    souk_settings: Settings,
    endpoints: Endpoints,
    engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The flow, the probes, then the scan."""
    answers: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        seller = approved_seller(client, admin_headers(services.tokens))
        sku = stock_sku(client, seller, 50, price_minor=1250)
        for typed, cvc, status in CARDS:
            shopper = register(client)
            cart_id = filled_cart(client, shopper, {sku: 1})
            response = checkout(client, shopper, body(cart_id, typed, cvc))
            assert response.status_code == status, response.text
            answers.append(f"{response.headers} {response.text}")
    relay_everything(endpoints, souk_settings)
    probe_topic = f"vault-leak-probe-{secrets.token_hex(4)}"

    # The scan catches what is there: a number planted in each place is found...
    logging.getLogger(PROBE_LOGGER).debug("probe card %s", PLANTED)
    assert find_leaks(log_text(caplog.records), [PLANTED], [], where="logs")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE vault_leak_probe (note TEXT, raw BYTEA)"))
        connection.execute(
            text("INSERT INTO vault_leak_probe VALUES (:note, :raw)"),
            {"note": "4111-1111-1111-1111", "raw": PLANTED.encode()},
        )
    try:
        planted = find_leaks(pg_dump(endpoints.database_url), [PLANTED], [], where="dump")
        assert len(planted) == 2, planted  # the dashed text and the bytea
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE vault_leak_probe"))
    create_topics(endpoints.kafka_bootstrap, [probe_topic], partitions=1)
    producer = Producer({"bootstrap.servers": endpoints.kafka_bootstrap})
    producer.produce(probe_topic, value=f'{{"card": "{PLANTED}", "cvc": "739"}}'.encode())
    assert producer.flush(30) == 0
    del producer  # its connection goes now, not when the broker is already down
    probe = "\n".join(kafka_values(endpoints.kafka_bootstrap, [probe_topic]))
    assert len(find_leaks(probe, [PLANTED], ["739"], where="broker")) == 2

    # ...and the run itself left none anywhere.
    records = [r for r in caplog.records if r.name != PROBE_LOGGER]
    assert len(records) > 100  # DEBUG capture really captured the run (SQL included)
    dump = pg_dump(endpoints.database_url)
    assert "sandbox_gateway_vault" in dump and "vault_leak_probe" not in dump
    events = outbox_texts(engine)
    published = kafka_values(endpoints.kafka_bootstrap, published_topics(engine))
    assert any("payment.captured" in e or "payment.authorized" in e for e in events)
    assert len(published) >= len(PAID)
    leaks = (
        find_leaks(log_text(records), NUMBERS, CVCS, where="logs")
        + find_leaks("\n".join(answers), NUMBERS, CVCS, where="HTTP answers")
        + find_leaks(dump, NUMBERS, CVCS, where="pg_dump")
        + find_leaks("\n".join(events), NUMBERS, CVCS, where="outbox")
        + find_leaks("\n".join(published), NUMBERS, CVCS, where="broker")
    )
    assert not leaks, leaks
    for where, traces in [
        ("logs", log_text(records)),
        ("pg_dump", dump),
        ("outbox", "\n".join(events)),
        ("broker", "\n".join(published)),
    ]:
        assert not [form for form in EXPIRY_FORMS if form in traces], where
