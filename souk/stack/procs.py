"""Process and port helpers shared by the launchers (psutil-based, Linux first)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil

# Servers we spawned ourselves stay our children while this interpreter lives (tests, a long
# `souk` process). Keeping their Popen objects here stops Python from warning "subprocess is
# still running" on garbage collection and lets stop() reap them, so no zombie is left behind.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

LOCALHOST = "127.0.0.1"


def port_in_use(port: int, host: str = LOCALHOST) -> bool:
    """True when ``host:port`` cannot be bound (something listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too: with it, only a live listener (not TIME_WAIT) blocks us.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def pick_port(preferred: int, host: str = LOCALHOST, avoid: Iterable[int] = ()) -> int:
    """``preferred`` if free, else the next free port above it, else one the kernel hands out."""
    skip = set(avoid)
    for port in range(preferred, min(preferred + 50, 65536)):
        if port not in skip and not port_in_use(port, host):
            return port
    return free_port(host)


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port on ``host`` that the kernel says is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def matching_process(
    pid: int, binary: str, create_time: float | None = None
) -> psutil.Process | None:
    """Live process ``pid`` if it runs ``binary`` (and started at ``create_time``), else None."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        exe = proc.exe()
        started = proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None
    if not exe or os.path.realpath(exe) != os.path.realpath(binary):
        return None
    # A pid recycled by a new instance of the same binary is not the server we recorded.
    if create_time is not None and abs(started - create_time) > 1.0:
        return None
    return proc


def describe_pid(pid: int) -> str:
    """Why ``pid`` is not our server, for one-line messages ("is not running", "is now 'bash'")."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"pid {pid} is not running"
        return f"pid {pid} now belongs to another program ({proc.name()!r})"
    except psutil.NoSuchProcess:
        return f"pid {pid} is not running"
    except psutil.Error:
        return f"pid {pid} belongs to another program"


def listens_on(proc: psutil.Process, port: int) -> bool:
    """True when ``proc`` itself holds a listening TCP socket on ``port``."""
    try:
        conns = proc.net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def listening_port(proc: psutil.Process) -> int | None:
    """The (lowest) TCP port ``proc`` listens on, or None."""
    try:
        conns = proc.net_connections(kind="tcp")
    except psutil.Error:
        return None
    ports = [c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.laddr]
    return min(ports) if ports else None


def spawn_detached(
    argv: list[str], log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with output appended to ``log_path``; return its Popen."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            # Own session: the server must outlive `souk up` and ignore the terminal's Ctrl-C.
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc


def exit_code(pid: int) -> int | None:
    """The exit code of a server we spawned if it has exited, else None (running or unknown)."""
    child = _CHILDREN.get(pid)
    return child.poll() if child is not None else None


def is_running(proc: psutil.Process) -> bool:
    """True when ``proc`` is alive and not a zombie."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def children_of(proc: psutil.Process) -> list[psutil.Process]:
    """All descendants of ``proc`` (empty if it is gone)."""
    try:
        children: list[psutil.Process] = proc.children(recursive=True)
        return children
    except psutil.Error:
        return []


def stop_process(
    proc: psutil.Process,
    timeout: float = 10.0,
    first_signal: signal.Signals = signal.SIGTERM,
    extra: Iterable[psutil.Process] = (),
) -> list[psutil.Process]:
    """Signal ``proc``, wait, then SIGKILL it and ``extra`` stragglers; return survivors."""
    family = [proc, *children_of(proc), *extra]
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(first_signal)
    _, alive = psutil.wait_procs([proc], timeout=timeout)
    # Children normally exit with their parent; give them a moment, then force them.
    _, alive_rest = psutil.wait_procs(family[1:], timeout=2.0)
    alive = [*alive, *alive_rest]
    for straggler in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            straggler.kill()
    _, survivors = psutil.wait_procs(alive, timeout=5.0)
    reap(proc.pid)
    return [p for p in survivors if is_running(p)]


def reap(pid: int) -> None:
    """Collect the exit status of a server we spawned so it leaves no zombie."""
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            child.wait(timeout=5.0)
