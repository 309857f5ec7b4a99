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


class DomainError(SoukError):
    """A command refused by the domain; the serving layer maps the kind to an HTTP status.

    ``code`` is a stable machine-readable name, ``detail`` one human line, ``extra`` any
    structured facts a client needs to react (e.g. the SKUs that ran out).
    """

    code = "domain_error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class NotFound(DomainError):
    """The addressed resource does not exist (or is not the caller's to see)."""

    code = "not_found"


class InvalidRequest(DomainError):
    """The request is well-formed but semantically invalid (wrong currency, unknown SKU...)."""

    code = "invalid_request"


class Conflict(DomainError):
    """The request conflicts with the current state (illegal transition, out of stock...)."""

    code = "conflict"


class Unauthorized(DomainError):
    """No valid credentials: missing, malformed, expired or wrong."""

    code = "unauthorized"


class Forbidden(DomainError):
    """Valid credentials, but not allowed to do this."""

    code = "forbidden"


class PaymentDeclined(DomainError):
    """The payment processor declined the charge."""

    code = "payment_declined"
