"""A `souk serve` child process for a simulation or benchmark: port, environment, lifecycle."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from souk.settings import Settings
from souk.simulation.runner import ServerFailed


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(
    settings: Settings, database_url: str, redis_url: str, kafka_bootstrap: str | None = None
) -> dict[str, str]:
    """SOUK_* variables for a `souk serve` child on these servers, with this run's settings.

    Password hashing is made cheap: simulated shoppers sign in far more often than people.
    Client addresses are read as this run's settings say (see ``SimulationConfig.ip_regions``).
    """
    env = {
        "SOUK_HOME": str(settings.state_dir),
        "SOUK_DATABASE_URL": database_url,
        "SOUK_REDIS_URL": redis_url,
        "SOUK_JWT_SECRET": settings.jwt_secret,
        "SOUK_REGION": settings.region,
        "SOUK_REGIONS": ",".join(settings.regions),
        "SOUK_PASSWORD_TIME_COST": "1",
        "SOUK_PASSWORD_MEMORY_KIB": "1024",
        # The shoppers' addresses come through loopback (trusted) and map to their regions.
        "SOUK_TRUSTED_PROXIES": ",".join(settings.trusted_proxies),
        "SOUK_IP_REGIONS": ",".join(
            f"{region}={cidr}" for region, cidrs in settings.ip_regions.items() for cidr in cidrs
        ),
    }
    if kafka_bootstrap is not None:
        env["SOUK_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    return env


@contextmanager
def serve_subprocess(
    env: Mapping[str, str],
    *,
    log_path: Path | None = None,
    timeout_s: float = 120.0,
    relay: bool = False,
) -> Iterator[str]:
    """Run `souk serve` (with its relay only if ``relay``) in a child process; yields its
    base URL.

    A separate process keeps the server off the load generator's GIL. Its output goes to
    ``log_path`` when given.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "souk",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(() if relay else ("--no-relay",)),
        "--log-level",
        "WARNING",
    ]
    with ExitStack() as resources:
        log = resources.enter_context(log_path.open("ab")) if log_path is not None else None
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None:
                    tail = ""
                    if log_path is not None:
                        lines = log_path.read_text(errors="replace").strip().splitlines()
                        tail = f" ({log_path}): {' | '.join(lines[-5:])}"
                    raise ServerFailed(
                        f"`souk serve` exited with status {process.returncode}{tail}"
                    )
                try:
                    if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerFailed(f"`souk serve` did not answer on {url} in {timeout_s:.0f} s")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
