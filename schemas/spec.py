"""``EventSpec``: the registration record of one (event type, version) contract."""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec

__all__ = ["EventSpec"]

_EVENT_TYPE_RE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
_NAME_RE = re.compile(r"^[a-z][a-z_]*$")


@dataclass(frozen=True)
class EventSpec:
    """One event contract: type + version, where it lives, and its payload struct."""

    event_type: str
    version: int
    domain: str
    aggregate_type: str
    payload_type: type[msgspec.Struct]
    # Payload field that must equal ``Envelope.aggregate_id``. The aggregate id is the Kafka
    # key, so a mismatch would silently break per-aggregate ordering; the registry checks it.
    aggregate_id_field: str | None = None

    def __post_init__(self) -> None:
        if not _EVENT_TYPE_RE.match(self.event_type):
            raise ValueError(f"event_type must look like 'order.placed', got {self.event_type!r}")
        if self.version < 1:
            raise ValueError(f"{self.event_type}: version must be >= 1, got {self.version}")
        for label, value in (("domain", self.domain), ("aggregate_type", self.aggregate_type)):
            if not _NAME_RE.match(value):
                raise ValueError(f"{self.event_type}: invalid {label} {value!r}")
        if not (
            isinstance(self.payload_type, type) and issubclass(self.payload_type, msgspec.Struct)
        ):
            raise TypeError(f"{self.event_type}: payload_type must be a msgspec.Struct subclass")
        field_names = {field.name for field in msgspec.structs.fields(self.payload_type)}
        if self.aggregate_id_field is not None and self.aggregate_id_field not in field_names:
            raise ValueError(
                f"{self.event_type}: aggregate_id_field {self.aggregate_id_field!r} is not a "
                f"field of {self.payload_type.__name__}"
            )

    @property
    def key(self) -> tuple[str, int]:
        """The registry key: ``(event_type, version)``."""
        return (self.event_type, self.version)
