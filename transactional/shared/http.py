"""Litestar dependencies shared by every slice's controllers: the caller from its bearer token."""

from __future__ import annotations

from typing import Annotated, Any, TypeAlias, TypeVar

from litestar import Request
from litestar.di import Dependency
from litestar.params import SkipValidationMarker

from transactional.shared.auth import Principal, TokenCodec
from transactional.shared.errors import Unauthorized

T = TypeVar("T")

# A handler parameter filled by the dependency of the same name (e.g. ``customers``), as is:
# services are ours, not client input, so the signature model does not validate them.
Inject: TypeAlias = Annotated[T, Dependency(kind="named"), SkipValidationMarker()]


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, if any."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "the Authorization header must be `Bearer <token>`", code="invalid_token"
        )
    return token.strip()


def provide_principal(request: Request[Any, Any, Any], tokens: Inject[TokenCodec]) -> Principal:
    """The authenticated caller (dependency ``principal``); 401 without a valid token."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized(
            "sign in first: send `Authorization: Bearer <token>` from POST /v1/auth/token",
            code="missing_token",
        )
    return tokens.verify(token)


def provide_maybe_principal(
    request: Request[Any, Any, Any], tokens: Inject[TokenCodec]
) -> Principal | None:
    """The caller if a token is sent (dependency ``maybe_principal``); guests get None."""
    token = bearer_token(request)
    return None if token is None else tokens.verify(token)
