"""The local stack launchers against real processes: PostgreSQL 18, Valkey and Tansu."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from souk.stack import (
    Endpoints,
    ServerUnreachable,
    Stack,
    StackNotRunning,
    libpq_url,
    resolve_endpoints,
    statuses_to_json,
)
from souk.stack.state import Entry, StateFile
from tests.integration.conftest_stack_helpers import (
    closed_port,
    dead_pid,
    embedded_settings,
    is_alive,
    occupied,
    processes_of,
    stack_binaries,
    stack_home,
)

pytestmark = pytest.mark.integration

TOPIC = "stack-test.events"
GROUP = "stack-test-group"


@dataclass
class Started:
    """The module's stack, what its first `up` returned and said."""

    home: Path
    stack: Stack
    endpoints: Endpoints
    messages: list[str]


@pytest.fixture(scope="module")
def started() -> Iterator[Started]:
    """One embedded stack for the module (no URLs set); torn down and deleted at the end."""
    home = stack_home()
    stack = Stack(embedded_settings(home))
    messages: list[str] = []
    endpoints = stack.up(on_progress=messages.append)
    yield Started(home, stack, endpoints, messages)
    stack.down()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def home() -> Iterator[Path]:
    """A private home for one test; whatever it started is stopped and the folder deleted."""
    path = stack_home()
    yield path
    Stack(embedded_settings(path)).down()
    shutil.rmtree(path, ignore_errors=True)


def entries(home: Path) -> dict[str, Entry]:
    """What stack.json records."""
    return StateFile(home).load()


def fake_entry(pid: int, port: int, url: str, binary: str = "/bin/true") -> Entry:
    """A hand-written stack.json entry, as a crashed or stale run would leave it."""
    return Entry(
        pid=pid,
        port=port,
        url=url,
        binary=binary,
        data_dir=None,
        log_file="x.log",
        started_at="2020-01-01T00:00:00+00:00",
    )


# -- the embedded stack -------------------------------------------------------------------


def test_up_starts_all_three_embedded_servers(started: Started) -> None:
    recorded = entries(started.home)
    assert set(recorded) == {"postgres", "redis", "kafka"}
    binaries = stack_binaries()
    for name, entry in recorded.items():
        proc = psutil.Process(entry.pid)
        assert os.path.realpath(proc.exe()) in binaries, name
        assert entry.started_by_us
        assert entry.log_file and Path(entry.log_file).exists()
    assert started.endpoints.database_url == recorded["postgres"].url
    assert started.endpoints.database_url.startswith("postgresql+psycopg://souk@127.0.0.1:")
    assert started.endpoints.database_url.endswith("/souk")
    assert started.endpoints.redis_url == recorded["redis"].url
    assert started.endpoints.kafka_bootstrap == recorded["kafka"].url
    assert recorded["postgres"].data_dir == str(started.home / "postgres" / "data")
    assert (started.home / "postgres" / "data" / "PG_VERSION").exists()


def test_postgres_answers_select_1(started: Started) -> None:
    with psycopg.connect(libpq_url(started.endpoints.database_url), autocommit=True) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        row = conn.execute("select current_database(), current_user").fetchone()
        assert row == ("souk", "souk")
        # Kept for the restart test: data must survive down/up.
        conn.execute("create table if not exists stack_persists (v int)")
        conn.execute("insert into stack_persists values (42)")


def test_redis_answers_ping(started: Started) -> None:
    client = redis.Redis.from_url(started.endpoints.redis_url)
    try:
        assert client.ping() is True
        client.set("stack-test", "ok")
        assert client.get("stack-test") == b"ok"
    finally:
        client.close()


def test_kafka_creates_topic_produces_and_consumes(started: Started) -> None:
    bootstrap = started.endpoints.kafka_bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, num_partitions=3)]).values():
        future.result(timeout=10)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(TOPIC, key=b"k", value=b"hello", partition=1)
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        # assign() rather than subscribe(): no group join (Tansu holds joins for seconds).
        consumer.assign([TopicPartition(TOPIC, 1, 0)])
        message = None
        for _ in range(50):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
        assert message.value() == b"hello"
        consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()


def test_second_up_reuses_the_same_servers(started: Started) -> None:
    before = {name: e.pid for name, e in entries(started.home).items()}
    messages: list[str] = []
    endpoints = started.stack.up(on_progress=messages.append)
    assert endpoints == started.endpoints
    assert {name: e.pid for name, e in entries(started.home).items()} == before
    assert sum("reusing" in m for m in messages) == 3, messages


def test_resolve_endpoints_finds_the_running_stack(started: Started) -> None:
    assert resolve_endpoints(started.stack.settings) == started.endpoints


def test_status_reports_all_up_with_versions_topics_and_lag(started: Started) -> None:
    statuses = {s.name: s for s in started.stack.status()}
    assert set(statuses) == {"postgres", "redis", "kafka"}
    assert all(s.up and s.managed == "embedded" and s.error is None for s in statuses.values())
    assert statuses["postgres"].version is not None
    assert statuses["postgres"].version.startswith("PostgreSQL 18")
    assert statuses["redis"].version is not None
    assert statuses["redis"].version.startswith("valkey 9")
    assert statuses["kafka"].version is not None
    assert statuses["kafka"].version.startswith("tansu ")
    kafka = statuses["kafka"]
    assert any(t.name == TOPIC and t.partitions == 3 for t in kafka.topics)
    groups = {g.group_id: g for g in kafka.consumer_groups}
    assert GROUP in groups
    (offsets,) = [t for t in groups[GROUP].topics if t.topic == TOPIC]
    (partition,) = [p for p in offsets.partitions if p.partition == 1]
    assert partition.committed == 1
    # Tansu's high watermark may point at the start of the last batch: lag is what it says.
    assert partition.high_watermark is not None and partition.lag is not None
    assert partition.lag >= 0
    payload = json.loads(json.dumps(statuses_to_json(list(statuses.values()))))
    assert payload["all_up"] is True


def test_down_stops_everything_and_leaves_no_process(started: Started) -> None:
    recorded = entries(started.home)
    pids = {e.pid for e in recorded.values()}
    postmaster = psutil.Process(recorded["postgres"].pid)
    family = pids | {p.pid for p in postmaster.children(recursive=True)}
    assert len(family) > len(pids)  # the postmaster has its background workers
    binaries = stack_binaries()
    # Servers of other stacks this test process runs (the worker's session stack) stay.
    others = {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if is_alive(p.pid) and p.exe() in binaries and p.pid not in family
    }

    stopped = started.stack.down()

    assert stopped == ["kafka", "redis", "postgres"]
    assert not [pid for pid in family if is_alive(pid)]
    assert processes_of(started.home) == []
    ours = psutil.Process().children(recursive=True)
    left = [p for p in ours if is_alive(p.pid) and p.exe() in binaries and p.pid not in others]
    assert not left
    assert entries(started.home) == {}
    assert (started.home / "postgres" / "data" / "PG_VERSION").exists()  # data stays
    assert not any(s.up for s in started.stack.status())
    with pytest.raises(StackNotRunning, match="souk up"):
        resolve_endpoints(started.stack.settings)
    assert started.stack.down() == []  # idempotent


def test_up_after_stale_state_recovers_and_keeps_data(started: Started) -> None:
    # stack.json names dead pids, and PostgreSQL left a postmaster.pid behind (a crash).
    old = {name: e.pid for name, e in entries(started.home).items()}
    gone = dead_pid()
    StateFile(started.home).save(
        {
            "postgres": fake_entry(gone, 5433, "postgresql+psycopg://souk@127.0.0.1:5433/souk"),
            "redis": fake_entry(gone, 6380, "redis://127.0.0.1:6380/0"),
            "kafka": fake_entry(gone, 9092, "127.0.0.1:9092"),
        }
    )
    pidfile = started.home / "postgres" / "data" / "postmaster.pid"
    pidfile.write_text(f"{gone}\n{started.home}/postgres/data\n0\n5433\n")
    messages: list[str] = []

    endpoints = started.stack.up(on_progress=messages.append)

    assert sum("stale state" in m for m in messages) == 3, messages
    assert any("stale postmaster.pid" in m for m in messages), messages
    recorded = entries(started.home)
    assert all(is_alive(e.pid) and e.pid not in old.values() for e in recorded.values())
    with psycopg.connect(libpq_url(endpoints.database_url)) as conn:
        assert conn.execute("select v from stack_persists").fetchall() == [(42,)]
    started.stack.down()
    assert processes_of(started.home) == []


# -- recovery and port choice ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("component", "default_port"), [("postgres", 5433), ("redis", 6380), ("kafka", 9092)]
)
def test_port_in_use_picks_another(home: Path, component: str, default_port: int) -> None:
    stack = Stack(embedded_settings(home))
    messages: list[str] = []
    with occupied(default_port):
        url = stack.up_component(component, on_progress=messages.append)
    entry = entries(home)[component]
    assert entry.port != default_port
    assert f":{entry.port}" in url
    assert any(f"port {default_port} is in use" in m for m in messages), messages
    assert is_alive(entry.pid)


def test_pid_reused_by_another_program_is_stale(home: Path) -> None:
    stack = Stack(embedded_settings(home))
    valkey = stack.component("redis").binary()
    # Our own pid: alive, but not a valkey-server, so it must never be reused or killed.
    StateFile(home).save(
        {"redis": fake_entry(os.getpid(), 6380, "redis://127.0.0.1:6380/0", binary=str(valkey))}
    )
    messages: list[str] = []
    stack.up_component("redis", on_progress=messages.append)
    assert any("belongs to another program" in m for m in messages), messages
    assert entries(home)["redis"].pid != os.getpid()
    assert stack.down(purge=True) == ["redis"]
    assert not (home / "valkey").exists()
    assert not (home / "stack.json").exists()


def test_lost_stack_json_is_adopted_then_stopped(home: Path) -> None:
    stack = Stack(embedded_settings(home))
    stack.up_component("redis")
    pid = entries(home)["redis"].pid
    (home / "stack.json").unlink()
    messages: list[str] = []
    stack.up_component("redis", on_progress=messages.append)
    assert entries(home)["redis"].pid == pid
    assert any("adopted" in m for m in messages), messages
    (home / "stack.json").unlink()
    assert stack.down() == ["redis"]  # found through its working dir, not stack.json
    assert not is_alive(pid)


# -- external servers -------------------------------------------------------------------------


def test_external_servers_are_used_and_left_alone(home: Path) -> None:
    # The "external" servers are real ones that another home started: no reliance on
    # whatever the machine happens to run.
    provider_home = stack_home("souk-provider-")
    provider = Stack(embedded_settings(provider_home))
    try:
        external_pg = provider.up_component("postgres")
        external_redis = provider.up_component("redis")
        provider_pids = {name: e.pid for name, e in entries(provider_home).items()}
        stack = Stack(embedded_settings(home, database_url=external_pg, redis_url=external_redis))

        endpoints = stack.up()

        assert endpoints.database_url == external_pg
        assert endpoints.redis_url == external_redis
        assert set(entries(home)) == {"kafka"}
        assert not (home / "postgres").exists() and not (home / "valkey").exists()
        statuses = {s.name: s for s in stack.status()}
        assert statuses["postgres"].managed == "external" and statuses["postgres"].up
        assert statuses["postgres"].version is not None
        assert statuses["postgres"].version.startswith("PostgreSQL ")
        assert statuses["redis"].managed == "external" and statuses["redis"].up
        assert statuses["kafka"].managed == "embedded" and statuses["kafka"].up
        assert resolve_endpoints(stack.settings) == endpoints

        assert stack.down() == ["kafka"]
        assert all(is_alive(pid) for pid in provider_pids.values())
        assert {s.name for s in provider.status() if s.up} == {"postgres", "redis"}
    finally:
        provider.down(purge=True)
        shutil.rmtree(provider_home, ignore_errors=True)


@pytest.mark.parametrize(
    ("setting", "template", "env_var"),
    [
        (
            "database_url",
            "postgresql+psycopg://postgres:s3cret@127.0.0.1:{}/x",
            "SOUK_DATABASE_URL",
        ),
        ("redis_url", "redis://127.0.0.1:{}/0", "SOUK_REDIS_URL"),
        ("kafka_bootstrap", "127.0.0.1:{}", "SOUK_KAFKA_BOOTSTRAP"),
    ],
)
def test_unreachable_external_url_raises_helpful_error(
    home: Path, setting: str, template: str, env_var: str
) -> None:
    port = closed_port()
    settings = embedded_settings(home, **{setting: template.format(port)})
    stack = Stack(settings)
    name = {"database_url": "postgres", "redis_url": "redis", "kafka_bootstrap": "kafka"}[setting]
    with pytest.raises(ServerUnreachable) as caught:
        stack.up_component(name)
    message = str(caught.value)
    assert "\n" not in message
    assert f"127.0.0.1:{port}" in message
    assert "unreachable" in message and f"unset {env_var}" in message
    assert "s3cret" not in message
    assert entries(home) == {}


# -- resolution without a running stack --------------------------------------------------------


def test_resolve_endpoints_prefers_settings_and_says_how_to_start(home: Path) -> None:
    with pytest.raises(StackNotRunning, match=r"run `souk up` first"):
        resolve_endpoints(embedded_settings(home))
    configured = embedded_settings(
        home, database_url="postgresql://a@h/db", redis_url="redis://h/1", kafka_bootstrap="h:1"
    )
    assert resolve_endpoints(configured) == Endpoints("postgresql://a@h/db", "redis://h/1", "h:1")


def test_libpq_url_strips_the_driver() -> None:
    assert libpq_url("postgresql+psycopg://souk@127.0.0.1:5433/souk") == (
        "postgresql://souk@127.0.0.1:5433/souk"
    )
    assert libpq_url("postgresql://u@h/d") == "postgresql://u@h/d"
