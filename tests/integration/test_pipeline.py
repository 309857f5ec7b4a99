"""The pipelined unit of work on a real PostgreSQL: a failed statement or COMMIT raises, rolls
back, and the connection goes back to the pool idle and out of autocommit (a connection left
in autocommit would silently commit every statement of the next unit of work that gets it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine, text

from schemas.examples import example_envelope
from souk.settings import Settings
from souk.stack.endpoints import Endpoints
from souk.wiring import build_outbox
from transactional.shared.db import create_db_engine
from transactional.shared.pipeline import PipelinedUnitOfWork, pyformat

_BAD_KEY = pyformat(
    "INSERT INTO checkout_idempotency_keys (customer_id, idempotency_key, fingerprint, "
    "checkout_id, created_at, expires_at) VALUES (:customer, :key, :fingerprint, "
    ":checkout, :now, :later)"
)


@pytest.fixture
def one_connection(endpoints: Endpoints) -> Iterator[Engine]:
    """An engine whose pool lends one connection, so each unit of work gets the same one."""
    engine = create_db_engine(endpoints.database_url, pool_size=1, application_name="souk-pipe")
    engine.pool._max_overflow = 0  # type: ignore[attr-defined]
    yield engine
    engine.dispose()


def returned_as_lent(engine: Engine) -> None:
    """The pooled connection is idle, not in autocommit, and a rollback still rolls back."""
    pooled = engine.raw_connection()
    try:
        connection = pooled.driver_connection
        assert connection is not None
        assert connection.autocommit is False
        assert connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        pooled.close()
    consumer = f"pipe-{uuid.uuid4().hex}"
    with engine.connect() as sa:
        sa.execute(
            text("INSERT INTO inbox (consumer, event_id, event_type) VALUES (:c, :e, 'probe')"),
            {"c": consumer, "e": uuid.uuid4()},
        )
        sa.rollback()
        left = sa.execute(text("SELECT count(*) FROM inbox WHERE consumer = :c"), {"c": consumer})
        assert left.scalar() == 0


def bad_key(unique: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "customer": f"cus_{unique}",
        "key": unique,
        "fingerprint": "0" * 64,
        "checkout": f"chk_missing_{unique}",  # the deferred foreign key fails at COMMIT
        "now": now,
        "later": now + timedelta(days=1),
    }


def test_a_failed_statement_raises_rolls_back_and_returns_the_connection_idle(
    one_connection: Engine, souk_settings: Settings
) -> None:
    outbox = build_outbox(souk_settings)
    with (
        pytest.raises(psycopg.errors.UndefinedTable),
        PipelinedUnitOfWork(one_connection.raw_connection, outbox) as uow,
    ):
        uow.begin()
        uow.execute("INSERT INTO no_such_table VALUES (1)")
        uow.sync()
    returned_as_lent(one_connection)


def test_a_failed_commit_raises_keeps_nothing_and_returns_the_connection_idle(
    one_connection: Engine, souk_settings: Settings
) -> None:
    unique = uuid.uuid4().hex
    outbox = build_outbox(souk_settings)
    with (
        pytest.raises(psycopg.errors.ForeignKeyViolation),
        PipelinedUnitOfWork(one_connection.raw_connection, outbox) as uow,
    ):
        uow.begin()
        uow.execute(_BAD_KEY, bad_key(unique))
        uow.sync()
        uow.commit()
    returned_as_lent(one_connection)
    with one_connection.connect() as sa:
        kept = sa.execute(
            text("SELECT count(*) FROM checkout_idempotency_keys WHERE idempotency_key = :k"),
            {"k": unique},
        ).scalar()
    assert kept == 0


def test_an_outbox_insert_that_fails_before_commit_leaves_the_connection_usable(
    one_connection: Engine, souk_settings: Settings
) -> None:
    # The same event twice: the outbox INSERT breaks its unique key, so COMMIT never runs
    # and PostgreSQL still holds the failed transaction when the block ends.
    event = example_envelope("product.viewed", region="eu")
    with (
        pytest.raises(psycopg.errors.UniqueViolation),
        PipelinedUnitOfWork(one_connection.raw_connection, build_outbox(souk_settings)) as uow,
    ):
        uow.begin()
        uow.emit(event, event)
        uow.commit()
    returned_as_lent(one_connection)
    with one_connection.connect() as sa:
        kept = sa.execute(
            text("SELECT count(*) FROM outbox WHERE event_id = :e"), {"e": event.event_id}
        ).scalar()
    assert kept == 0


def test_an_error_queued_without_a_sync_surfaces_when_the_block_ends(
    one_connection: Engine, souk_settings: Settings
) -> None:
    outbox = build_outbox(souk_settings)
    with (
        pytest.raises(psycopg.errors.UndefinedTable),
        PipelinedUnitOfWork(one_connection.raw_connection, outbox) as uow,
    ):
        uow.execute("INSERT INTO no_such_table VALUES (1)")  # autocommit, never synced
    returned_as_lent(one_connection)


def test_leaving_without_commit_rolls_back(one_connection: Engine, souk_settings: Settings) -> None:
    unique = uuid.uuid4().hex
    with PipelinedUnitOfWork(one_connection.raw_connection, build_outbox(souk_settings)) as uow:
        uow.begin()
        uow.execute(
            pyformat("INSERT INTO inbox (consumer, event_id, event_type) VALUES (:c, :e, :t)"),
            {"c": f"pipe-{unique}", "e": uuid.uuid4(), "t": "test.event"},
        )
        uow.sync()
    returned_as_lent(one_connection)
    with one_connection.connect() as sa:
        count = sa.execute(
            text("SELECT count(*) FROM inbox WHERE consumer = :c"), {"c": f"pipe-{unique}"}
        ).scalar()
    assert count == 0
