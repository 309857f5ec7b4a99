"""The Flink environment of a job: checkpoints, restarts, event time and Python settings.

The same configuration serves the local mini-cluster and a real cluster: on a cluster the
client's `flink run` stacks it on top of the cluster's own config.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pipelines.common.checkpoints import checkpoint_uri
from pipelines.common.errors import PipelineError
from souk.settings import Settings

if TYPE_CHECKING:
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

#: The repository root (the folder holding ``pipelines/``), which Python workers import from.
REPO_ROOT = Path(__file__).resolve().parents[2]


def python_path() -> str:
    """PYTHONPATH for Flink's Python workers: the repo root and this interpreter's packages."""
    paths = [str(REPO_ROOT), *site.getsitepackages()]
    current = os.environ.get("PYTHONPATH")
    if current:
        paths += [p for p in current.split(os.pathsep) if p and p not in paths]
    return os.pathsep.join(paths)


def prepare_process_environment() -> None:
    """Set what the JVM's embedded Python needs; call before the first PyFlink environment.

    Thread mode runs Python functions inside the JVM, which only finds packages through
    ``PYTHONPATH`` (the JVM inherits this process's environment when PyFlink starts it).
    """
    os.environ["PYTHONPATH"] = python_path()
    os.environ.setdefault("PYFLINK_CLIENT_EXECUTABLE", sys.executable)


def python_jar_uri() -> str:
    """``file:`` URI of the installed PyFlink's flink-python jar (its Python operators)."""
    import pyflink

    opt = Path(pyflink.__file__).resolve().parent / "opt"
    jars = sorted(opt.glob("flink-python*.jar"))
    if not jars:
        raise PipelineError(f"no flink-python jar in {opt}")
    return jars[-1].as_uri()


def execution_environment(conf: Configuration, settings: Settings) -> StreamExecutionEnvironment:
    """The job's environment: the mini-cluster, `flink run`'s cluster, or ``SOUK_FLINK_URL``.

    Outside `flink run`, PyFlink's ``get_execution_environment`` is always a local mini-cluster
    whatever ``execution.target`` says; with ``SOUK_FLINK_URL`` the environment is built on
    Flink's executors instead, which submit to the remote target.
    """
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.java_gateway import get_gateway

    if not settings.flink_url:
        return StreamExecutionEnvironment.get_execution_environment(conf)
    jvm = get_gateway().jvm
    j_env = jvm.org.apache.flink.streaming.api.environment.StreamExecutionEnvironment(
        conf._j_configuration
    )
    return StreamExecutionEnvironment(j_env)


def flink_configuration(
    settings: Settings,
    job: str,
    *,
    rest_port: int | None = None,
    resume_from: str | None = None,
) -> Configuration:
    """The configuration of ``job``: checkpoints, bounded restarts, Python and event time."""
    from pyflink.common import Configuration

    conf = Configuration()
    values = {
        "pipeline.name": f"souk-{job}",
        "parallelism.default": str(settings.flink_parallelism),
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.execution-mode": settings.flink_python_mode,
        "python.fn-execution.bundle.time": "100",
        # Exactly-once state; sinks are idempotent upserts, so a replay rewrites the same values.
        "execution.checkpointing.interval": _millis(settings.flink_checkpoint_interval_s),
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": checkpoint_uri(settings, job),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.checkpoints.num-retained": "3",
        "state.backend.type": "hashmap",
        # Local runs give up after a few attempts instead of restarting forever.
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(settings.flink_restart_attempts),
        "restart-strategy.fixed-delay.delay": _millis(settings.flink_restart_delay_s),
        "table.exec.source.idle-timeout": _millis(settings.stream_idle_timeout_s),
        "table.local-time-zone": "UTC",
        # Off: a mini-batch assigner replaces the sources' event-time watermarks with
        # processing-time ones downstream of it (timers, CURRENT_WATERMARK). A job turns
        # mini-batches on for the stages after its event-time ones (pipelines/trending.py).
        "table.exec.mini-batch.enabled": "false",
        "table.exec.mini-batch.allow-latency": "200 ms",
        "table.exec.mini-batch.size": "5000",
        "taskmanager.memory.managed.fraction": "0.2",
    }
    if settings.flink_url:
        # A session cluster: the job graph goes to its REST API. Its Python workers import
        # Souk's packages, so the cluster's Python (python.executable) must have Souk
        # installed, as for any PyFlink deployment (an image with the project's lock).
        remote = urlsplit(settings.flink_url)
        values["execution.target"] = "remote"
        values["rest.address"] = remote.hostname or "127.0.0.1"
        values["rest.port"] = str(remote.port or 8081)
        # The cluster's lib/ lacks the Python operators (the distribution keeps them in opt/);
        # `flink run -py` ships that jar with the job, and so does a remote submission here.
        values["pipeline.jars"] = python_jar_uri()
    elif rest_port is not None:
        values["rest.port"] = str(rest_port)
        values["rest.bind-port"] = str(rest_port)
        values["rest.address"] = "127.0.0.1"
        values["rest.bind-address"] = "127.0.0.1"
    else:
        values["rest.bind-port"] = "0"
    if resume_from is not None:
        values["execution.state-recovery.path"] = resume_from
    for key, value in values.items():
        conf.set_string(key, value)
    return conf


def _millis(seconds: float) -> str:
    """A Flink duration of ``seconds``."""
    return f"{round(seconds * 1000)} ms"
