"""Argon2id password hashing (the PasswordHasher port's production adapter)."""

from __future__ import annotations

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError


class Argon2Passwords:
    """argon2id with library defaults, or cheaper parameters for simulations and tests."""

    def __init__(self, *, time_cost: int = 3, memory_cost_kib: int = 65536) -> None:
        self._hasher = _Argon2(time_cost=time_cost, memory_cost=memory_cost_kib)

    def hash(self, password: str) -> str:
        """A salted argon2id hash."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches; a malformed stored hash is a mismatch, not a crash."""
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False
