"""The lake's archiver as a background process of the local stack (`souk up` / `souk down`).

`souk up` starts ``python -m jobs.archive`` detached (pid in ``SOUK_HOME/archiver.json``, log
``SOUK_HOME/archiver.log``); `souk down` stops it with SIGTERM (it finishes its batch). The
archiver resumes from the offsets its Delta commits recorded, so a stop or crash loses nothing.
"""

from __future__ import annotations

import time

from souk.settings import Settings
from souk.stack.detached import DetachedModule

#: How long a started archiver must stay alive to count as started.
SETTLE_S = 2.0

ARCHIVER = DetachedModule("archiver", "jobs.archive", "the archiver")


def running_pid(settings: Settings) -> int | None:
    """The pid of this home's running archiver, or None."""
    return ARCHIVER.running_pid(settings)


def start(settings: Settings) -> str:
    """Start the archiver in the background (unless it runs); return where it runs."""
    pid = ARCHIVER.running_pid(settings)
    if pid is not None:
        return f"already running (pid {pid})"
    proc = ARCHIVER.spawn(settings)
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        if (error := ARCHIVER.exited(settings, proc)) is not None:
            raise error
        time.sleep(0.1)
    return f"running (pid {proc.pid}, log {ARCHIVER.log_file(settings)})"


def stop(settings: Settings) -> bool:
    """Stop this home's archiver; False if none was running."""
    return ARCHIVER.stop(settings)
