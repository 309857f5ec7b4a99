"""A file-based model registry: immutable version folders plus one atomic pointer per kind.

Layout under the root (``SOUK_HOME/models`` by default)::

    <kind>/<version_id>/meta.json      id, kind, data window, params, metrics, created_at
    <kind>/<version_id>/...            the artifact files (whatever the model's save writes)
    <kind>/PROMOTED                    {"version", "promoted_at", "history": [...]}

A version is written into a hidden temp folder and renamed into place, so readers never see a
half-written one. The pointer is replaced with ``os.replace`` (atomic on POSIX) and carries
the stack of previously promoted versions, which ``rollback`` pops. Promotions take a per-kind
file lock, so two concurrent promoters cannot lose each other's history. ``PromotedModel``
lets a serving process follow the pointer without a restart.
"""

from __future__ import annotations

import builtins
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from souk.settings import Settings

log = logging.getLogger(__name__)

META_FILE = "meta.json"
POINTER_FILE = "PROMOTED"
LOCK_FILE = ".lock"
TEMP_PREFIX = ".tmp-"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")  # kinds
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_RESERVED_META = ("id", "kind", "created_at")

T = TypeVar("T")


class RegistryError(RuntimeError):
    """The registry cannot do what was asked (bad name, broken folder, nothing to roll back)."""


class ModelNotFound(RegistryError, LookupError):
    """No such kind or version."""


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version: its folder and its metadata."""

    kind: str
    id: str
    path: Path
    created_at: datetime
    data_start: datetime | None = None
    data_end: datetime | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, path: Path, meta: Mapping[str, Any]) -> ModelVersion:
        """A version from its folder and parsed meta.json."""
        known = {*_RESERVED_META, "data_start", "data_end", "params", "metrics"}
        return cls(
            kind=str(meta["kind"]),
            id=str(meta["id"]),
            path=path,
            created_at=_parse_time(meta["created_at"]) or datetime.fromtimestamp(0, UTC),
            data_start=_parse_time(meta.get("data_start")),
            data_end=_parse_time(meta.get("data_end")),
            params=dict(meta.get("params") or {}),
            metrics=dict(meta.get("metrics") or {}),
            extra={k: v for k, v in meta.items() if k not in known},
        )

    def to_meta(self) -> dict[str, Any]:
        """The meta.json content of this version."""
        return {
            "id": self.id,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "data_start": self.data_start.isoformat() if self.data_start else None,
            "data_end": self.data_end.isoformat() if self.data_end else None,
            "params": self.params,
            "metrics": self.metrics,
            **self.extra,
        }


@dataclass(frozen=True)
class Pointer:
    """The content of a kind's PROMOTED file."""

    version: str
    promoted_at: datetime
    history: tuple[str, ...] = ()  # previously promoted versions, most recent last


def default_root(settings: Settings | None = None) -> Path:
    """``SOUK_HOME/models`` of ``settings`` (the process settings when None)."""
    if settings is None:
        from souk.settings import get_settings

        settings = get_settings()
    return settings.state_dir / "models"


class ModelRegistry:
    """Model versions per kind under ``root``, with a promoted pointer per kind."""

    def __init__(self, root: Path | None = None, *, settings: Settings | None = None) -> None:
        self.root = Path(root) if root is not None else default_root(settings)

    # -- versions ---------------------------------------------------------------------------

    def kinds(self) -> builtins.list[str]:
        """The kinds with at least one folder, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))

    def list(self, kind: str) -> builtins.list[ModelVersion]:
        """The versions of ``kind``, oldest first (half-written temp folders are invisible)."""
        folder = self._kind_dir(kind)
        if not folder.is_dir():
            return []
        versions = []
        for path in folder.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue
            try:
                versions.append(self._read_version(path))
            except RegistryError as exc:
                log.warning("skipping %s: %s", path, exc)
        return sorted(versions, key=lambda v: (v.created_at, v.id))

    def get(self, kind: str, version: str) -> ModelVersion:
        """One version; ModelNotFound when it does not exist."""
        _check_name(version, "version")
        path = self._kind_dir(kind) / version
        if not (path / META_FILE).is_file():
            raise ModelNotFound(f"no version {version!r} of model kind {kind!r}")
        return self._read_version(path)

    def latest(self, kind: str) -> ModelVersion | None:
        """The newest version of ``kind``, None when there is none."""
        versions = self.list(kind)
        return versions[-1] if versions else None

    def register(
        self,
        kind: str,
        source: Callable[[Path], None] | Path,
        meta: Mapping[str, Any] | None = None,
        *,
        version_id: str | None = None,
    ) -> ModelVersion:
        """Add a version of ``kind``: ``source`` writes the artifact into a folder, or is one.

        A callable gets an empty folder to write into; a path is copied. ``meta`` may hold
        data_start, data_end, params, metrics and any other JSON-able keys. The folder appears
        under its final name only once complete (rename of a finished temp folder).
        """
        meta = dict(meta or {})
        reserved = [key for key in _RESERVED_META if key in meta]
        if reserved:
            raise RegistryError(f"meta may not set {', '.join(reserved)}: the registry does")
        created = datetime.now(UTC)
        version_id = version_id or f"{created:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        _check_name(version_id, "version")
        folder = self._kind_dir(kind)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / version_id
        if final.exists():
            raise RegistryError(f"version {version_id!r} of {kind!r} already exists")
        temp = folder / f"{TEMP_PREFIX}{version_id}-{secrets.token_hex(4)}"
        temp.mkdir()
        try:
            if isinstance(source, Path):
                if not source.is_dir():
                    raise RegistryError(f"{source} is not a folder")
                shutil.copytree(source, temp, dirs_exist_ok=True)
            else:
                source(temp)
            version = ModelVersion(
                kind=kind,
                id=version_id,
                path=final,
                created_at=created,
                data_start=_parse_time(meta.pop("data_start", None)),
                data_end=_parse_time(meta.pop("data_end", None)),
                params=dict(meta.pop("params", None) or {}),
                metrics=dict(meta.pop("metrics", None) or {}),
                extra=meta,
            )
            _write_json(temp / META_FILE, version.to_meta())
            _fsync_tree(temp)
            # rename(2) of a folder is atomic; it refuses a non-empty target, so a racing
            # registration of the same id fails instead of mixing two artifacts.
            os.rename(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        _fsync_dir(folder)
        return version

    # -- promotion --------------------------------------------------------------------------

    def pointer(self, kind: str) -> Pointer | None:
        """The PROMOTED pointer of ``kind``, None when nothing was promoted."""
        path = self._kind_dir(kind) / POINTER_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{path}: unreadable pointer ({exc})") from None
        try:
            return Pointer(
                version=str(raw["version"]),
                promoted_at=_parse_time(raw.get("promoted_at")) or datetime.fromtimestamp(0, UTC),
                history=tuple(str(v) for v in raw.get("history", ())),
            )
        except (KeyError, TypeError) as exc:
            raise RegistryError(f"{path}: malformed pointer ({exc})") from None

    def promoted(self, kind: str) -> ModelVersion | None:
        """The promoted version of ``kind``, None when nothing was promoted."""
        pointer = self.pointer(kind)
        if pointer is None:
            return None
        try:
            return self.get(kind, pointer.version)
        except ModelNotFound:
            raise RegistryError(
                f"{kind!r} points at version {pointer.version!r}, which no longer exists"
            ) from None

    def promote(self, kind: str, version: str) -> ModelVersion:
        """Make ``version`` the promoted one; the previous one goes on the rollback history."""
        target = self.get(kind, version)
        with self._locked(kind):
            current = self.pointer(kind)
            if current is not None and current.version == version:
                return target  # already promoted: no history entry for a no-op
            history = (*current.history, current.version) if current else ()
            self._write_pointer(kind, Pointer(version, datetime.now(UTC), history))
        return target

    def rollback(self, kind: str) -> ModelVersion:
        """Promote the previously promoted version again (skipping deleted ones)."""
        with self._locked(kind):
            current = self.pointer(kind)
            if current is None:
                raise RegistryError(f"nothing promoted for {kind!r}: nothing to roll back")
            history = list(current.history)
            while history:
                previous = history.pop()
                if (self._kind_dir(kind) / previous / META_FILE).is_file():
                    self._write_pointer(kind, Pointer(previous, datetime.now(UTC), tuple(history)))
                    return self.get(kind, previous)
                log.warning("rollback of %s skips deleted version %s", kind, previous)
            raise RegistryError(f"no earlier promoted version of {kind!r} to roll back to")

    # -- internals --------------------------------------------------------------------------

    def _kind_dir(self, kind: str) -> Path:
        """The folder of ``kind`` (name checked: kinds become path components)."""
        _check_name(kind, "kind")
        return self.root / kind

    def _read_version(self, path: Path) -> ModelVersion:
        """Parse a version folder's meta.json."""
        try:
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
            return ModelVersion.from_meta(path, meta)
        except FileNotFoundError:
            raise ModelNotFound(f"{path}: no {META_FILE}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RegistryError(f"{path}: unreadable {META_FILE} ({exc})") from None

    def _write_pointer(self, kind: str, pointer: Pointer) -> None:
        """Replace the PROMOTED file atomically (temp file, fsync, os.replace, fsync dir)."""
        folder = self._kind_dir(kind)
        temp = folder / f"{TEMP_PREFIX}{POINTER_FILE}-{secrets.token_hex(4)}"
        content = {
            "version": pointer.version,
            "promoted_at": pointer.promoted_at.isoformat(),
            "history": list(pointer.history),
        }
        try:
            _write_json(temp, content)
            os.replace(temp, folder / POINTER_FILE)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(folder)

    @contextmanager
    def _locked(self, kind: str) -> Iterator[None]:
        """An exclusive per-kind lock across processes (flock on ``<kind>/.lock``)."""
        folder = self._kind_dir(kind)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class PromotedModel(Generic[T]):
    """The promoted model of one kind, reloaded when the pointer changes.

    ``get`` checks the pointer file at most every ``check_every_s`` seconds (a stat; the file
    is read only when its inode, mtime or size changed) and loads a newly promoted version.
    A version that fails to load is logged and the previous model keeps serving. One thread
    reloads while the others keep getting the current model.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        kind: str,
        loader: Callable[[Path], T],
        *,
        check_every_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._kind = kind
        self._loader = loader
        self._check_every_s = check_every_s
        self._clock = clock
        self._pointer_path = registry.root / kind / POINTER_FILE
        self._lock = threading.Lock()
        self._model: T | None = None
        self._version: ModelVersion | None = None
        self._signature: tuple[int, int, int] | None = None
        self._next_check = float("-inf")

    @property
    def version(self) -> ModelVersion | None:
        """The version currently served (None before the first successful load)."""
        return self._version

    def get(self) -> T | None:
        """The served model (None while nothing is promoted), refreshed when due."""
        # The first load blocks; later refreshes never make a reader wait on a reload.
        due = self._clock() >= self._next_check
        if due and self._lock.acquire(blocking=self._model is None):
            try:
                if self._clock() >= self._next_check:  # another thread may have just checked
                    self._refresh()
            finally:
                self._lock.release()
        return self._model

    def refresh(self) -> bool:
        """Check the pointer now; True when a new version was loaded."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        """Reload if the pointer names another version; keep serving on any failure."""
        self._next_check = self._clock() + self._check_every_s
        try:
            stat = os.stat(self._pointer_path)
        except FileNotFoundError:
            if self._model is not None:
                log.warning("%s: pointer gone, still serving %s", self._kind, self._version)
            return False
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature == self._signature:
            return False
        try:
            version = self._registry.promoted(self._kind)
            if version is None or (self._version is not None and version.id == self._version.id):
                self._signature = signature
                return False
            model = self._loader(version.path)
        except Exception:
            log.exception("%s: cannot load the promoted model, keeping the current one", self._kind)
            return False
        self._model, self._version, self._signature = model, version, signature
        log.info("%s: now serving version %s", self._kind, version.id)
        return True


def _check_name(name: str, what: str) -> None:
    """Reject names that are not safe single path components (kinds: lowercase only)."""
    pattern = _NAME if what == "kind" else _VERSION
    if not isinstance(name, str) or not pattern.fullmatch(name):
        letters = "lowercase letters" if what == "kind" else "letters"
        raise RegistryError(f"invalid {what} name {name!r}: use {letters}, digits, '_', '-', '.'")


def _parse_time(value: object) -> datetime | None:
    """A timezone-aware datetime from a datetime or an ISO string (naive means UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise RegistryError(f"not an ISO timestamp: {value!r}") from None
    elif hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        moment = value.to_pydatetime()
    else:
        raise RegistryError(f"not a timestamp: {value!r}")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _write_json(path: Path, value: Any) -> None:
    """Write JSON and fsync it (the content must be on disk before a rename publishes it)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True, default=str)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_tree(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (a crash must not publish empty files)."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        elif path.is_dir():
            _fsync_dir(path)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    """fsync a folder so renames inside it are durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "ModelNotFound",
    "ModelRegistry",
    "ModelVersion",
    "Pointer",
    "PromotedModel",
    "RegistryError",
    "default_root",
]
