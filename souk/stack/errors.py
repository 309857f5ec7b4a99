"""Typed errors of the local stack; each message is one line that names the fix."""

from __future__ import annotations

from pathlib import Path


def _one_line(text: str) -> str:
    """Collapse whitespace so a message always prints as a single line."""
    return " ".join(text.split())


class StackError(Exception):
    """Base of every error the stack raises; ``str(err)`` is one line naming the fix."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))

    @property
    def message(self) -> str:
        """The one-line message."""
        return str(self.args[0])


class ServerStartError(StackError):
    """An embedded server could not be started (or did not become healthy in time)."""

    def __init__(self, component: str, message: str, log_path: Path | None = None) -> None:
        self.component = component
        self.log_path = log_path
        super().__init__(message)


class ServerUnreachable(StackError):
    """A server (external or recorded as ours) does not answer its health check."""

    def __init__(self, component: str, url: str, message: str) -> None:
        self.component = component
        self.url = url
        super().__init__(message)


class StackNotRunning(StackError):
    """No URL is configured and no embedded server is running for a component."""

    def __init__(self, component: str, message: str) -> None:
        self.component = component
        super().__init__(message)
