"""A Python module run detached beside the local stack, its pid and log in ``SOUK_HOME``.

The archiver and the analytics loader are started by `souk up` and stopped by `souk down` the
same way: ``python -m <module>`` detached with the settings in its environment, its pid in
``SOUK_HOME/<name>.json``, its output in ``SOUK_HOME/<name>.log``, stopped with SIGTERM (each
finishes its batch; committed offsets make a restart exact).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from souk.settings import Settings
from souk.stack import procs


@dataclass(frozen=True)
class DetachedModule:
    """How one background module of the stack is started, found and stopped."""

    name: str  # file stem in SOUK_HOME: <name>.json (pid), <name>.log
    module: str  # run as ``python -m <module>``
    label: str  # what messages call it, e.g. "the archiver"

    def run_file(self, settings: Settings) -> Path:
        """Where the running process's pid and log are recorded."""
        return settings.state_dir / f"{self.name}.json"

    def log_file(self, settings: Settings) -> Path:
        """The process's output."""
        return settings.state_dir / f"{self.name}.log"

    def running_pid(self, settings: Settings) -> int | None:
        """The pid of this home's running process, or None."""
        try:
            pid = int(json.loads(self.run_file(settings).read_text())["pid"])
            return pid if procs.is_running(psutil.Process(pid)) else None
        except (OSError, ValueError, KeyError, psutil.Error):
            return None

    def spawn(self, settings: Settings) -> subprocess.Popen[bytes]:
        """Start the module detached, with these settings, and record its pid."""
        from pipelines.control import settings_env

        log = self.log_file(settings)
        env = {**os.environ, **settings_env(settings)}
        proc = procs.spawn_detached([sys.executable, "-m", self.module], log, Path.cwd(), env)
        self.run_file(settings).write_text(json.dumps({"pid": proc.pid, "log": str(log)}))
        return proc

    def exited(self, settings: Settings, proc: subprocess.Popen[bytes]) -> RuntimeError | None:
        """If the spawned process already died: forget it and describe why (its last line)."""
        if proc.poll() is None:
            return None
        self.run_file(settings).unlink(missing_ok=True)
        lines = self.log_file(settings).read_text(errors="replace").strip().splitlines()
        return RuntimeError(f"{self.label} exited: {lines[-1] if lines else 'no output'}")

    def stop(self, settings: Settings) -> bool:
        """Stop this home's process with SIGTERM; False if none was running."""
        pid = self.running_pid(settings)
        self.run_file(settings).unlink(missing_ok=True)
        if pid is None:
            return False
        with contextlib.suppress(psutil.Error):
            procs.stop_process(psutil.Process(pid), timeout=30.0, first_signal=signal.SIGTERM)
        return True
