"""The KMS-style port of the card vault: key-encryption keys (KEKs) wrap and unwrap data keys.

A KEK never leaves its key manager; callers hand it a data key to wrap and get back an opaque
blob tagged with the id of the KEK version that wrapped it. Every version stays usable for
unwrapping, so readers keep working while a rotation re-wraps data keys to the new one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from transactional.shared.errors import SoukError, StoreUnavailable

# Binds a wrapped key to what it protects (AWS KMS's "encryption context", AES-GCM's AAD):
# a blob moved to another row or purpose no longer unwraps.
KeyContext = Mapping[str, str]


class VaultError(SoukError):
    """The vault cannot seal or open: a KEK is missing or a blob was tampered with."""


class UnknownKeyVersion(VaultError):
    """A blob names a KEK version the key manager does not have."""


class VaultUnavailable(StoreUnavailable):
    """The key manager cannot be reached; the caller may retry later."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key encrypted by the KEK version ``kek_id`` (opaque ``blob``)."""

    kek_id: str
    blob: bytes = field(repr=False)


class KeyManagement(Protocol):
    """A key manager holding versioned KEKs (a local keyring, AWS KMS...)."""

    def current_key_id(self) -> str:
        """The KEK version new data keys are wrapped with."""

    def wrap(self, data_key: bytes, context: KeyContext) -> WrappedKey:
        """Encrypt ``data_key`` with the current KEK version."""

    def unwrap(self, wrapped: WrappedKey, context: KeyContext) -> bytes:
        """The data key inside ``wrapped`` (any known KEK version); VaultError if it is not."""

    def rewrap(self, wrapped: WrappedKey, context: KeyContext) -> WrappedKey:
        """``wrapped`` re-encrypted with the current KEK version."""

    def new_key_version(self) -> str:
        """Create a KEK version and make it current; its id."""
