"""A standalone Spark cluster (a Master and one Worker) started from the pyspark wheel.

The ``pyspark`` wheel ships Spark's ``bin/spark-class`` and ``bin/spark-submit`` and all its
jars, so the wheel folder serves as SPARK_HOME (read only). Each cluster gets a home of its own
for its configuration folder (empty: no stray ``spark-env.sh``), logs, the Worker's work folder
(executor stdout/stderr) and scratch space, and free loopback ports, so several clusters can live
side by side. Jobs reach it with ``spark-submit --master spark://...`` (``spark_submit`` here)
exactly as they reach a production standalone cluster; ``SOUK_SPARK_MASTER`` points a plain
``python -m jobs.<job>`` at it too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from souk.stack.procs import free_port

#: How long a started cluster gets until its Master lists an ALIVE Worker.
START_TIMEOUT_S = 120.0
#: How long SIGTERM gets before leftovers are SIGKILLed.
STOP_TIMEOUT_S = 15.0
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
#: JVM property naming the cluster home on both daemons' command lines (how they are found).
_MARKER = "-Dsouk.spark.cluster="
#: spark-submit confs for short jobs on small data (tests, a laptop): the C1 JIT only. A JVM that
#: lives for a minute otherwise spends most of its CPU in C2 compilation (silver + gold submitted
#: on 2 busy cores: 117 s with the default JIT, 42 s with this). Long jobs want C2: not default.
SHORT_JOB_CONF = {
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    "spark.executor.extraJavaOptions": "-XX:TieredStopAtLevel=1",
}
#: The repository root (the folder holding ``jobs/``): what submitted scripts import from.
REPO_ROOT = Path(__file__).resolve().parents[2]


class SparkClusterError(RuntimeError):
    """A standalone cluster did not start or stop, or a submitted job failed."""


@dataclass(frozen=True)
class SparkCluster:
    """A running standalone cluster: where it lives and how to reach it."""

    home: Path
    master_url: str  # spark://127.0.0.1:<port>
    web_url: str  # the Master's web UI, http://127.0.0.1:<port>
    master_pid: int
    worker_pid: int


def wheel_home() -> Path:
    """The installed ``pyspark`` folder: Spark's distribution inside the wheel."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _folders(home: Path) -> dict[str, Path]:
    return {name: home / name for name in ("conf", "logs", "work", "tmp", "pids")}


def cluster_env(home: Path) -> dict[str, str]:
    """The environment of the daemons of the cluster in ``home``."""
    folders = _folders(home)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPARK_")}
    env.update(
        {
            "SPARK_HOME": str(wheel_home()),
            "SPARK_CONF_DIR": str(folders["conf"]),
            "SPARK_LOG_DIR": str(folders["logs"]),
            "SPARK_PID_DIR": str(folders["pids"]),
            "SPARK_WORKER_DIR": str(folders["work"]),
            "SPARK_LOCAL_DIRS": str(folders["tmp"]),
            "SPARK_LOCAL_IP": "127.0.0.1",
            # The daemons only coordinate: a small heap each (executors get their own JVMs).
            "SPARK_DAEMON_MEMORY": "512m",
            "SPARK_DAEMON_JAVA_OPTS": f"{_MARKER}{home}",
            # No REST submission server (another fixed port) on a test cluster.
            "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
            # Executors run Python only for UDFs; when they do, it must be this interpreter.
            "PYSPARK_PYTHON": sys.executable,
        }
    )
    return env


def _launch(home: Path, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start one daemon through ``bin/spark-class`` in the foreground, logging to a file."""
    folders = _folders(home)
    log = (folders["logs"] / f"{name}.log").open("ab")
    try:
        proc = subprocess.Popen(
            ["bash", str(wheel_home() / "bin" / "spark-class"), *args],
            env=cluster_env(home),
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C of the caller does not reach the daemons
        )
    finally:
        log.close()
    (folders["pids"] / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc


def master_state(web_url: str) -> dict[str, Any] | None:
    """The Master's ``/json/`` reply (status, workers, apps), or None while it does not answer."""
    try:
        reply = httpx.get(f"{web_url}/json/", timeout=2)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data
    except (httpx.HTTPError, ValueError):
        return None


def alive_workers(web_url: str) -> int:
    """How many Workers the Master at ``web_url`` lists as ALIVE (0 when it does not answer)."""
    state = master_state(web_url) or {}
    return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")


def start_cluster(
    home: Path,
    *,
    port: int | None = None,
    webui_port: int | None = None,
    cores: int = 1,
    memory: str = "1g",
) -> SparkCluster:
    """Start a Master and one Worker (``cores``, ``memory``) in ``home``; wait for the Worker."""
    home = home.resolve()
    if _daemons(home):
        raise SparkClusterError(f"a Spark cluster already runs in {home} (stop it first)")
    for folder in _folders(home).values():
        folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    webui_port = webui_port or free_port()
    master_url = f"spark://127.0.0.1:{port}"
    web_url = f"http://127.0.0.1:{webui_port}"
    master = _launch(
        home,
        "master",
        [MASTER_CLASS, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(webui_port)],
    )
    worker = _launch(
        home,
        "worker",
        [
            WORKER_CLASS,
            master_url,
            "--host",
            "127.0.0.1",
            "--webui-port",
            str(free_port()),
            "--cores",
            str(cores),
            "--memory",
            memory,
            "--work-dir",
            str(_folders(home)["work"]),
        ],
    )
    cluster = SparkCluster(home, master_url, web_url, master.pid, worker.pid)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if alive_workers(web_url) >= 1:
            return cluster
        exited = [name for name, p in (("master", master), ("worker", worker)) if p.poll()]
        if exited:
            break
        time.sleep(0.5)
    tail = log_tail(home)
    stop_cluster(home)
    raise SparkClusterError(
        f"Spark cluster {master_url} has no ALIVE worker after {START_TIMEOUT_S:.0f} s or a "
        f"daemon exited (logs in {home / 'logs'})\n{tail}"
    )


def log_tail(home: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of each daemon log in ``home/logs``."""
    parts = []
    for log in sorted((home / "logs").glob("*.log")):
        with contextlib.suppress(OSError):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(parts) or "no logs"


def _is_daemon_of(proc: psutil.Process, home: Path) -> bool:
    """True when ``proc`` is a live Master or Worker JVM of the cluster in ``home``."""
    if proc.status() == psutil.STATUS_ZOMBIE:
        return False
    cmdline = proc.cmdline()
    return f"{_MARKER}{home}" in cmdline and (MASTER_CLASS in cmdline or WORKER_CLASS in cmdline)


def _daemons(home: Path) -> list[psutil.Process]:
    """Live daemons of ``home``: pids from its pid files, and JVMs carrying its marker."""
    found: dict[int, psutil.Process] = {}
    for pid_file in (home / "pids").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            proc = psutil.Process(int(pid_file.read_text().strip()))
            if _is_daemon_of(proc, home):
                found[proc.pid] = proc
    marker = f"{_MARKER}{home}"
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if marker in (proc.info["cmdline"] or []) and _is_daemon_of(proc, home):
                found[proc.pid] = proc
    return list(found.values())


def stop_cluster(home: Path) -> None:
    """Stop the cluster in ``home``: SIGTERM both daemons with their executors, then SIGKILL."""
    home = home.resolve()
    family: dict[int, psutil.Process] = {}
    for proc in _daemons(home):
        with contextlib.suppress(psutil.Error):
            for member in (proc, *proc.children(recursive=True)):
                family[member.pid] = member
    for proc in family.values():
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(list(family.values()), timeout=STOP_TIMEOUT_S)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    for pid_file in (home / "pids").glob("*.pid"):
        pid_file.unlink(missing_ok=True)
    if _daemons(home):
        raise SparkClusterError(f"Spark daemons of {home} survived SIGKILL")


def submit_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of ``spark-submit``: this venv's Python, the repo importable, ``env``."""
    paths = [str(REPO_ROOT)]
    current = os.environ.get("PYTHONPATH")
    if current:
        paths += [p for p in current.split(os.pathsep) if p and p not in paths]
    merged = {key: value for key, value in os.environ.items() if not key.startswith("SPARK_")}
    merged.update(
        {
            "SPARK_HOME": str(wheel_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",
            # The driver runs the script with this interpreter (spark-submit's default is
            # python3 on PATH, which lacks the venv's packages).
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join(paths),
        }
    )
    merged.update(env or {})
    return merged


def spark_submit(
    master_url: str,
    script: Path | str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    conf: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with the wheel's ``bin/spark-submit`` on ``master_url``; raise if it fails."""
    command = ["bash", str(wheel_home() / "bin" / "spark-submit"), "--master", master_url]
    for key, value in (conf or {}).items():
        command += ["--conf", f"{key}={value}"]
    command += [str(script), *args]
    # A session of its own: a timeout ends the whole tree (bash, the JVM, the Python driver).
    proc = subprocess.Popen(
        command,
        env=submit_env(env),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise SparkClusterError(
            f"spark-submit {script} did not finish in {timeout_s:.0f} s"
        ) from None
    done = subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-4000:]
        raise SparkClusterError(f"spark-submit {script} exited with {done.returncode}\n{output}")
    return done


__all__ = [
    "SHORT_JOB_CONF",
    "SparkCluster",
    "SparkClusterError",
    "alive_workers",
    "spark_submit",
    "start_cluster",
    "stop_cluster",
    "wheel_home",
]
