"""`souk up` → `souk status --json` all healthy → `souk down` leaves no process; bad input."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text

from schemas.registry import REGISTRY
from souk.stack.homes import temporary_home
from transactional.shared.db import create_db_engine
from transactional.shared.outbox import Outbox

pytestmark = pytest.mark.integration

URL_SETTINGS = ("SOUK_DATABASE_URL", "SOUK_REDIS_URL", "SOUK_KAFKA_BOOTSTRAP")


@pytest.fixture
def home() -> Iterator[Path]:
    path = temporary_home("souk-cli-")
    yield path
    souk(path, "down", "--purge")
    shutil.rmtree(path, ignore_errors=True)


def souk(
    home: Path, *args: str, timeout_s: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in URL_SETTINGS}
    environment.update(SOUK_HOME=str(home), **env)
    return subprocess.run(
        [sys.executable, "-m", "souk", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=home,
    )


def test_up_status_down_leaves_nothing_behind(home: Path) -> None:
    up = souk(home, "up")
    assert up.returncode == 0, up.stderr + up.stdout
    assert "SOUK_DATABASE_URL" in up.stdout
    archiving = re.search(r"archiver: running \(pid (\d+)", up.stdout)
    assert archiving, up.stdout
    archiver = psutil.Process(int(archiving.group(1)))
    assert "jobs.archive" in " ".join(archiver.cmdline())
    loading = re.search(r"analytics loader: running \(pid (\d+), queries on http", up.stdout)
    assert loading, up.stdout
    loader = psutil.Process(int(loading.group(1)))
    assert "jobs.analytics.loader" in " ".join(loader.cmdline())

    status = souk(home, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["all_up"] is True
    components = {c["name"]: c for c in report["components"]}
    assert set(components) == {"postgres", "redis", "kafka"}
    assert components["postgres"]["version"].startswith("PostgreSQL 18")
    assert components["redis"]["version"].startswith("valkey")
    assert components["kafka"]["version"].startswith("tansu")
    topics = {t["name"]: t["partitions"] for t in components["kafka"]["topics"]}
    assert topics["eu.orders.v1"] == 3 and topics["us.payments.v1.dlq"] == 3
    pids = [c["pid"] for c in components.values()]
    assert all(psutil.pid_exists(pid) for pid in pids)
    children = [child for pid in pids for child in psutil.Process(pid).children(recursive=True)]

    again = souk(home, "status", "--json")
    assert [c["pid"] for c in json.loads(again.stdout)["components"]] == pids

    down = souk(home, "down")
    assert down.returncode == 0, down.stderr
    assert "stopped the archiver" in down.stdout
    assert "stopped the analytics loader" in down.stdout
    for process in [
        *(psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)),
        *children,
        archiver,
        loader,
    ]:
        with contextlib.suppress(psutil.NoSuchProcess):
            assert process.status() == psutil.STATUS_ZOMBIE, f"{process} still running"
    after = souk(home, "status", "--json")
    assert after.returncode == 1
    assert not json.loads(after.stdout)["all_up"]


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (
            ["relay", "--once"],
            {
                "SOUK_DATABASE_URL": "postgresql://souk:secret@127.0.0.1:9/souk",
                "SOUK_REDIS_URL": "redis://127.0.0.1:9/0",
                "SOUK_KAFKA_BOOTSTRAP": "127.0.0.1:9",
            },
            "PostgreSQL at postgresql://souk:***@127.0.0.1:9/souk is unreachable",
        ),
        (["topics"], {"SOUK_KAFKA_BOOTSTRAP": "127.0.0.1:9"}, "SOUK_KAFKA_BOOTSTRAP"),
        (["relay", "--once"], {}, "souk up"),
    ],
)
def test_bad_configuration_gets_a_one_line_error(
    home: Path, command: list[str], env: dict[str, str], expected: str
) -> None:
    result = souk(home, *command, **env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert expected in lines[0]


def test_a_new_embedded_broker_gets_the_retained_events_again(home: Path) -> None:
    assert souk(home, "up").returncode == 0
    status = json.loads(souk(home, "status", "--json").stdout)
    database_url = next(c["url"] for c in status["components"] if c["name"] == "postgres")
    engine = create_db_engine(database_url, pool_size=1)
    events = [
        REGISTRY.new_event(
            "product.viewed", {"session_id": f"ses-{n}", "product_id": "prd-1"}, region="eu"
        )
        for n in range(5)
    ]
    try:
        with engine.begin() as connection:
            Outbox(regions=["eu"]).add(connection, events)
    finally:
        engine.dispose()
    relayed = souk(home, "relay", "--once")
    assert "relayed 5 events" in relayed.stdout, relayed.stderr

    assert souk(home, "down").returncode == 0  # the in-memory broker forgets everything
    again = souk(home, "up")
    assert "new embedded broker: 5 retained events queued for the relay" in again.stdout
    assert "relayed 5 events" in souk(home, "relay", "--once").stdout

    reused = souk(home, "up")  # same broker: nothing to replay
    assert "retained events queued" not in reused.stdout
    assert "5 events queued again" in souk(home, "republish").stdout


def test_a_running_relay_recovers_when_the_broker_restarts(home: Path) -> None:
    assert souk(home, "up").returncode == 0
    status = json.loads(souk(home, "status", "--json").stdout)
    by_name = {c["name"]: c for c in status["components"]}
    engine = create_db_engine(by_name["postgres"]["url"], pool_size=1)
    environment = {k: v for k, v in os.environ.items() if k not in URL_SETTINGS}
    environment.update(SOUK_HOME=str(home), SOUK_RELAY_STALL_TIMEOUT_S="2")
    relay = subprocess.Popen(
        [sys.executable, "-m", "souk", "relay", "--log-level", "WARNING"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=home,
    )  # fmt: skip

    def write_and_wait(n: int) -> bool:
        event = REGISTRY.new_event(
            "product.viewed", {"session_id": f"ses-{n}", "product_id": "prd-1"}, region="eu"
        )
        with engine.begin() as connection:
            Outbox(regions=["eu"]).add(connection, [event])
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            with engine.connect() as connection:
                done = connection.execute(
                    text("SELECT published_at IS NOT NULL FROM outbox WHERE event_id = :e"),
                    {"e": event.event_id},
                ).scalar_one()
            if done:
                return True
            time.sleep(0.2)
        return False

    try:
        assert write_and_wait(1)
        broker = psutil.Process(by_name["kafka"]["pid"])
        broker.kill()  # the in-memory broker dies with everything it held
        broker.wait(10)
        again = souk(home, "up")
        assert again.returncode == 0, again.stderr
        # The running relay holds the outbox, so the replay is left to the operator...
        assert "a relay is running on this database" in again.stdout
        # ...but the relay itself gets going again on the new broker.
        assert write_and_wait(2), "the relay did not recover after the broker restarted"
    finally:
        relay.terminate()
        relay.wait(20)
        engine.dispose()


def test_demo_runs_end_to_end_and_stops_its_stack(home: Path) -> None:
    # The three Flink jobs start beside the shoppers: minutes on 2 cores.
    result = souk(
        home, "demo", "--customers", "20", "--products", "10", "--events", "200", timeout_s=900
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "demo OK" in result.stdout
    # the streaming part: every job ran, the inventory view matched PostgreSQL
    assert re.search(r"inventory view vs PostgreSQL\s*│\s*0 of [1-9]\d* SKUs differ", result.stdout)
    assert "Trending now" in result.stdout
    assert "fraud alerts raised" in result.stdout
    # the batch part: every event archived to bronze, then the scheduled jobs ran once
    archived = re.search(r"archived events\s*│\s*([\d,]+) of ([\d,]+)", result.stdout)
    assert archived and archived.group(1) == archived.group(2), result.stdout
    for table in ("silver/events", "gold/user_item_interactions"):
        assert re.search(rf"{table}\s*│\s*[1-9]", result.stdout), table
    assert re.search(r"train_als\s*│\s*succeeded", result.stdout)
    assert "stack stopped" in result.stdout
    assert json.loads(souk(home, "status", "--json").stdout)["all_up"] is False


def test_up_with_pipelines_runs_every_job_and_down_stops_them(home: Path) -> None:
    up = souk(home, "up", "--pipelines", timeout_s=600)
    assert up.returncode == 0, up.stderr + up.stdout
    for job in ("inventory", "trending", "fraud"):
        assert f"{job}: running (pid" in up.stdout, up.stdout

    status = souk(home, "status", "--json", timeout_s=60)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["all_up"] is True
    jobs = {job["job"]: job for job in report["pipelines"]}
    assert set(jobs) == {"inventory", "trending", "fraud"}
    assert all(job["running"] and job["state"] == "RUNNING" for job in jobs.values()), jobs
    pids = [json.loads((home / "pipelines" / f"{name}.json").read_text())["pid"] for name in jobs]

    down = souk(home, "down", timeout_s=120)
    assert down.returncode == 0, down.stderr + down.stdout
    for name in jobs:
        assert f"stopped pipeline {name}" in down.stdout
    assert not any(psutil.pid_exists(pid) for pid in pids)
