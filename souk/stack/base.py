"""What every stack component shares: its identity, and start/wait/stop of a detached server."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import psutil

from souk.settings import Settings
from souk.stack import procs
from souk.stack.errors import ServerStartError, ServerUnreachable
from souk.stack.state import Entry, iso_time
from souk.stack.urls import redact_url

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    """Default progress sink: say nothing."""


QUIET: Progress = _quiet


@dataclass(frozen=True)
class ComponentInfo:
    """Static identity of a component: its name, the setting that points at a real server."""

    name: str
    title: str
    setting: str
    env_var: str

    def configured_url(self, settings: Settings) -> str | None:
        """The URL setting for this component, or None when the embedded default applies."""
        value = getattr(settings, self.setting)
        return value if isinstance(value, str) and value.strip() else None


POSTGRES = ComponentInfo("postgres", "PostgreSQL", "database_url", "SOUK_DATABASE_URL")
REDIS = ComponentInfo("redis", "Redis", "redis_url", "SOUK_REDIS_URL")
KAFKA = ComponentInfo("kafka", "Kafka", "kafka_bootstrap", "SOUK_KAFKA_BOOTSTRAP")
#: Start order; `down` stops in reverse.
INFOS: tuple[ComponentInfo, ...] = (POSTGRES, REDIS, KAFKA)


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (no import side effects)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError(package, f"package {package!r} is not installed: pip install -e .")
    return Path(next(iter(spec.submodule_search_locations)))


def one_line(error: BaseException | str) -> str:
    """A short single-line rendering of an exception for messages."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def last_log_line(path: Path) -> str:
    """The last non-empty line of a log file ("" if none), to hint at why a start failed."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - 4096))
            lines = handle.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if line.strip():
            return one_line(line)
    return ""


def unreachable(info: ComponentInfo, url: str, error: BaseException | str) -> ServerUnreachable:
    """The error for a configured server that does not answer, naming both ways out."""
    shown = redact_url(url)
    return ServerUnreachable(
        info.name,
        shown,
        f"{info.title} at {shown} is unreachable ({one_line(error)}): is the server running? "
        f"unset {info.env_var} to use the embedded one",
    )


class Component(ABC):
    """One local server: how to start it, check it, describe it and stop it."""

    info: ClassVar[ComponentInfo]
    #: What runs when embedded ("Valkey" for the Redis role, "Tansu" for Kafka).
    engine: ClassVar[str]
    default_port: ClassVar[int]
    #: Folder under home that is the server's working (and data) dir, and its log's name.
    dir_name: ClassVar[str]
    log_name: ClassVar[str]
    start_timeout_s: ClassVar[float] = 10.0
    #: Whether stack.json records ``data_dir`` (False for Tansu's in-memory storage).
    keeps_data: ClassVar[bool] = True

    def __init__(self, home: Path) -> None:
        self.home = home

    @property
    def name(self) -> str:
        """Component name used in stack.json and the CLI."""
        return self.info.name

    @property
    def log_path(self) -> Path:
        """Where the embedded server logs."""
        return self.home / "logs" / self.log_name

    @property
    def data_dir(self) -> Path:
        """The embedded server's working/data folder under home."""
        return self.home / self.dir_name

    @abstractmethod
    def binary(self) -> Path:
        """The server executable shipped by the pip package."""

    @abstractmethod
    def url_for(self, port: int) -> str:
        """The client URL of an embedded server listening on ``port``."""

    @abstractmethod
    def probe(self, url: str, timeout: float) -> None:
        """Raise if the server at ``url`` does not answer a real request within ``timeout``."""

    @abstractmethod
    def version(self, url: str, entry: Entry | None) -> str:
        """Human version string of the server at ``url`` (``entry`` is set when it is ours)."""

    @abstractmethod
    def launch(self, port: int, progress: Progress) -> Entry:
        """Start the embedded server on ``port`` and return its entry once healthy."""

    def orphans(self) -> list[psutil.Process]:
        """Servers of this home that stack.json lost: our binary running in our working dir."""
        binary = os.path.realpath(self.binary())
        workdir = os.path.realpath(self.data_dir)
        found = []
        for proc in psutil.process_iter():
            try:
                if (
                    os.path.realpath(proc.exe()) == binary
                    and os.path.realpath(proc.cwd()) == workdir
                ):
                    found.append(proc)
            except (psutil.Error, OSError):
                continue
        return [p for p in found if procs.is_running(p)]

    def prepare(self, progress: Progress) -> None:
        """One-off work before a port is chosen (PostgreSQL: checks and initdb); default none."""
        return None

    def recover(self, progress: Progress) -> Entry | None:
        """Adopt a healthy server of ours that stack.json lost; stop unhealthy or extra ones."""
        found = self.orphans()
        if not found:
            return None
        keep, extra = found[0], found[1:]
        for proc in extra:
            procs.stop_process(proc, timeout=5.0)
        # Read the port off the live socket: Valkey rewrites its command line (process title).
        port = procs.listening_port(keep)
        if port is not None:
            url = self.url_for(port)
            try:
                self.probe(url, timeout=3.0)
            except Exception:  # unhealthy: replaced below by a fresh server
                pass
            else:
                progress(f"{self.engine}: adopted a running server (pid {keep.pid}, port {port})")
                return self.entry_for(keep, port)
        progress(f"{self.engine}: stopped an unresponsive server left from an earlier run "
                 f"(pid {keep.pid})")  # fmt: skip
        procs.stop_process(keep, timeout=5.0)
        return None

    def stop(self, proc: psutil.Process) -> list[psutil.Process]:
        """Stop our server (SIGTERM, wait, SIGKILL); return processes that survived."""
        return procs.stop_process(proc, timeout=10.0)

    def purge(self) -> None:
        """Delete the embedded server's data and log."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)

    # -- shared launcher for servers that run in the foreground (Valkey, Tansu) ------------

    def spawn_and_wait(self, argv: list[str], port: int) -> Entry:
        """Spawn ``argv`` detached in ``data_dir``, wait until it listens and answers; record it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The working dir doubles as our mark: orphans() finds lost servers of this home by it.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        popen = procs.spawn_detached(argv, self.log_path, cwd=self.data_dir)
        proc = psutil.Process(popen.pid)
        self.wait_healthy(proc, port, self.url_for(port), time.monotonic() + self.start_timeout_s)
        return self.entry_for(proc, port)

    def entry_for(self, proc: psutil.Process, port: int) -> Entry:
        """The stack.json entry of our server ``proc`` listening on ``port``."""
        created = proc.create_time()
        return Entry(
            pid=proc.pid,
            port=port,
            url=self.url_for(port),
            binary=str(self.binary().resolve()),
            data_dir=str(self.data_dir) if self.keeps_data else None,
            log_file=str(self.log_path),
            started_at=iso_time(created),
            create_time=created,
        )

    def wait_healthy(self, proc: psutil.Process, port: int, url: str, deadline: float) -> None:
        """Poll until ``proc`` listens on ``port`` and the probe passes; kill it on failure."""
        last_error: BaseException | str = "no answer yet"
        while True:
            if not procs.is_running(proc):
                code = procs.exit_code(proc.pid)
                procs.reap(proc.pid)
                raise self.start_error(
                    f"{self.engine} exited during start"
                    + (f" (exit code {code})" if code is not None else "")
                )
            # Listening check first: a probe alone could be answered by someone else's server
            # that grabbed the port between our port check and the spawn.
            if procs.listens_on(proc, port):
                try:
                    self.probe(url, timeout=max(0.5, min(2.0, deadline - time.monotonic())))
                    return
                except Exception as error:  # any client error just means "not ready yet"
                    last_error = error
            if time.monotonic() >= deadline:
                procs.stop_process(proc, timeout=2.0)
                raise self.start_error(
                    f"{self.engine} did not become healthy within {self.start_timeout_s:.0f} s "
                    f"({one_line(last_error)})"
                )
            time.sleep(0.05)

    def start_error(self, what: str) -> ServerStartError:
        """A start failure naming the log file (and its last line) as the place to look."""
        hint = last_log_line(self.log_path)
        return ServerStartError(
            self.name,
            f"{what}: see {self.log_path}" + (f" (last line: {hint})" if hint else ""),
            self.log_path,
        )
