"""DetachedModule: start a module in the background, find it by its pid file, stop it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from souk.settings import Settings
from souk.stack.detached import DetachedModule


def _settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, home=tmp_path)  # type: ignore[call-arg]


def test_a_module_that_dies_is_reported_with_its_last_line_and_forgotten(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    short = DetachedModule("short", "this", "the zen")  # prints the Zen of Python, exits
    proc = short.spawn(settings)
    proc.wait(30)
    error = short.exited(settings, proc)
    assert error is not None and "the zen exited: Namespaces" in str(error)
    assert not short.run_file(settings).exists()
    assert short.running_pid(settings) is None and not short.stop(settings)


def test_a_running_module_is_found_and_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "sleeper.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    monkeypatch.chdir(tmp_path)  # the module runs from the current folder
    server = DetachedModule("sleeper", "sleeper", "the sleeper")
    proc = server.spawn(settings)
    try:
        time.sleep(0.5)
        assert server.exited(settings, proc) is None
        assert server.running_pid(settings) == proc.pid
        assert server.stop(settings)
        assert proc.wait(30) is not None
        assert server.running_pid(settings) is None and not server.stop(settings)
    finally:
        if proc.poll() is None:
            proc.kill()
