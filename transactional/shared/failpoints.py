"""Failpoints: named places where a test can make the process die, to prove crash safety.

``SOUK_FAILPOINTS=checkout.after_reserve,checkout.after_order`` makes :func:`failpoint` kill
the process (``os._exit``, no cleanup, like SIGKILL) when execution reaches one of those
names. Unset — the production case — a failpoint is one set lookup.
"""

from __future__ import annotations

import os
import sys

_ACTIVE: frozenset[str] = frozenset(
    name.strip() for name in os.environ.get("SOUK_FAILPOINTS", "").split(",") if name.strip()
)
CRASH_EXIT_CODE = 137


def failpoint(name: str) -> None:
    """Die here, abruptly, if the failpoint ``name`` is enabled in this process."""
    if name in _ACTIVE:
        sys.stderr.write(f"failpoint {name}: crashing on purpose\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
