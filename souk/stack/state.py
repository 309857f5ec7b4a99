"""``<home>/stack.json``: which embedded servers this home started (pid, port, url, ...)."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"


@dataclass(frozen=True)
class Entry:
    """One embedded server recorded in stack.json."""

    pid: int
    port: int
    url: str
    binary: str
    data_dir: str | None
    log_file: str
    started_at: str
    # psutil create_time of ``pid``: tells our server apart from a recycled pid.
    create_time: float | None = None
    started_by_us: bool = True

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this entry."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: object) -> Entry | None:
        """Parse one stack.json entry; None if it is malformed."""
        if not isinstance(raw, dict):
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            entry = cls(**{k: v for k, v in raw.items() if k in names})
        except TypeError:
            return None
        if not isinstance(entry.pid, int) or not isinstance(entry.port, int):
            return None
        return entry


def iso_time(timestamp: float) -> str:
    """A POSIX timestamp as UTC ISO-8601 with seconds."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


class StateFile:
    """Reads and atomically rewrites ``<home>/stack.json``; ``locked()`` serialises up/down."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.path = home / STATE_FILE
        self.unreadable = False

    def load(self) -> dict[str, Entry]:
        """The recorded entries by component; malformed content counts as empty."""
        self.unreadable = False
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            self.unreadable = True
            return {}
        if not isinstance(raw, dict):
            self.unreadable = True
            return {}
        entries: dict[str, Entry] = {}
        for name, value in raw.items():
            entry = Entry.from_json(value)
            if entry is not None:
                entries[name] = entry
        return entries

    def save(self, entries: dict[str, Entry]) -> None:
        """Write ``entries`` (or remove the file when empty) atomically."""
        if not entries:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
        payload = {name: entry.to_json() for name, entry in sorted(entries.items())}
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        # Readers (resolve_endpoints in other processes) never see a half-written file.
        os.replace(tmp, self.path)

    def put(self, name: str, entry: Entry) -> None:
        """Record ``entry`` for component ``name``."""
        entries = self.load()
        entries[name] = entry
        self.save(entries)

    def drop(self, name: str) -> None:
        """Forget component ``name``."""
        entries = self.load()
        if entries.pop(name, None) is not None or self.unreadable:
            self.save(entries)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the home so two `souk up`/`down` never race."""
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
