"""Real servers for integration tests: the local stack, started once per test worker.

URLs set in the environment (SOUK_DATABASE_URL, SOUK_REDIS_URL, SOUK_KAFKA_BOOTSTRAP) are
used as they are; otherwise the embedded servers start, exactly as `souk up` does. A server
that cannot start is an error, never a skip.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import Engine

from serving.app import create_app
from souk.services import Services, build_services
from souk.settings import Settings
from souk.stack import Stack
from souk.stack.endpoints import Endpoints
from souk.stack.homes import temporary_home
from tests.integration.http import serve_in_thread
from transactional.shared.db import create_db_engine
from transactional.shared.migrations import upgrade_database


@pytest.fixture(scope="session")
def souk_settings() -> Iterator[Settings]:
    """Settings with a private state folder for this test worker."""
    home = temporary_home("souk-test-")  # not tmp_path: the embedded PostgreSQL must enter it
    # Processes sharing a database share its card vault's key: apps and `souk serve`
    # subprocesses given homes of their own inherit this worker's key file.
    os.environ["SOUK_VAULT_KEY_FILE"] = str(home / "vault" / "kek.json")
    # Cheap password hashing: the suite registers thousands of customers on 2 cores.
    yield Settings(  # type: ignore[call-arg]
        home=home, _env_file=None, password_time_cost=1, password_memory_kib=1024
    )
    os.environ.pop("SOUK_VAULT_KEY_FILE", None)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def endpoints(souk_settings: Settings) -> Iterator[Endpoints]:
    """The running stack (migrated); stopped after the session."""
    stack = Stack(souk_settings)
    resolved = stack.up()
    upgrade_database(resolved.database_url)
    yield resolved
    stack.down()


@pytest.fixture(scope="session")
def engine(endpoints: Endpoints) -> Iterator[Engine]:
    """A SQLAlchemy engine on the test database."""
    db = create_db_engine(endpoints.database_url, pool_size=8, application_name="souk-tests")
    yield db
    db.dispose()


@pytest.fixture
def clean_outbox(engine: Engine) -> None:
    """Drop unpublished rows other tests left for regions whose topics no longer matter."""
    from sqlalchemy import text

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM outbox WHERE published_at IS NULL"))


@pytest.fixture
def region() -> str:
    """A fresh region code, so each test gets its own topics on the shared broker."""
    return "t" + secrets.token_hex(4)


@pytest.fixture(scope="session")
def services(souk_settings: Settings, endpoints: Endpoints) -> Iterator[Services]:
    """Every purchase-path service wired to the test stack, as `souk serve` wires them."""
    built = build_services(
        souk_settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    yield built
    built.close()


@pytest.fixture(scope="session")
def app(services: Services) -> Litestar:
    """The full HTTP app over the test stack."""
    return create_app(services)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """An in-process HTTP client of the app."""
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live_url(app: Litestar) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, for truly concurrent clients."""
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local Spark session per test worker (Spark starts once, not per test)."""
    from jobs.spark.session import spark_session

    home = tmp_path_factory.mktemp("spark-home")
    settings = Settings(_env_file=None, home=home, spark_quick_jvm=True)  # type: ignore[call-arg]
    session = spark_session(settings, "souk-tests")
    yield session
    session.stop()


# --- ledger ---
# The ledger's invariants (transactional/ledger/check.py) after every module that used the
# test database: a violation fails the module (at its last test's teardown), reported once.
_LEDGER_REPORTED: set[Any] = set()


def _started(request: pytest.FixtureRequest, name: str) -> Any:
    """The value of a session fixture if this worker created it already, else None (a
    module that never touched the database does not start the stack for the check)."""
    definitions = request.session._fixturemanager.getfixturedefs(name, request.node)
    cached = definitions[-1].cached_result if definitions else None
    if cached is None or cached[2] is not None:  # never set up, or its setup failed
        return None
    return cached[0]


@pytest.fixture(scope="module", autouse=True)
def ledger_invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    """After the module: every transaction balanced, balances equal their postings, and
    per order captured minus refunded equals what the ledger holds."""
    yield
    endpoints = _started(request, "endpoints")
    if endpoints is None:
        return
    from transactional.ledger.check import SqlLedgerSource, check

    engine = _started(request, "engine")
    own = engine is None
    if own:
        engine = create_db_engine(endpoints.database_url, pool_size=1, application_name="ledger")
    try:
        with engine.connect() as connection:
            found = check(SqlLedgerSource(connection))
    finally:
        if own:
            engine.dispose()
    new = [violation for violation in found if violation not in _LEDGER_REPORTED]
    _LEDGER_REPORTED.update(found)
    if new:
        lines = "\n".join(f"  {violation.detail}" for violation in new[:20])
        pytest.fail(f"ledger invariants broken after {request.node.name}:\n{lines}")


# --- end ledger ---
