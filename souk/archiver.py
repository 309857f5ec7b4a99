"""The lake's archiver as a background process of the local stack (`souk up` / `souk down`).

`souk up` starts ``python -m jobs.archive`` detached (pid in ``SOUK_HOME/archiver.json``, log
``SOUK_HOME/archiver.log``); `souk down` stops it with SIGTERM (it finishes its batch). The
archiver resumes from the offsets its Delta commits recorded, so a stop or crash loses nothing.
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

#: How long a started archiver must stay alive to count as started.
SETTLE_S = 2.0


def _run_file(settings: Settings) -> Path:
    return settings.state_dir / "archiver.json"


def running_pid(settings: Settings) -> int | None:
    """The pid of this home's running archiver, or None."""
    path = _run_file(settings)
    try:
        pid = int(json.loads(path.read_text())["pid"])
        return pid if procs.is_running(psutil.Process(pid)) else None
    except (OSError, ValueError, KeyError, psutil.Error):
        return None


def start(settings: Settings) -> str:
    """Start the archiver in the background (unless it runs); return where it runs."""
    from pipelines.control import settings_env

    pid = running_pid(settings)
    if pid is not None:
        return f"already running (pid {pid})"
    log = settings.state_dir / "archiver.log"
    env = {**os.environ, **settings_env(settings)}
    proc = procs.spawn_detached([sys.executable, "-m", "jobs.archive"], log, Path.cwd(), env)
    _run_file(settings).write_text(json.dumps({"pid": proc.pid, "log": str(log)}))
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _run_file(settings).unlink(missing_ok=True)
            lines = log.read_text(errors="replace").strip().splitlines()
            raise RuntimeError(f"the archiver exited: {lines[-1] if lines else 'no output'}")
        time.sleep(0.1)
    return f"running (pid {proc.pid}, log {log})"


def stop(settings: Settings) -> bool:
    """Stop this home's archiver; False if none was running."""
    pid = running_pid(settings)
    _run_file(settings).unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(psutil.Error):
        procs.stop_process(psutil.Process(pid), timeout=30.0, first_signal=signal.SIGTERM)
    return True
