"""The analytics loader on the real broker and chdb: exactly once after SIGKILL, the query
endpoint while it runs, the CLI and GET /v1/admin/metrics on what it loaded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from confluent_kafka import Producer
from litestar import Litestar
from litestar.testing import TestClient

from jobs.analytics import data_dir
from jobs.analytics.chdb_store import ChdbStore
from jobs.analytics.endpoint import EndpointStore, QueryEndpoint, running_endpoint
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.services import Services
from souk.settings import Settings
from souk.stack import Stack
from souk.stack.homes import temporary_home
from souk.topics import ensure_topics
from tests.integration.http import admin_headers, assert_problem
from tests.unit.analytics import scenario

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    """A private broker: the scenario's regions (eu, us) get topics of their own."""
    home = temporary_home("souk-analytics-")
    stack = Stack(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    yield stack.up_component("kafka")
    stack.down()


def searches(n: int, start: int) -> list[Envelope]:
    """Filler events (eu searches in one session): volume that leaves every metric alone."""
    return [
        REGISTRY.new_event(
            "search.performed",
            {"search_id": f"q{start + i}", "session_id": "bulk", "query": "mug", "result_count": 3},
            region="eu",
            occurred_at=scenario.TUE + timedelta(milliseconds=start + i),
        )
        for i in range(n)
    ]


def produce(bootstrap: str, envelopes: list[Envelope]) -> None:
    """Publish envelopes keyed by aggregate id."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for e in envelopes:
        topic = topic_for(REGISTRY.spec(e.event_type).domain, e.region)
        producer.produce(topic, key=e.aggregate_id, value=msgspec.json.encode(e))
    assert producer.flush(30) == 0


def count(url: str, sql: str) -> int:
    """One number from the running loader's endpoint."""
    reader = EndpointStore(url)
    try:
        return int(reader.arrow(sql).to_pylist()[0]["n"])
    finally:
        reader.close()


def test_loader_exactly_once_after_sigkill_then_cli_and_admin_metrics(
    kafka: str, tmp_path: Path, services: Services, app: Litestar
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=tmp_path / "home",
        regions=["eu", "us"],
        kafka_bootstrap=kafka,
        kafka_partitions=2,
    )
    ensure_topics(settings, kafka)
    shop = scenario.build()
    first = shop + searches(3000, 0)
    produce(kafka, first)
    env = {
        **os.environ,
        "SOUK_HOME": str(settings.home),
        "SOUK_KAFKA_BOOTSTRAP": kafka,
        "SOUK_REGIONS": "eu,us",
        "SOUK_KAFKA_PARTITIONS": "2",
        "SOUK_ANALYTICS_BATCH_WAIT_S": "0.2",
    }
    # small batches: the Arrow loader takes a few hundred events in well under a second, and
    # the kill must land mid-stream (some batches committed, not all)
    command = [sys.executable, "-m", "jobs.analytics.loader", "--batch", "25"]
    loader = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        url = None
        while time.monotonic() < deadline:  # killed mid-stream: some batches in, not all
            url = url or running_endpoint(settings)
            if url and count(url, "SELECT uniqExact(batch_id) AS n FROM loader_offsets") >= 3:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the loader committed nothing in 90 s")
        assert url is not None
        partial = count(url, "SELECT count() AS n FROM events")
        # the endpoint is read-only and says why a query failed
        with pytest.raises(Exception, match="read-only"):
            EndpointStore(url).arrow("DROP TABLE events")
        loader.send_signal(signal.SIGKILL)
        loader.wait(10)
    finally:
        if loader.poll() is None:
            loader.kill()
    assert 0 < partial < len(first)
    later = searches(300, 10_000)
    produce(kafka, later + first[:50])  # the relay republished 50 events after a restart
    done = subprocess.run(
        [*command, "--until-idle", "3"], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr

    def cli(*args: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-m", "souk", "analytics", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    # no loader runs now: the CLI opens the folder itself
    ids = cli("query", "SELECT event_id FROM events", "--json")
    got = [row["event_id"] for row in ids]
    assert len(got) == len(set(got))  # exactly once
    assert set(got) == {str(e.event_id) for e in first + later}  # nothing lost
    lines = cli("query", "SELECT order_id, line_id FROM order_lines ORDER BY line_id", "--json")
    assert [r["line_id"] for r in lines] == ["o1-0", "o1-1", "o2-0", "o3-0", "o3-1", "o4-0"]
    figures = cli("metrics", "--json")
    assert figures["orders"] == {"placed": 4, "paid": 4, "cancelled": 1}
    assert figures["gmv"] == [
        {"currency": "EUR", "amount_minor": 5900, "amount": "59.00"},
        {"currency": "USD", "amount_minor": 4500, "amount": "45.00"},
    ]
    assert figures["funnel"]["paid"] == 2 and figures["events"] == len(first) + len(later)

    # GET /v1/admin/metrics through the full app, reading a loader endpoint of its home
    store = ChdbStore(data_dir(settings))
    endpoint = QueryEndpoint(store, services.settings).start()
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert_problem(client.get("/v1/admin/metrics"), 401)
            ok = client.get("/v1/admin/metrics", headers=admin_headers(services.tokens))
            assert ok.status_code == 200, ok.text
            body = ok.json()
            assert {k: body[k] for k in ("orders", "gmv", "revenue", "funnel")} == {
                k: figures[k] for k in ("orders", "gmv", "revenue", "funnel")
            }
            eu = client.get(
                "/v1/admin/metrics?region=eu&since=2026-12-01&until=2026-12-01",
                headers=admin_headers(services.tokens),
            ).json()
            assert eu["gmv"] == [{"currency": "EUR", "amount_minor": 1500, "amount": "15.00"}]
            bad = client.get(
                "/v1/admin/metrics?since=2026-12-02&until=2026-12-01",
                headers=admin_headers(services.tokens),
            )
            assert_problem(bad, 422, "invalid_window")
    finally:
        endpoint.stop()
        store.close()
    with TestClient(app, raise_server_exceptions=False) as client:
        gone = client.get("/v1/admin/metrics", headers=admin_headers(services.tokens))
        assert_problem(gone, 503, "store_unavailable")
