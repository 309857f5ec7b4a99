"""Run jobs in the background and report on them: `souk pipelines start|stop|status`.

Locally each job runs in its own process (a Flink mini-cluster) with its REST API on a
loopback port; its pid, port and log live in ``SOUK_HOME/pipelines``. With ``SOUK_FLINK_URL``
set, jobs are submitted to that cluster instead and the same REST API reports on them.
Either way status reads Flink's REST API (state, last checkpoint, records/s) and the broker
(consumer lag of the job's group).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from pipelines import registry
from pipelines.common.checkpoints import (
    checkpoint_number,
    discard_checkpoints,
    latest_checkpoint,
)
from pipelines.common.errors import PipelineError
from souk.settings import Settings
from souk.stack import procs

#: How long a started job gets to reach RUNNING.
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LocalRun:
    """A job process we started: pid, REST port, log file."""

    job: str
    pid: int
    rest_port: int
    log: str
    started_at: float


@dataclass
class JobStatus:
    """What `souk pipelines status` shows for one job."""

    job: str
    running: bool
    where: str  # "local" (pid) or the cluster URL
    state: str = "-"
    flink_job_id: str | None = None
    last_checkpoint: int | None = None
    checkpoint_age_s: float | None = None
    records_per_s: float | None = None
    lag: int | None = None
    error: str | None = None


def runs_dir(settings: Settings) -> Path:
    """``SOUK_HOME/pipelines``: one JSON file and one log per job."""
    path = settings.state_dir / "pipelines"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run_file(settings: Settings, job: str) -> Path:
    return runs_dir(settings) / f"{job}.json"


def local_run(settings: Settings, job: str) -> LocalRun | None:
    """The recorded local run of ``job`` if its process is alive."""
    path = _run_file(settings, job)
    if not path.exists():
        return None
    with contextlib.suppress(ValueError, TypeError, KeyError):
        run = LocalRun(**json.loads(path.read_text()))
        if _alive(run.pid):
            return run
    return None


def _alive(pid: int) -> bool:
    try:
        return procs.is_running(psutil.Process(pid))
    except psutil.Error:
        return False


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that give a child process these exact settings."""
    env: dict[str, str] = {}
    for name in settings.model_fields_set | {"home"}:
        value = getattr(settings, name)
        if value is None:
            continue
        if name == "home":
            value = settings.state_dir
        if isinstance(value, list | tuple):
            text = ",".join(str(item) for item in value)
        elif isinstance(value, dict):
            text = ",".join(
                f"{key}={'|'.join(map(str, v)) if isinstance(v, list | tuple) else v}"
                for key, v in value.items()
            )
        else:
            text = str(value)
        env[f"SOUK_{name.upper()}"] = text
    return env


def start(settings: Settings, job: str, *, timeout_s: float = START_TIMEOUT_S) -> str:
    """Start ``job`` in the background (or on ``SOUK_FLINK_URL``); return where it runs.

    Waits until Flink reports the job RUNNING; a job that dies first raises PipelineError
    with the last error line of its log.
    """
    registry.job(job)  # unknown names fail here, with the known ones
    if settings.flink_url:
        return _start_on_cluster(settings, job, timeout_s)
    existing = local_run(settings, job)
    if existing is not None:
        return f"already running (pid {existing.pid})"
    port = procs.free_port()
    log = runs_dir(settings) / f"{job}.log"
    env = {**os.environ, **settings_env(settings), "FLINK_LOG_DIR": str(runs_dir(settings))}
    argv = [sys.executable, "-m", registry.MODULES[job], "--rest-port", str(port)]
    proc = procs.spawn_detached(argv, log, cwd=Path.cwd(), env=env)
    run = LocalRun(job, proc.pid, port, str(log), time.time())
    _run_file(settings, job).write_text(json.dumps(asdict(run)))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            _run_file(settings, job).unlink(missing_ok=True)
            raise PipelineError(f"{job}: exited with {code}: {_last_error(log)}")
        found = _find_job(base, job)
        if found is not None and found.get("state") == "RUNNING":
            return f"running (pid {proc.pid}, REST {base})"
        time.sleep(0.5)
    stop(settings, job)
    raise PipelineError(f"{job}: not RUNNING after {timeout_s:.0f} s: {_last_error(log)}")


def _last_error(log: Path) -> str:
    """The most telling line of a job's log: its last ``error:`` or ``Caused by`` line."""
    try:
        return _telling_line(log.read_text(errors="replace"))
    except OSError:
        return "no log"


def _telling_line(text: str) -> str:
    """The last ``error:``, ``Caused by`` or exception line of ``text`` (else its last line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    for marker in ("error: ", "Caused by: ", "Exception"):
        hits = [line for line in lines if marker in line]
        if hits:
            return hits[-1].strip()[:400]
    return lines[-1].strip()[:400] if lines else "no output"


def _start_on_cluster(settings: Settings, job: str, timeout_s: float) -> str:
    """Submit ``job`` to the cluster at ``SOUK_FLINK_URL`` from a short-lived client process."""
    import subprocess

    url = str(settings.flink_url)
    if _find_job(url, job, running_only=True) is not None:
        return f"already running on {url}"
    env = {**os.environ, **settings_env(settings)}
    argv = [sys.executable, "-m", registry.MODULES[job], "--detached"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise PipelineError(f"{job}: submission to {url} failed: {_telling_line(done.stderr)}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _find_job(url, job, running_only=True)
        if found is not None and found.get("state") == "RUNNING":
            return f"running on {url} (job {found['jid']})"
        time.sleep(0.5)
    raise PipelineError(f"{job}: not RUNNING on {url} after {timeout_s:.0f} s")


def stop(settings: Settings, job: str) -> bool:
    """Stop ``job`` (its local process, or cancel it on the cluster); False if not running.

    Checkpoints are retained: the next start resumes from the latest one.
    """
    if settings.flink_url:
        found = _find_job(str(settings.flink_url), job, running_only=True)
        if found is None:
            return False
        httpx.patch(f"{str(settings.flink_url).rstrip('/')}/jobs/{found['jid']}", timeout=10)
        return True
    run = local_run(settings, job)
    _run_file(settings, job).unlink(missing_ok=True)
    if run is None:
        return False
    with contextlib.suppress(psutil.Error):
        procs.stop_process(psutil.Process(run.pid), timeout=15.0, first_signal=signal.SIGTERM)
    return True


def reset(settings: Settings, job: str) -> bool:
    """Stop ``job`` and discard its local checkpoints; True if there were any.

    Needed when the checkpoints no longer fit: the job's plan changed (its SQL or window
    settings), or the broker lost its topics (the checkpointed offsets point past their end).
    """
    stop(settings, job)
    return discard_checkpoints(settings, job)


def kill(settings: Settings, job: str) -> bool:
    """SIGKILL a local job's process and its JVM (what a crash looks like)."""
    run = local_run(settings, job)
    if run is None:
        return False
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(run.pid)
        family = [proc, *procs.children_of(proc)]
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(family, timeout=10)
    procs.reap(run.pid)
    _run_file(settings, job).unlink(missing_ok=True)
    return True


def _find_job(base: str, job: str, *, running_only: bool = False) -> dict[str, Any] | None:
    """The newest Flink job named ``souk-<job>`` at the REST API ``base``."""
    try:
        reply = httpx.get(f"{base.rstrip('/')}/jobs/overview", timeout=3)
        reply.raise_for_status()
    except httpx.HTTPError:
        return None
    jobs = [j for j in reply.json().get("jobs", []) if j.get("name") == f"souk-{job}"]
    if running_only:
        jobs = [j for j in jobs if j.get("state") in ("RUNNING", "CREATED", "RESTARTING")]
    return max(jobs, key=lambda j: j.get("start-time", 0)) if jobs else None


def status(settings: Settings, job: str, kafka_bootstrap: str | None = None) -> JobStatus:
    """State, last checkpoint, records/s and consumer lag of ``job``."""
    if settings.flink_url:
        base = str(settings.flink_url)
        result = JobStatus(job, running=False, where=base)
    else:
        run = local_run(settings, job)
        if run is None:
            chk = checkpoint_number(latest_checkpoint(settings, job))
            return JobStatus(job, False, "local", state="stopped", last_checkpoint=chk)
        base = f"http://127.0.0.1:{run.rest_port}"
        result = JobStatus(job, running=True, where=f"local pid {run.pid}")
    found = _find_job(base, job)
    if found is None:
        result.state = "starting" if result.running else "not found"
    else:
        result.state = str(found.get("state"))
        result.running = result.state == "RUNNING"
        result.flink_job_id = str(found["jid"])
        _fill_from_rest(base, result)
    if kafka_bootstrap:
        with contextlib.suppress(Exception):
            result.lag = group_lag(kafka_bootstrap, f"souk-pipeline-{job}")
    return result


def _fill_from_rest(base: str, result: JobStatus) -> None:
    """Last completed checkpoint and the sources' output rate, from Flink's REST API."""
    root = f"{base.rstrip('/')}/jobs/{result.flink_job_id}"
    with contextlib.suppress(httpx.HTTPError, KeyError, TypeError, ValueError):
        checkpoints = httpx.get(f"{root}/checkpoints", timeout=3).json()
        latest = (checkpoints.get("latest") or {}).get("completed") or {}
        if latest:
            result.last_checkpoint = int(latest["id"])
            result.checkpoint_age_s = max(time.time() - latest["latest_ack_timestamp"] / 1000, 0)
    with contextlib.suppress(httpx.HTTPError, KeyError, TypeError, ValueError):
        plan = httpx.get(root, timeout=3).json()
        sources = [v for v in plan["vertices"] if "Source" in v["name"]]
        rate = 0.0
        for vertex in sources:
            metrics = httpx.get(
                f"{root}/vertices/{vertex['id']}/subtasks/metrics",
                params={"get": "numRecordsOutPerSecond", "agg": "sum"},
                timeout=3,
            ).json()
            rate += sum(float(m.get("sum", 0)) for m in metrics)
        result.records_per_s = rate


def group_lag(bootstrap: str, group_id: str, timeout: float = 5.0) -> int | None:
    """Total lag of ``group_id`` (committed offsets against the broker's high watermarks).

    The local broker (Tansu) understates high watermarks, so locally this is a lower bound.
    """
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group_id)], request_timeout=timeout
    )[group_id]
    committed = future.result(timeout=timeout + 1).topic_partitions or []
    if not committed:
        return None
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "souk-pipelines-status",
            "enable.auto.commit": False,
        }
    )
    try:
        total = 0
        for tp in committed:
            if tp.offset < 0:
                continue
            _, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=timeout, cached=False
            )
            total += max(high - tp.offset, 0)
        return total
    finally:
        consumer.close()
