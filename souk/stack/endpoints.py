"""Where the rest of Souk finds its servers: the configured URL, else our running embedded one."""

from __future__ import annotations

from dataclasses import dataclass

from souk.settings import Settings
from souk.stack import procs
from souk.stack.base import KAFKA, POSTGRES, REDIS
from souk.stack.errors import StackNotRunning
from souk.stack.state import Entry, StateFile
from souk.stack.urls import libpq_url

__all__ = ["Endpoints", "libpq_url", "resolve_endpoints", "resolve_url"]


@dataclass(frozen=True)
class Endpoints:
    """Connection details of the three servers."""

    database_url: str  # SQLAlchemy style (postgresql+psycopg://...); libpq_url() for raw psycopg
    redis_url: str
    kafka_bootstrap: str


def running_entry(entry: Entry | None) -> Entry | None:
    """``entry`` if its process is still the server we recorded (cheap: no network)."""
    if entry is None:
        return None
    return entry if procs.matching_process(entry.pid, entry.binary, entry.create_time) else None


def resolve_url(settings: Settings, component: str, entries: dict[str, Entry] | None = None) -> str:
    """One component's URL: its setting if set, else our running embedded server's URL."""
    info = {info.name: info for info in (POSTGRES, REDIS, KAFKA)}[component]
    configured = info.configured_url(settings)
    if configured is not None:
        return configured
    if entries is None:
        entries = StateFile(settings.state_dir).load()
    entry = running_entry(entries.get(info.name))
    if entry is not None:
        return entry.url
    raise StackNotRunning(
        info.name,
        f"{info.title} is not running for {settings.state_dir}: run `souk up` first "
        f"(or set {info.env_var} to use a server of your own)",
    )


def resolve_endpoints(settings: Settings) -> Endpoints:
    """Each URL setting if set, else our running embedded server's URL, else StackNotRunning."""
    entries = StateFile(settings.state_dir).load()
    return Endpoints(
        resolve_url(settings, POSTGRES.name, entries),
        resolve_url(settings, REDIS.name, entries),
        resolve_url(settings, KAFKA.name, entries),
    )
