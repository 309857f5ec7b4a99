"""Helpers for tests that start the local stack (real processes, no mocks)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil

from souk.settings import Settings
from souk.stack.homes import temporary_home
from souk.stack.kafka import KafkaComponent
from souk.stack.postgres import PostgresComponent
from souk.stack.valkey import ValkeyComponent


def stack_home(prefix: str = "souk-stack-") -> Path:
    """A fresh state folder the embedded PostgreSQL can enter (see ``temporary_home``)."""
    return temporary_home(prefix)


def embedded_settings(home: Path, **urls: str | None) -> Settings:
    """Settings for ``home`` that ignore the environment's URLs unless given here."""
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=home,
        database_url=urls.get("database_url"),
        redis_url=urls.get("redis_url"),
        kafka_bootstrap=urls.get("kafka_bootstrap"),
    )


def stack_binaries() -> set[str]:
    """Real paths of the three server executables."""
    home = Path("/nonexistent")
    components = (PostgresComponent(home), ValkeyComponent(home), KafkaComponent(home))
    return {os.path.realpath(c.binary()) for c in components}


def processes_of(home: Path) -> list[psutil.Process]:
    """Live processes running a stack binary whose working dir is inside ``home``."""
    binaries = stack_binaries()
    root = os.path.realpath(home)
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.path.realpath(proc.exe()) not in binaries:
                continue
            cwd = os.path.realpath(proc.cwd())
            if (cwd == root or cwd.startswith(root + os.sep)) and is_alive(proc.pid):
                found.append(proc)
    return found


def is_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def dead_pid() -> int:
    """The pid of a process that has already exited."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@contextlib.contextmanager
def occupied(port: int) -> Iterator[socket.socket | None]:
    """Listen on 127.0.0.1:``port`` for the block (None if something else already does)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Like a server: a TIME_WAIT left by an earlier run must not make us think it is taken.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            yield None  # already taken by someone else: the port is in use either way
        else:
            yield sock
    finally:
        sock.close()


def closed_port() -> int:
    """A local port nothing listens on (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listener_pids(port: int) -> set[int]:
    """Pids listening on ``port`` (to check an external server was left alone)."""
    return {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid
    }
