"""Throw-away state folders for tests, benchmarks and one-off runs."""

from __future__ import annotations

import tempfile
from pathlib import Path


def temporary_home(prefix: str = "souk-") -> Path:
    """A fresh state folder that the unprivileged PostgreSQL user can enter.

    ``mkdtemp`` makes mode 0700 folders (as is pytest's tmp_path), which the ``souk`` system
    user that runs PostgreSQL when we are root cannot traverse; /tmp keeps the unix socket
    path short.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path
