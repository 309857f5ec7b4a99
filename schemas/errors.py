"""Typed errors raised by the schema registry (re-exported by :mod:`schemas.registry`)."""

from __future__ import annotations

__all__ = ["InvalidPayload", "SchemaError", "UnknownEventType"]


class SchemaError(Exception):
    """Base of every schema/contract error."""


# Names fixed by the platform contract (no "Error" suffix), hence the N818 waivers.
class UnknownEventType(SchemaError):
    """An event type (or version of it) that the registry does not know."""

    def __init__(
        self, event_type: str, *, version: int | None = None, suggestions: list[str] | None = None
    ) -> None:
        self.event_type = event_type
        self.version = version
        self.suggestions = suggestions or []
        if version is None:
            message = f"unknown event type {event_type!r}"
            if self.suggestions:
                message += f"; did you mean {', '.join(map(repr, self.suggestions))}?"
        else:
            known = ", ".join(self.suggestions) or "none"
            message = f"{event_type} v{version} is not registered (known versions: {known})"
        super().__init__(message)


class InvalidPayload(SchemaError):
    """A payload or envelope that does not match its registered schema."""

    def __init__(
        self, message: str, *, event_type: str | None = None, version: int | None = None
    ) -> None:
        self.event_type = event_type
        self.version = version
        super().__init__(message)
