"""Where a job's checkpoints live, and the latest one a restarted job resumes from."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

from souk.settings import Settings


def checkpoint_uri(settings: Settings, job: str) -> str:
    """The checkpoint folder URI of ``job``: ``SOUK_FLINK_CHECKPOINT_URI/<job>`` or local."""
    base = settings.flink_checkpoint_uri or (settings.state_dir / "flink" / "checkpoints").as_uri()
    return f"{base.rstrip('/')}/{job}"


def latest_checkpoint(settings: Settings, job: str) -> str | None:
    """The newest complete retained checkpoint of ``job`` (a ``file://`` URI), or None.

    Only local folders are scanned: on a real cluster Flink's high availability (or a
    savepoint given to `flink run -s`) restores jobs instead.
    """
    parts = urlsplit(checkpoint_uri(settings, job))
    if parts.scheme != "file":
        return None
    root = Path(parts.path)
    # A checkpoint is complete once its _metadata file is written (Flink writes it last).
    done = [meta.parent for meta in root.glob("*/chk-*/_metadata") if meta.is_file()]
    if not done:
        return None
    newest = max(done, key=lambda path: (path.stat().st_mtime, int(path.name[4:])))
    return newest.as_uri()


def checkpoint_number(uri: str | None) -> int | None:
    """The N of a ``…/chk-N`` URI."""
    if uri is None:
        return None
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    return int(name[4:]) if name.startswith("chk-") and name[4:].isdigit() else None


def discard_checkpoints(settings: Settings, job: str) -> bool:
    """Delete ``job``'s local checkpoints (the next start reads its topics from the beginning).

    False if there were none, or they live on a remote URI (a cluster's to manage).
    """
    parts = urlsplit(checkpoint_uri(settings, job))
    root = Path(parts.path)
    if parts.scheme != "file" or not root.exists():
        return False
    shutil.rmtree(root)
    return True
