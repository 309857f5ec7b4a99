"""The inventory job on a standalone Flink session cluster started from the wheel (JobManager +
TaskManager), submitted through SOUK_FLINK_URL exactly as production does: same read model.

A missing engine is an error, never a skip.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator

import httpx
import pytest
import redis

from pipelines import control
from pipelines.cluster import start_session_cluster, stop_session_cluster
from schemas.envelope import Envelope
from souk.settings import Settings
from tests.integration.streaming.conftest import wait_for
from tests.integration.streaming.test_inventory import expected, history, view


@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JobManager + TaskManager from the wheel under a temp home; its REST URL."""
    home = tmp_path_factory.mktemp("flink-cluster")
    began = time.monotonic()
    try:
        url = start_session_cluster(home)
        print(f"\nFlink session cluster {url} up in {time.monotonic() - began:.1f} s")
        yield url
    finally:
        began = time.monotonic()
        stop_session_cluster(home)
        print(f"\nFlink session cluster stopped in {time.monotonic() - began:.1f} s")


def _job_states(url: str, name: str) -> dict[str, str]:
    """Flink job id → state of the jobs named ``name`` on the cluster."""
    jobs = httpx.get(f"{url}/jobs/overview", timeout=5).json()["jobs"]
    return {job["jid"]: job["state"] for job in jobs if job["name"] == name}


def test_inventory_submitted_to_a_session_cluster_builds_the_same_read_model(
    flink_cluster: str,
    stream_settings: Settings,
    publish: Callable[[Iterable[Envelope]], None],
    redis_client: redis.Redis,
) -> None:
    settings = stream_settings.model_copy(update={"flink_url": flink_cluster})
    prefix = f"SKU-{secrets.token_hex(3)}-"
    publish(history(settings, prefix))
    want = expected(settings, prefix)
    began = time.monotonic()
    try:
        where = control.start(settings, "inventory")
        running_s = time.monotonic() - began
        assert where.startswith(f"running on {flink_cluster}"), where
        wait_for(lambda: view(redis_client, want) == want)
        model_s = time.monotonic() - began
        assert view(redis_client, want) == want

        status = wait_for(
            lambda: (s := control.status(settings, "inventory")).last_checkpoint is not None and s,
            timeout_s=30,
        )
        assert status.running and status.state == "RUNNING"
        assert status.where == flink_cluster
        assert status.flink_job_id is not None
        print(
            f"submit → RUNNING {running_s:.1f} s, → read model {model_s:.1f} s, "
            f"checkpoint {status.last_checkpoint}"
        )
    finally:
        stopped = control.stop(settings, "inventory")
    assert stopped
    jid = status.flink_job_id
    wait_for(lambda: _job_states(flink_cluster, "souk-inventory").get(jid) == "CANCELED", 30)
    assert not control.status(settings, "inventory").running
