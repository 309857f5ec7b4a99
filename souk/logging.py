"""Logging set-up shared by every Souk command (rich handler on stderr)."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler


def configure_logging(level: str = "INFO") -> None:
    """Send log records through rich to stderr, once per process."""
    root = logging.getLogger()
    if any(isinstance(handler, RichHandler) for handler in root.handlers):
        root.setLevel(level)
        return
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler])
    # librdkafka and alembic are chatty at INFO.
    logging.getLogger("alembic").setLevel(logging.WARNING)
