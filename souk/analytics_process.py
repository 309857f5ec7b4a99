"""The analytics loader as a background process of the local stack (`souk up` / `souk down`).

`souk up` starts ``python -m jobs.analytics.loader`` detached (pid in
``SOUK_HOME/analytics.json``, log ``SOUK_HOME/analytics.log``); it owns the chdb folder and
serves queries on loopback (``SOUK_HOME/analytics/endpoint.json``). `souk down` stops it with
SIGTERM (it finishes its batch); its committed offsets make any restart exact.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import psutil

from souk.settings import Settings
from souk.stack import procs

#: How long to wait for the loader's endpoint (it opens the store and creates the tables).
START_TIMEOUT_S = 30.0


def _run_file(settings: Settings) -> Path:
    return settings.state_dir / "analytics.json"


def running_pid(settings: Settings) -> int | None:
    """The pid of this home's running analytics loader, or None."""
    try:
        pid = int(json.loads(_run_file(settings).read_text())["pid"])
        return pid if procs.is_running(psutil.Process(pid)) else None
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def start(settings: Settings) -> str:
    """Start the loader in the background (unless it runs); return where it runs."""
    from jobs.analytics.endpoint import running_endpoint
    from pipelines.control import settings_env

    pid = running_pid(settings)
    if pid is not None:
        return f"already running (pid {pid})"
    log = settings.state_dir / "analytics.log"
    env = {**os.environ, **settings_env(settings)}
    command = [sys.executable, "-m", "jobs.analytics.loader"]
    proc = procs.spawn_detached(command, log, Path.cwd(), env)
    _run_file(settings).write_text(json.dumps({"pid": proc.pid, "log": str(log)}))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _run_file(settings).unlink(missing_ok=True)
            lines = log.read_text(errors="replace").strip().splitlines()
            raise RuntimeError(
                f"the analytics loader exited: {lines[-1] if lines else 'no output'}"
            )
        # With SOUK_ANALYTICS_URL there is no local endpoint: alive is enough.
        url = None if settings.analytics_url else running_endpoint(settings)
        if url is not None or (settings.analytics_url and time.monotonic() > deadline - 28):
            where = f", queries on {url}" if url else ""
            return f"running (pid {proc.pid}{where}, log {log})"
        time.sleep(0.1)
    return f"starting (pid {proc.pid}, log {log})"


def stop(settings: Settings) -> bool:
    """Stop this home's loader; False if none was running."""
    pid = running_pid(settings)
    _run_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(psutil.Error):
        procs.stop_process(psutil.Process(pid), timeout=30.0, first_signal=signal.SIGTERM)
    return True
