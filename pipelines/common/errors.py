"""Typed errors of the streaming jobs: each says in one line why a job cannot run."""

from __future__ import annotations


class PipelineError(RuntimeError):
    """A job cannot start or run (unreachable broker, missing topic, bad setting, ...)."""
