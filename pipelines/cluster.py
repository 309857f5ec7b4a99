"""A standalone Flink session cluster (JobManager + TaskManager) started from the PyFlink wheel.

The ``apache-flink`` wheel ships Flink's ``bin/``, ``conf/``, ``lib/`` and ``opt/``. A cluster
home gets copies of the small folders and links to the jars (the venv is never modified), its
own ``conf/config.yaml`` (free ports, loopback addresses, modest memory, this interpreter as the
workers' Python) and its own log, pid and tmp folders, so several clusters can live side by side.
Jobs reach it through ``SOUK_FLINK_URL`` exactly as they reach a production cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from pipelines.common.environment import python_path
from pipelines.common.errors import PipelineError
from souk.stack.procs import free_port

#: How long a started cluster gets to answer with at least one TaskManager.
START_TIMEOUT_S = 90.0
#: How long stop-cluster.sh and then SIGTERM get before leftovers are SIGKILLed.
STOP_TIMEOUT_S = 20.0
#: Flink's main classes of the two daemons (how leftovers are recognised).
ENTRYPOINTS = (
    "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
    "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
)
#: Folders of the wheel copied into a home; the big jar folders are linked file by file.
_COPIED = ("bin", "conf", "plugins")
_LINKED = ("lib", "opt")


def wheel_home() -> Path:
    """The installed ``pyflink`` folder: Flink's distribution inside the wheel."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def install_home(home: Path) -> None:
    """Lay Flink out in ``home``: copies of bin/conf/plugins, per-jar links for lib/opt."""
    source = wheel_home()
    if not (source / "bin" / "start-cluster.sh").is_file():
        raise PipelineError(f"no Flink distribution in the wheel at {source} (bin/ missing)")
    home.mkdir(parents=True, exist_ok=True)
    for name in _COPIED:
        if not (home / name).is_dir():
            shutil.copytree(source / name, home / name, symlinks=True)
    # config.sh finds the jars with `find lib -name '*.jar'`, which does not enter a linked
    # folder: the folders are real, their jars links into the venv.
    for name in _LINKED:
        (home / name).mkdir(exist_ok=True)
        for jar in (source / name).iterdir():
            link = home / name / jar.name
            if not link.exists():
                link.symlink_to(jar)
    for name in ("log", "pids", "tmp"):
        (home / name).mkdir(exist_ok=True)


def write_config(home: Path, *, rest_port: int, rpc_port: int, slots: int) -> Path:
    """Write ``home/conf/config.yaml`` (Flink 2 YAML) for a loopback session cluster."""
    base = yaml.safe_load((wheel_home() / "conf" / "config.yaml").read_text()) or {}
    java_opts = str(base.get("env", {}).get("java", {}).get("opts", {}).get("all", ""))
    values: dict[str, Any] = {
        "env.java.opts.all": java_opts,
        "env.log.dir": str(home / "log"),
        "env.pid.dir": str(home / "pids"),
        "io.tmp.dirs": str(home / "tmp"),
        "jobmanager.rpc.address": "localhost",
        "jobmanager.rpc.port": rpc_port,
        "jobmanager.bind-host": "localhost",
        "jobmanager.memory.process.size": "1024m",
        "jobmanager.execution.failover-strategy": "region",
        "taskmanager.host": "localhost",
        "taskmanager.bind-host": "localhost",
        "taskmanager.rpc.port": "0",
        "taskmanager.numberOfTaskSlots": slots,
        "taskmanager.memory.process.size": "2048m",
        "parallelism.default": 1,
        "rest.port": rest_port,
        "rest.bind-port": str(rest_port),
        "rest.address": "127.0.0.1",
        "rest.bind-address": "127.0.0.1",
        "blob.server.port": "0",
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
    }
    if os.environ.get("JAVA_HOME"):
        values["env.java.home"] = os.environ["JAVA_HOME"]
    path = home / "conf" / "config.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=True, width=100_000))
    (home / "conf" / "masters").write_text(f"localhost:{rest_port}\n")
    (home / "conf" / "workers").write_text("localhost\n")
    return path


def cluster_env(home: Path) -> dict[str, str]:
    """The environment of Flink's scripts and daemons for the cluster in ``home``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLINK_")}
    env.update(
        {
            "FLINK_HOME": str(home),
            "FLINK_CONF_DIR": str(home / "conf"),
            "FLINK_LOG_DIR": str(home / "log"),
            "FLINK_PID_DIR": str(home / "pids"),
            # Thread mode runs Python functions inside the TaskManager's JVM: it imports Souk
            # and its packages only through PYTHONPATH.
            "PYTHONPATH": python_path(),
            "PYFLINK_CLIENT_EXECUTABLE": sys.executable,
        }
    )
    return env


def rest_url(home: Path) -> str:
    """The REST URL written in ``home``'s config."""
    conf = yaml.safe_load((home / "conf" / "config.yaml").read_text())
    return f"http://127.0.0.1:{conf['rest.port']}"


def _overview(url: str) -> dict[str, Any] | None:
    """The cluster's ``/overview`` reply, or None while it does not answer."""
    try:
        reply = httpx.get(f"{url}/overview", timeout=2)
        reply.raise_for_status()
        data: dict[str, Any] = reply.json()
        return data
    except (httpx.HTTPError, ValueError):
        return None


def start_session_cluster(home: Path, *, rest_port: int | None = None, slots: int = 4) -> str:
    """Start a JobManager and a TaskManager from the wheel in ``home``; return the REST URL."""
    home = home.resolve()
    if _daemons(home):
        raise PipelineError(f"a Flink cluster already runs in {home} (stop it first)")
    install_home(home)
    port = rest_port or free_port()
    write_config(home, rest_port=port, rpc_port=free_port(), slots=slots)
    url = f"http://127.0.0.1:{port}"
    env = cluster_env(home)
    done = subprocess.run(
        ["bash", str(home / "bin" / "start-cluster.sh")],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        stop_session_cluster(home)
        raise PipelineError(
            f"start-cluster.sh in {home} exited with {done.returncode}\n"
            f"{(done.stdout + done.stderr).strip()[-2000:]}"
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        overview = _overview(url)
        if overview and overview.get("taskmanagers", 0) >= 1:
            return url
        time.sleep(0.5)
    tail = log_tail(home)
    stop_session_cluster(home)
    raise PipelineError(
        f"Flink session cluster at {url} not up with a TaskManager after "
        f"{START_TIMEOUT_S:.0f} s (logs in {home / 'log'})\n{tail}"
    )


def log_tail(home: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of each daemon log in ``home/log``."""
    parts = []
    for log in sorted((home / "log").glob("flink-*.log")) + sorted((home / "log").glob("*.out")):
        with contextlib.suppress(OSError):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(parts) or "no logs"


def _daemons(home: Path) -> list[psutil.Process]:
    """Live Flink daemons of ``home``: pids from its pid files, and JVMs naming its folders."""
    found: dict[int, psutil.Process] = {}
    for pid_file in (home / "pids").glob("*.pid"):
        with contextlib.suppress(OSError, ValueError):
            for line in pid_file.read_text().split():
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(int(line))
                    if _is_daemon_of(proc, home):
                        found[proc.pid] = proc
    marker = f"-Dlog.file={home / 'log'}/"
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.info["cmdline"] or []
            if any(arg.startswith(marker) for arg in cmdline) and _is_daemon_of(proc, home):
                found[proc.pid] = proc
    return list(found.values())


def _is_daemon_of(proc: psutil.Process, home: Path) -> bool:
    """True when ``proc`` is a live Flink daemon logging into ``home/log``."""
    if proc.status() == psutil.STATUS_ZOMBIE:
        return False
    cmdline = proc.cmdline()
    return any(main in cmdline for main in ENTRYPOINTS) and any(
        arg.startswith(f"-Dlog.file={home / 'log'}/") for arg in cmdline
    )


def stop_session_cluster(home: Path) -> None:
    """Stop the cluster in ``home`` (stop-cluster.sh, then SIGTERM/SIGKILL of any leftover)."""
    home = home.resolve()
    script = home / "bin" / "stop-cluster.sh"
    if script.is_file() and (home / "conf" / "config.yaml").is_file():
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(
                ["bash", str(script)],
                env=cluster_env(home),
                cwd=home,
                capture_output=True,
                timeout=STOP_TIMEOUT_S,
            )
    leftovers = _daemons(home)
    family: list[psutil.Process] = []
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            family += [proc, *proc.children(recursive=True)]
    for proc in family:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    for pid_file in (home / "pids").glob("*.pid"):
        pid_file.unlink(missing_ok=True)
    if _daemons(home):
        raise PipelineError(f"Flink daemons of {home} survived SIGKILL")


__all__ = ["rest_url", "start_session_cluster", "stop_session_cluster", "wheel_home"]
