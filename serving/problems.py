"""RFC 9457 problem+json responses for every error, so clients never parse an HTML 500."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DataError

from transactional.shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PaymentDeclined,
    StoreUnavailable,
    Unauthorized,
)

PROBLEM_JSON = "application/problem+json"
_LOG = logging.getLogger("souk.serving")

# Most specific first: subclasses of these map to the same status.
STATUS_OF: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Unauthorized, 401),
    (Forbidden, 403),
    (PaymentDeclined, 402),
    (Conflict, 409),
    (InvalidRequest, 422),
)
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment declined",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
# Stable codes of Litestar's own errors (routing, body limits, validation), by status.
HTTP_CODES: dict[int, str] = {
    400: "validation_failed",
    401: "unauthorized",
    403: "forbidden",
    404: "route_not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def status_of(error: DomainError) -> int:
    """The HTTP status of a domain error, by its kind."""
    for kind, status in STATUS_OF:
        if isinstance(error, kind):
            return status
    return 400


def http_code(status: int) -> str:
    """The stable code of a framework error: a known name, else its status phrase in snake case."""
    if status in HTTP_CODES:
        return HTTP_CODES[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # not a registered status
        return f"http_{status}"
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower().replace("'", "")).strip("_")


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    *,
    code: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[dict[str, Any]]:
    """A problem+json response; ``code`` is our stable type suffix, ``extra`` more members."""
    body: dict[str, Any] = {
        "type": f"https://souk.dev/problems/{code}" if code else "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if code:
        body["code"] = code
    # Extension members never overwrite the standard ones.
    body.update({key: value for key, value in (extra or {}).items() if key not in body})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_error_handler(
    request: Request[Any, Any, Any], error: DomainError
) -> Response[dict[str, Any]]:
    """A refused command → its status with the error's code, detail and structured facts."""
    return problem(request, status_of(error), error.detail, code=error.code, extra=error.extra)


def http_error_handler(
    request: Request[Any, Any, Any], error: HTTPException
) -> Response[dict[str, Any]]:
    """Litestar's own errors (validation, routing, method, size) as coded problem+json."""
    extra: dict[str, Any] = {}
    if error.extra:
        extra["errors"] = error.extra
    if error.status_code >= 500:
        _LOG.error("server error on %s %s", request.method, request.url.path, exc_info=error)
    # Its headers matter to clients (405 Allow, 401 WWW-Authenticate, 429 Retry-After).
    return problem(
        request,
        error.status_code,
        str(error.detail),
        code=http_code(error.status_code),
        extra=extra,
        headers=error.headers,
    )


def store_unavailable_handler(
    request: Request[Any, Any, Any], error: StoreUnavailable
) -> Response[dict[str, Any]]:
    """A backing store is down: 503 so clients retry, not a 500."""
    return problem(request, 503, str(error), code="store_unavailable")


def data_error_handler(
    request: Request[Any, Any, Any], error: DataError
) -> Response[dict[str, Any]]:
    """PostgreSQL refused a value (SQLSTATE class 22: NUL byte, out of range...): bad input."""
    lines = str(error.orig).strip().splitlines()
    detail = lines[0] if lines else "a value in the request is not valid"
    return problem(request, 400, f"invalid value: {detail}", code="invalid_value")


def too_deep_handler(
    request: Request[Any, Any, Any], error: RecursionError
) -> Response[dict[str, Any]]:
    """JSON nested deeper than the decoder can follow."""
    return problem(request, 400, "the JSON body is nested too deeply", code="validation_failed")


def unexpected_error_handler(
    request: Request[Any, Any, Any], error: Exception
) -> Response[dict[str, Any]]:
    """A bug: log it with its traceback, answer a 500 problem without internals."""
    _LOG.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "an unexpected error occurred; it has been logged",
        code="internal_error",
    )


EXCEPTION_HANDLERS: dict[int | type[Exception], Any] = {
    DomainError: domain_error_handler,
    HTTPException: http_error_handler,
    StoreUnavailable: store_unavailable_handler,
    DataError: data_error_handler,
    RecursionError: too_deep_handler,
    Exception: unexpected_error_handler,
}

__all__ = ["EXCEPTION_HANDLERS", "HTTP_CODES", "PROBLEM_JSON", "http_code", "problem", "status_of"]
