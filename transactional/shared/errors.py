"""Typed errors of the shared kernel; each message is one line that names the fix."""

from __future__ import annotations


class SoukError(Exception):
    """Base of Souk's own errors."""


class BrokerUnavailable(SoukError):
    """The Kafka-protocol broker cannot be reached or refused the request."""


class PublishFailed(SoukError):
    """A message could not be delivered to the broker."""


class StoreUnavailable(SoukError):
    """The database behind a store cannot be reached; the caller may retry later."""


class RelayStandby(SoukError):
    """Another relay holds the leadership of this outbox."""
