"""Every streaming job, by name (imported lazily: each pulls in PyFlink)."""

from __future__ import annotations

import importlib

from pipelines.common.job import Job

#: Job name → module holding its ``JOB``.
MODULES: dict[str, str] = {
    "inventory": "pipelines.inventory",
    "trending": "pipelines.trending",
    "fraud": "pipelines.fraud",
}


def job(name: str) -> Job:
    """The job called ``name``; ``KeyError`` naming the known ones otherwise."""
    if name not in MODULES:
        raise KeyError(f"unknown pipeline {name!r}: use one of {', '.join(MODULES)}")
    found: Job = importlib.import_module(MODULES[name]).JOB
    return found


def names() -> list[str]:
    """Every job name, in start order."""
    return list(MODULES)
