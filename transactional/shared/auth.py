"""Bearer tokens: who is calling. Signed JWTs (HS256) with an expiry, behind a small port."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import jwt

from transactional.shared.errors import Forbidden, Unauthorized

ADMIN = "admin"
# Another service of the platform (e.g. the fraud service) acting for any customer.
SERVICE = "service"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a customer id, its home region and its roles."""

    customer_id: str
    region: str
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        """Whether the caller may use the admin endpoints."""
        return ADMIN in self.roles

    def require_admin(self) -> None:
        """Raise Forbidden unless the caller is an admin."""
        if not self.is_admin:
            raise Forbidden("this endpoint needs an admin token (`souk token --admin`)")


class TokenCodec(Protocol):
    """Issues and verifies bearer tokens."""

    def issue(self, principal: Principal) -> tuple[str, datetime]:
        """A signed token for ``principal`` and the time it expires."""

    def verify(self, token: str) -> Principal:
        """The principal a token names; Unauthorized if it is invalid or expired."""


class JwtTokens:
    """HS256 JWTs with ``sub``, ``region``, ``roles``, ``iat`` and ``exp`` claims."""

    def __init__(
        self,
        secret: str,
        *,
        ttl_s: int,
        issuer: str = "souk",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secret = secret
        self._ttl = timedelta(seconds=ttl_s)
        self._issuer = issuer
        self._clock = clock

    def issue(self, principal: Principal) -> tuple[str, datetime]:
        """A signed token for ``principal`` and the time it expires."""
        now = self._clock()
        expires = now + self._ttl
        claims = {
            "sub": principal.customer_id,
            "region": principal.region,
            "roles": sorted(principal.roles),
            "iss": self._issuer,
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires

    def verify(self, token: str) -> Principal:
        """The principal a token names; Unauthorized if it is invalid or expired."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self._issuer,
                # Expiry is checked below against the injectable clock (testable, no sleeping).
                options={
                    "require": ["sub", "exp", "iat"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError as error:
            raise Unauthorized(f"invalid bearer token: {error}", code="invalid_token") from None
        if not isinstance(claims["exp"], int | float) or claims["exp"] <= self._clock().timestamp():
            raise Unauthorized(
                "the token has expired: get a new one from POST /v1/auth/token",
                code="token_expired",
            )
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise Unauthorized(
                "invalid bearer token: roles must be a list of strings", code="invalid_token"
            )
        return Principal(str(claims["sub"]), str(claims.get("region", "")), frozenset(roles))
