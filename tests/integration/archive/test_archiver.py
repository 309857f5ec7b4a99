"""The archiver on the real broker and real Delta tables: exactly once, also after SIGKILL."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from jobs.archive import GROUP, REJECTED, Archiver, app_id
from jobs.lake.delta_rs import DeltaRsStore
from jobs.lake.store import lake_root
from jobs.lake.tables import bronze_table
from schemas.envelope import Envelope
from schemas.registry import REGISTRY, topic_for
from souk.settings import Settings
from souk.stack import Stack
from souk.stack.homes import temporary_home
from souk.topics import ensure_topics

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    """The bootstrap address of a private local broker."""
    home = temporary_home("souk-archive-")
    stack = Stack(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    yield stack.up_component("kafka")
    stack.down()


@pytest.fixture
def settings(kafka: str, tmp_path: Path) -> Settings:
    """Two fresh regions (their own topics), a private lake."""
    tag = secrets.token_hex(3)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=tmp_path / "home",
        regions=[f"a{tag}", f"b{tag}"],
        kafka_bootstrap=kafka,
        kafka_partitions=2,
    )
    ensure_topics(settings, kafka)
    return settings


def view(region: str, i: int, at: datetime) -> Envelope:
    """A product view (behaviour domain)."""
    return REGISTRY.new_event(
        "product.viewed",
        {"session_id": f"ses-{i % 7}", "product_id": f"prd-{i % 50}", "source": "search"},
        region=region,
        occurred_at=at,
    )


def placed(region: str, i: int, at: datetime) -> Envelope:
    """An order.placed (orders domain) from the registry's example payload."""
    from schemas.examples import EXAMPLES

    payload = dict(EXAMPLES["order.placed"])
    payload["order_id"] = f"ord-{i}"
    return REGISTRY.new_event("order.placed", payload, region=region, occurred_at=at)


def produce(
    bootstrap: str, envelopes: list[Envelope], *, raw: list[tuple[str, bytes]] = ()
) -> None:
    """Publish envelopes keyed by aggregate id (and raw records as they are)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for envelope in envelopes:
        domain = REGISTRY.spec(envelope.event_type).domain
        producer.produce(
            topic_for(domain, envelope.region),
            key=envelope.aggregate_id,
            value=msgspec.json.encode(envelope),
        )
    for topic, value in raw:
        producer.produce(topic, value=value)
    assert producer.flush(30) == 0


def event_ids(store: DeltaRsStore, table: str) -> list[str]:
    """Every event id in a bronze table (with repeats, if any)."""
    if not store.exists(table):
        return []
    return store.read(table, columns=["event_id"]).column("event_id").to_pylist()


def test_archives_each_event_once_with_partitions_and_rejects(
    settings: Settings, kafka: str
) -> None:
    ra, rb = settings.regions
    day1 = datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC)
    views = [view(ra if i % 2 else rb, i, day1 + timedelta(seconds=i)) for i in range(40)]
    orders = [placed(ra, i, day1 + timedelta(seconds=i)) for i in range(5)]
    produce(kafka, views + orders + [views[3]], raw=[(topic_for("behaviour", ra), b"not json")])
    store = DeltaRsStore(lake_root(settings))
    archiver = Archiver(
        settings, store, kafka, group=f"{GROUP}-{secrets.token_hex(3)}", batch_max=16
    )
    import threading

    stats = archiver.run(threading.Event(), idle_exit_s=3.0)

    behaviour = store.read(bronze_table("behaviour"))
    assert sorted(behaviour.column("event_id").to_pylist()) == sorted(
        str(v.event_id) for v in views
    )
    assert stats.duplicates == 1 and stats.rejected == 1
    assert sorted(event_ids(store, bronze_table("orders"))) == sorted(
        str(o.event_id) for o in orders
    )
    # partitions: event date (UTC) and region
    dates = {str(d) for d in behaviour.column("event_date").to_pylist()}
    assert dates == {"2026-11-30", "2026-12-01"}
    row = next(r for r in behaviour.to_pylist() if r["event_id"] == str(views[3].event_id))
    assert row["region"] == ra and row["event_type"] == "product.viewed"
    assert msgspec.json.decode(row["payload"]) == views[3].payload
    assert row["occurred_at"] == views[3].occurred_at
    rejected = store.read(REJECTED).to_pylist()
    assert [r["value"] for r in rejected] == [b"not json"]


def test_resumes_after_sigkill_without_loss_or_duplicates(settings: Settings, kafka: str) -> None:
    ra, rb = settings.regions
    start = datetime(2026, 12, 1, 10, tzinfo=UTC)
    first = [view(ra if i % 3 else rb, i, start + timedelta(milliseconds=i)) for i in range(3000)]
    produce(kafka, first)
    env = {
        **os.environ,
        "SOUK_HOME": str(settings.home),
        "SOUK_KAFKA_BOOTSTRAP": kafka,
        "SOUK_REGIONS": ",".join(settings.regions),
        "SOUK_KAFKA_PARTITIONS": "2",
    }
    store = DeltaRsStore(lake_root(settings))
    table = bronze_table("behaviour")
    command = [sys.executable, "-m", "jobs.archive", "--batch", "100"]
    archiver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # killed mid-stream: some batches in, not all
            if store.exists(table) and store.version(table) >= 3:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the archiver committed nothing in 90 s")
        archiver.send_signal(signal.SIGKILL)
        archiver.wait(10)
    finally:
        if archiver.poll() is None:
            archiver.kill()
    partial = event_ids(store, table)
    assert 0 < len(partial) < len(first)
    later = [view(rb, 10_000 + i, start + timedelta(seconds=5, milliseconds=i)) for i in range(500)]
    produce(kafka, later)
    done = subprocess.run(
        [*command, "--until-idle", "4"], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ids = event_ids(store, table)
    assert len(ids) == len(set(ids))  # exactly once
    assert set(ids) == {str(e.event_id) for e in first + later}  # nothing lost
    # each partition's last archived offset is in the table, for the next start
    recorded = store.offsets(table, [app_id(GROUP, topic_for("behaviour", ra), p) for p in (0, 1)])
    assert len(recorded) == 2
    # the CLI lists the table with its rows, and its history
    listed = subprocess.run(
        [sys.executable, "-m", "souk", "lake", "tables"], env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if "bronze/behaviour" in row)
    assert f"{len(first) + len(later):,}" in line
    shown = subprocess.run(
        [sys.executable, "-m", "souk", "lake", "history", table, "--limit", "3"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and "MERGE" in shown.stdout, shown.stderr
