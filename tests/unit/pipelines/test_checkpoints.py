"""Where checkpoints live, which one a restart resumes from, and discarding them."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines import control
from pipelines.common.checkpoints import (
    checkpoint_number,
    checkpoint_uri,
    discard_checkpoints,
    latest_checkpoint,
)
from souk.settings import Settings


def _settings(home: Path, **values: object) -> Settings:
    return Settings(_env_file=None, home=home, **values)  # type: ignore[call-arg]


def _checkpoint(settings: Settings, job: str, run: str, n: int, *, done: bool = True) -> Path:
    folder = Path(checkpoint_uri(settings, job).removeprefix("file://")) / run / f"chk-{n}"
    folder.mkdir(parents=True)
    if done:  # Flink writes _metadata last: without it the checkpoint is incomplete
        (folder / "_metadata").write_bytes(b"x")
    os.utime(folder, (n, n))
    return folder


def test_the_newest_complete_checkpoint_is_resumed_and_reset_discards_them(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert latest_checkpoint(settings, "trending") is None
    _checkpoint(settings, "trending", "job-a", 3)
    newest = _checkpoint(settings, "trending", "job-b", 7)
    _checkpoint(settings, "trending", "job-b", 8, done=False)
    _checkpoint(settings, "inventory", "job-c", 9)
    assert latest_checkpoint(settings, "trending") == newest.as_uri()
    assert checkpoint_number(latest_checkpoint(settings, "trending")) == 7

    assert control.reset(settings, "trending")  # not running: only the checkpoints go
    assert latest_checkpoint(settings, "trending") is None
    assert not discard_checkpoints(settings, "trending")  # nothing left
    assert checkpoint_number(latest_checkpoint(settings, "inventory")) == 9  # other jobs keep


def test_remote_checkpoints_are_left_to_the_cluster(tmp_path: Path) -> None:
    settings = _settings(tmp_path, flink_checkpoint_uri="s3://bucket/souk")
    assert checkpoint_uri(settings, "fraud") == "s3://bucket/souk/fraud"
    assert latest_checkpoint(settings, "fraud") is None
    assert not discard_checkpoints(settings, "fraud")
