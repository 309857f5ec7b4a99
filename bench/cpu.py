"""CPU time spent by each side of a benchmark round: servers, PostgreSQL, the load generator.

Read from the kernel's per-process counters (psutil), before and after a round, so every
figure is CPU seconds actually burnt, not wall time. PostgreSQL is its postmaster and every
backend and worker under it; backends that exit during a round lose their share, which is
why the benchmark keeps its connections pooled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psutil


def listening_pid(port: int) -> int:
    """The pid of the process listening on a loopback TCP port."""
    for connection in psutil.net_connections("tcp"):
        listening = connection.laddr and connection.status == "LISTEN"
        if listening and connection.laddr.port == port and connection.pid is not None:
            return int(connection.pid)
    raise LookupError(f"nothing listens on port {port}")


def server_root_pid(port: int) -> int:
    """The `souk serve` process behind ``port``: the listener itself, or the parent of the
    worker process listening (with SOUK_HTTP_WORKERS > 1), whose tree holds every worker."""
    process = psutil.Process(listening_pid(port))
    while True:
        parent = process.parent()
        if parent is None or not {"souk", "serve"} <= set(parent.cmdline()):
            return int(process.pid)
        process = parent


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants alive now."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in family:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def own_cpu_s() -> float:
    """User + system CPU seconds of this process (every thread)."""
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds per side at one moment."""

    seconds: Mapping[str, float]

    def minus(self, earlier: CpuReading) -> dict[str, float]:
        """CPU seconds per side spent since ``earlier``."""
        return {side: self.seconds[side] - earlier.seconds.get(side, 0.0) for side in self.seconds}


class CpuMeter:
    """Reads CPU seconds of named process trees and of this process."""

    def __init__(self, trees: Mapping[str, Iterable[int]]) -> None:
        self._trees = {side: list(pids) for side, pids in trees.items()}

    def read(self) -> CpuReading:
        """CPU seconds per side now; ``load_generator`` is this process."""
        seconds = {side: sum(tree_cpu_s(pid) for pid in pids) for side, pids in self._trees.items()}
        seconds["load_generator"] = own_cpu_s()
        return CpuReading(seconds)
