"""Streaming tests: the real broker (Tansu) and Valkey of the local stack, jobs on Flink's
mini-cluster. A missing engine or server is an error, never a skip.

Each test gets its own regions (random names), so its topics, consumer groups and Redis keys
never meet another test's, and its own SOUK_HOME (checkpoints).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from confluent_kafka import Producer

from pipelines.common.job import Job
from pipelines.common.runner import Servers, submit
from schemas.envelope import Envelope
from schemas.registry import topic_for
from souk.settings import Settings
from souk.stack import Stack
from souk.stack.homes import temporary_home
from souk.topics import ensure_topics


@pytest.fixture(scope="session")
def stream_servers() -> Iterator[Servers]:
    """Kafka and Redis of a private local stack for this test worker (started once)."""
    home = temporary_home("souk-stream-")
    stack = Stack(Settings(_env_file=None, home=home))  # type: ignore[call-arg]
    servers = Servers(stack.up_component("kafka"), stack.up_component("redis"))
    yield servers
    stack.down()


@pytest.fixture
def stream_settings(stream_servers: Servers, tmp_path: Path) -> Settings:
    """Settings for one test: two fresh regions, a private home, fast checkpoints."""
    tag = secrets.token_hex(3)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=tmp_path / "home",
        regions=[f"t{tag}a", f"t{tag}b"],
        kafka_bootstrap=stream_servers.kafka_bootstrap,
        redis_url=stream_servers.redis_url,
        kafka_partitions=2,
        flink_checkpoint_interval_s=1.0,
        flink_restart_attempts=0,
        stream_out_of_orderness_s=2.0,
        stream_allowed_lateness_s=10.0,
        stream_idle_timeout_s=1.0,
    )
    ensure_topics(settings, stream_servers.kafka_bootstrap)
    return settings


@pytest.fixture
def redis_client(stream_servers: Servers) -> Iterator[redis.Redis]:
    """A decoding Redis client on the stack's Valkey."""
    client = redis.Redis.from_url(stream_servers.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def publish(stream_servers: Servers) -> Iterator[Callable[[Iterable[Envelope]], None]]:
    """Publish envelopes to their ``<region>.<domain>.v1`` topics, keyed by aggregate id."""
    from schemas.registry import REGISTRY

    producer = Producer({"bootstrap.servers": stream_servers.kafka_bootstrap, "linger.ms": 5})

    def send(envelopes: Iterable[Envelope]) -> None:
        for envelope in envelopes:
            domain = REGISTRY.spec(envelope.event_type).domain
            producer.produce(
                topic_for(domain, envelope.region),
                key=envelope.aggregate_id,
                value=msgspec.json.encode(envelope),
            )
        assert producer.flush(30) == 0

    yield send
    producer.flush(10)


@contextmanager
def running(job: Job, settings: Settings, servers: Servers, **kwargs: Any) -> Iterator[Any]:
    """Run ``job`` on a mini-cluster for the block; cancel it after."""
    client = submit(job, settings, servers, **kwargs)
    try:
        yield client
    finally:
        # Already finished or failed: the test's own assertions say why.
        with contextlib.suppress(Exception):
            client.cancel().result()


def wait_for(check: Callable[[], Any], timeout_s: float = 90.0, every_s: float = 0.25) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with its last value on timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"condition not met in {timeout_s:.0f} s; last value: {last!r}")
