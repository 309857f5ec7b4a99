"""SQLAlchemy engine creation for the transactional database (PostgreSQL through psycopg 3)."""

from __future__ import annotations

import functools
import time
from typing import Any

from sqlalchemy import Engine, TextClause, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

# A connection idle longer than this is checked (one round trip) before it is handed out;
# busy connections never are. Recycling bounds a connection's life on top of it.
IDLE_CHECK_AFTER_S = 10.0
RECYCLE_AFTER_S = 1800


@functools.lru_cache(maxsize=4096)
def sql(statement: str) -> TextClause:
    """``sqlalchemy.text(statement)``, built once per distinct statement: finding its bind
    parameters (a regex pass) costs more than a short statement's whole trip through the
    driver."""
    return text(statement)


def sqlalchemy_url(url: str) -> str:
    """Normalise a PostgreSQL URL so SQLAlchemy uses the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def libpq_dsn(url: str) -> str:
    """The same URL in the form psycopg/libpq accept (no SQLAlchemy driver suffix)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def create_db_engine(url: str, *, pool_size: int = 10, application_name: str = "souk") -> Engine:
    """An engine with a bounded pool whose idle connections are checked before reuse.

    No ping per checkout (a round trip per transaction on the hot path): only a connection
    that sat idle for :data:`IDLE_CHECK_AFTER_S` is pinged, and a dead one is replaced
    before the caller sees it. A connection dropped while in use fails that one transaction
    and is invalidated, so the next checkout gets a fresh one.
    """
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_recycle=RECYCLE_AFTER_S,
        connect_args={"application_name": application_name, "connect_timeout": 5},
    )
    event.listen(engine, "checkin", _returned)
    event.listen(engine, "checkout", _check_if_idle)
    return engine


def _returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["returned_at"] = time.monotonic()


def _check_if_idle(
    dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    returned = record.info.get("returned_at")
    if returned is None or time.monotonic() - returned < IDLE_CHECK_AFTER_S:
        return
    try:
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as error:
        # The pool discards this connection and checks out another (up to three times).
        raise exc.DisconnectionError(f"idle connection is gone: {error}") from error
