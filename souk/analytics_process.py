"""The analytics loader as a background process of the local stack (`souk up` / `souk down`).

`souk up` starts ``python -m jobs.analytics.loader`` detached (pid in
``SOUK_HOME/analytics.json``, log ``SOUK_HOME/analytics.log``); it owns the chdb folder and
serves queries on loopback (``SOUK_HOME/analytics/endpoint.json``). `souk down` stops it with
SIGTERM (it finishes its batch); its committed offsets make any restart exact.
"""

from __future__ import annotations

import time

from souk.settings import Settings
from souk.stack.detached import DetachedModule

#: How long to wait for the loader's endpoint (it opens the store and creates the tables).
START_TIMEOUT_S = 30.0
#: With SOUK_ANALYTICS_URL there is no local endpoint: alive this long counts as started.
SETTLE_S = 2.0

LOADER = DetachedModule("analytics", "jobs.analytics.loader", "the analytics loader")


def running_pid(settings: Settings) -> int | None:
    """The pid of this home's running analytics loader, or None."""
    return LOADER.running_pid(settings)


def start(settings: Settings) -> str:
    """Start the loader in the background (unless it runs); return where it runs."""
    from jobs.analytics.endpoint import running_endpoint

    pid = LOADER.running_pid(settings)
    if pid is not None:
        return f"already running (pid {pid})"
    proc = LOADER.spawn(settings)
    log = LOADER.log_file(settings)
    started = time.monotonic()
    while time.monotonic() < started + START_TIMEOUT_S:
        if (error := LOADER.exited(settings, proc)) is not None:
            raise error
        if settings.analytics_url:
            if time.monotonic() >= started + SETTLE_S:
                return f"running (pid {proc.pid}, log {log})"
        elif (url := running_endpoint(settings)) is not None:
            return f"running (pid {proc.pid}, queries on {url}, log {log})"
        time.sleep(0.1)
    return f"starting (pid {proc.pid}, log {log})"


def stop(settings: Settings) -> bool:
    """Stop this home's loader; False if none was running."""
    return LOADER.stop(settings)
