"""The schema registry in code: event type -> versioned payload contract.

Producers build envelopes with :meth:`SchemaRegistry.new_event` (validated before they
reach the outbox); consumers call :meth:`SchemaRegistry.decode` and get a typed payload
from :meth:`SchemaRegistry.validate`. Every failure is a :class:`SchemaError` subclass so
consumers can route poison messages to the DLQ with a precise reason.

Versioning: a breaking change gets a new version (a new payload struct registered
alongside the old one); the old version stays registered until no producer emits it.
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, TypeVar

import msgspec

from schemas import (
    behaviour,
    carts,
    catalog,
    checkout,
    customers,
    fraud,
    inventory,
    orders,
    payments,
    promotions,
    returns,
    reviews,
    sellers,
    shipments,
)
from schemas.envelope import Envelope
from schemas.errors import InvalidPayload, SchemaError, UnknownEventType
from schemas.ids import uuid7
from schemas.spec import EventSpec

__all__ = [
    "DOMAIN_MODULES",
    "REGISTRY",
    "EventSpec",
    "InvalidPayload",
    "SchemaError",
    "SchemaRegistry",
    "UnknownEventType",
    "dlq_topic",
    "topic_for",
]

T = TypeVar("T", bound=msgspec.Struct)

_TOPIC_PART_RE = re.compile(r"^[a-z][a-z0-9_-]*$")

_envelope_decoder = msgspec.json.Decoder(Envelope)
_encoder = msgspec.json.Encoder()


class SchemaRegistry:
    """Holds every registered :class:`EventSpec` and (de)serialises envelopes against them."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, int], EventSpec] = {}
        self._latest: dict[str, EventSpec] = {}

    def register(self, spec: EventSpec) -> None:
        """Add a spec; re-registering the identical spec is a no-op, a conflicting one errors."""
        existing = self._specs.get(spec.key)
        if existing is not None:
            if existing == spec:
                return
            raise SchemaError(f"{spec.event_type} v{spec.version} is already registered")
        self._specs[spec.key] = spec
        latest = self._latest.get(spec.event_type)
        if latest is None or spec.version > latest.version:
            self._latest[spec.event_type] = spec

    def spec(self, event_type: str, version: int | None = None) -> EventSpec:
        """Return the spec of ``event_type`` (latest version unless ``version`` is given)."""
        latest = self._latest.get(event_type)
        if latest is None:
            close = difflib.get_close_matches(event_type, list(self._latest), n=3, cutoff=0.6)
            raise UnknownEventType(event_type, suggestions=close)
        if version is None or version == latest.version:
            return latest
        spec = self._specs.get((event_type, version))
        if spec is None:
            known = [str(v) for (name, v) in sorted(self._specs) if name == event_type]
            raise UnknownEventType(event_type, version=version, suggestions=known)
        return spec

    def specs(self) -> list[EventSpec]:
        """Every registered spec, sorted by (event_type, version)."""
        return [self._specs[key] for key in sorted(self._specs)]

    def event_types(self) -> list[str]:
        """Sorted unique registered event types."""
        return sorted(self._latest)

    def domains(self) -> list[str]:
        """Sorted unique domains (one Kafka topic group each)."""
        return sorted({spec.domain for spec in self._specs.values()})

    def new_event(
        self,
        event_type: str,
        payload: msgspec.Struct | Mapping[str, Any],
        *,
        aggregate_id: str | None = None,
        region: str,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
        version: int | None = None,
    ) -> Envelope:
        """Validate ``payload`` and wrap it in a new envelope (uuid7 id, UTC now by default).

        ``aggregate_id`` defaults to the payload's aggregate-id field (e.g. ``order_id``).
        """
        spec = self.spec(event_type, version)
        typed = self._coerce(spec, payload)
        expected_id = self._aggregate_id_of(spec, typed)
        if aggregate_id is None:
            if expected_id is None:
                raise InvalidPayload(
                    f"{spec.event_type} v{spec.version}: aggregate_id is required",
                    event_type=spec.event_type,
                    version=spec.version,
                )
            aggregate_id = expected_id
        try:
            envelope = Envelope(
                event_id=event_id if event_id is not None else uuid7(),
                event_type=spec.event_type,
                schema_version=spec.version,
                occurred_at=occurred_at if occurred_at is not None else datetime.now(UTC),
                aggregate_type=spec.aggregate_type,
                aggregate_id=aggregate_id,
                region=region,
                correlation_id=correlation_id,
                causation_id=causation_id,
                payload=msgspec.to_builtins(typed),
            )
        except ValueError as exc:
            raise InvalidPayload(
                f"{spec.event_type} v{spec.version}: invalid envelope: {exc}",
                event_type=spec.event_type,
                version=spec.version,
            ) from exc
        self._check_aggregate(spec, envelope, expected_id)
        return envelope

    def validate(self, envelope: Envelope) -> msgspec.Struct:
        """Return the envelope's typed payload, or raise UnknownEventType / InvalidPayload."""
        spec = self.spec(envelope.event_type, envelope.schema_version)
        if envelope.aggregate_type != spec.aggregate_type:
            raise InvalidPayload(
                f"{spec.event_type} v{spec.version}: aggregate_type must be "
                f"{spec.aggregate_type!r}, got {envelope.aggregate_type!r}",
                event_type=spec.event_type,
                version=spec.version,
            )
        typed = self._convert(spec, envelope.payload)
        self._check_aggregate(spec, envelope, self._aggregate_id_of(spec, typed))
        return typed

    def payload_as(self, envelope: Envelope, payload_type: type[T]) -> T:
        """Typed payload, statically typed as ``payload_type`` (raises if the event differs)."""
        typed = self.validate(envelope)
        if not isinstance(typed, payload_type):
            raise InvalidPayload(
                f"{envelope.event_type} v{envelope.schema_version}: payload is "
                f"{type(typed).__name__}, not {payload_type.__name__}",
                event_type=envelope.event_type,
                version=envelope.schema_version,
            )
        return typed

    def encode(self, envelope: Envelope) -> bytes:
        """Validate and serialise an envelope to JSON bytes."""
        self.validate(envelope)
        return _encoder.encode(envelope)

    def decode(self, data: bytes | bytearray | memoryview | str) -> Envelope:
        """Parse JSON into a validated envelope; raises InvalidPayload / UnknownEventType."""
        try:
            envelope = _envelope_decoder.decode(data)
        except msgspec.ValidationError as exc:
            raise InvalidPayload(f"invalid envelope: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise InvalidPayload(f"malformed event JSON: {exc}") from exc
        self.validate(envelope)
        return envelope

    def topic(self, envelope: Envelope) -> str:
        """The Kafka topic an envelope is published to (its domain, in its region)."""
        spec = self.spec(envelope.event_type, envelope.schema_version)
        return topic_for(spec.domain, envelope.region)

    # -- internals ---------------------------------------------------------------------

    def _coerce(
        self, spec: EventSpec, payload: msgspec.Struct | Mapping[str, Any]
    ) -> msgspec.Struct:
        if isinstance(payload, msgspec.Struct):
            if type(payload) is not spec.payload_type:
                raise InvalidPayload(
                    f"{spec.event_type} v{spec.version}: expected payload "
                    f"{spec.payload_type.__name__}, got {type(payload).__name__}",
                    event_type=spec.event_type,
                    version=spec.version,
                )
            # msgspec only enforces Meta constraints when decoding/converting, not in
            # __init__, so round-trip through builtins to validate a constructed struct.
            return self._convert(spec, msgspec.to_builtins(payload))
        if isinstance(payload, Mapping):
            return self._convert(spec, dict(payload))
        raise InvalidPayload(
            f"{spec.event_type} v{spec.version}: payload must be a "
            f"{spec.payload_type.__name__} or a mapping, got {type(payload).__name__}",
            event_type=spec.event_type,
            version=spec.version,
        )

    @staticmethod
    def _convert(spec: EventSpec, data: object) -> msgspec.Struct:
        try:
            return msgspec.convert(data, spec.payload_type, strict=True)
        except msgspec.ValidationError as exc:
            raise InvalidPayload(
                f"{spec.event_type} v{spec.version}: {exc}",
                event_type=spec.event_type,
                version=spec.version,
            ) from exc

    @staticmethod
    def _aggregate_id_of(spec: EventSpec, typed: msgspec.Struct) -> str | None:
        if spec.aggregate_id_field is None:
            return None
        value = getattr(typed, spec.aggregate_id_field)
        return None if value is None else str(value)

    @staticmethod
    def _check_aggregate(spec: EventSpec, envelope: Envelope, expected: str | None) -> None:
        if expected is not None and envelope.aggregate_id != expected:
            raise InvalidPayload(
                f"{spec.event_type} v{spec.version}: aggregate_id {envelope.aggregate_id!r} "
                f"!= payload {spec.aggregate_id_field} {expected!r}",
                event_type=spec.event_type,
                version=spec.version,
            )


def topic_for(domain: str, region: str, version: int = 1) -> str:
    """Kafka topic of a domain in a region: ``f"{region}.{domain}.v{version}"``."""
    for label, value in (("domain", domain), ("region", region)):
        if not _TOPIC_PART_RE.match(value):
            raise ValueError(f"invalid {label} for a topic name: {value!r}")
    if version < 1:
        raise ValueError(f"topic version must be >= 1, got {version}")
    return f"{region}.{domain}.v{version}"


def dlq_topic(topic: str) -> str:
    """Dead-letter topic of a topic: ``f"{topic}.dlq"``."""
    return f"{topic}.dlq"


DOMAIN_MODULES: tuple[ModuleType, ...] = (
    catalog,
    inventory,
    carts,
    checkout,
    orders,
    payments,
    shipments,
    returns,
    reviews,
    promotions,
    customers,
    behaviour,
    fraud,
    sellers,
)


def _build_default_registry() -> SchemaRegistry:
    registry = SchemaRegistry()
    for module in DOMAIN_MODULES:
        specs: tuple[EventSpec, ...] = module.SPECS
        for spec in specs:
            registry.register(spec)
    return registry


REGISTRY: SchemaRegistry = _build_default_registry()
