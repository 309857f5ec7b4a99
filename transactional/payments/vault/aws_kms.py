"""The production adapter of the KMS port: AWS KMS (or any endpoint speaking its API).

A KEK version is a KMS key; an alias (SOUK_VAULT_KMS_KEY_ID, e.g. ``alias/souk-card-vault``)
names the current one. A new version is a new key the alias is moved to; older keys stay
enabled, so data keys they wrapped keep unwrapping while a rotation re-wraps them (KMS's
ReEncrypt: the data key never leaves KMS in the clear). Key material never leaves KMS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from transactional.payments.vault.kms import (
    KeyContext,
    UnknownKeyVersion,
    VaultError,
    VaultUnavailable,
    WrappedKey,
)

_MISSING_KEY = {"NotFoundException", "DisabledException", "KMSInvalidStateException"}
_BAD_BLOB = {"InvalidCiphertextException", "IncorrectKeyException"}


class AwsKms:
    """KEK versions as KMS keys behind one alias; ``client`` is a boto3 KMS client."""

    def __init__(
        self,
        client: Any,
        alias: str,
        *,
        current_ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not alias.startswith("alias/"):
            raise VaultError(
                f"SOUK_VAULT_KMS_KEY_ID must be an alias like alias/souk, not {alias!r}"
            )
        self._client = client
        self._alias = alias
        # Resolving the alias on every wrap would double the KMS calls; a rotation's final
        # passes re-wrap what a stale process wrapped meanwhile.
        self._ttl = current_ttl_s
        self._clock = clock
        self._current: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AwsKms(alias={self._alias!r})"

    def current_key_id(self) -> str:
        """The ARN of the key the alias points at (cached for a few seconds)."""
        with self._lock:
            cached = self._current
        if cached is not None and self._clock() - cached[1] < self._ttl:
            return cached[0]
        metadata = self._call(
            "describe the vault key", self._client.describe_key, KeyId=self._alias
        )
        arn = str(metadata["KeyMetadata"]["Arn"])
        with self._lock:
            self._current = (arn, self._clock())
        return arn

    def wrap(self, data_key: bytes, context: KeyContext) -> WrappedKey:
        """Encrypt ``data_key`` under the current key."""
        kek_id = self.current_key_id()
        answer = self._call(
            "wrap a data key",
            self._client.encrypt,
            KeyId=kek_id,
            Plaintext=data_key,
            EncryptionContext=dict(context),
        )
        return WrappedKey(kek_id, bytes(answer["CiphertextBlob"]))

    def unwrap(self, wrapped: WrappedKey, context: KeyContext) -> bytes:
        """The data key inside ``wrapped``, by the key that wrapped it."""
        answer = self._call(
            "unwrap a data key",
            self._client.decrypt,
            KeyId=wrapped.kek_id,
            CiphertextBlob=wrapped.blob,
            EncryptionContext=dict(context),
        )
        return bytes(answer["Plaintext"])

    def rewrap(self, wrapped: WrappedKey, context: KeyContext) -> WrappedKey:
        """Re-encrypt inside KMS under the current key."""
        kek_id = self.current_key_id()
        answer = self._call(
            "re-wrap a data key",
            self._client.re_encrypt,
            CiphertextBlob=wrapped.blob,
            SourceKeyId=wrapped.kek_id,
            SourceEncryptionContext=dict(context),
            DestinationKeyId=kek_id,
            DestinationEncryptionContext=dict(context),
        )
        return WrappedKey(kek_id, bytes(answer["CiphertextBlob"]))

    def new_key_version(self) -> str:
        """Create a KMS key and point the alias at it (creating the alias the first time)."""
        created = self._call(
            "create a vault key",
            self._client.create_key,
            Description="souk card vault key-encryption key",
            KeyUsage="ENCRYPT_DECRYPT",
            KeySpec="SYMMETRIC_DEFAULT",
        )
        arn = str(created["KeyMetadata"]["Arn"])
        try:
            self._client.update_alias(AliasName=self._alias, TargetKeyId=arn)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "NotFoundException":
                raise self._translate("point the alias", error) from None
            self._call(
                "create the alias",
                self._client.create_alias,
                AliasName=self._alias,
                TargetKeyId=arn,
            )
        except BotoCoreError as error:
            raise self._translate("point the alias", error) from None
        with self._lock:
            self._current = (arn, self._clock())
        return arn

    def _call(self, action: str, method: Callable[..., Any], **params: Any) -> Any:
        try:
            return method(**params)
        except (ClientError, BotoCoreError) as error:
            raise self._translate(action, error) from None

    def _translate(self, action: str, error: Exception) -> Exception:
        # Only the error code and message: never the request (it holds the key or blob).
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", "unknown"))
            if code in _MISSING_KEY:
                return UnknownKeyVersion(f"KMS could not {action}: {code} ({self._alias})")
            if code in _BAD_BLOB:
                return VaultError(f"KMS could not {action}: {code} (tampered or moved blob)")
            if code in {
                "ThrottlingException",
                "KMSInternalException",
                "DependencyTimeoutException",
            }:
                return VaultUnavailable(f"KMS could not {action}: {code}; retry later")
            return VaultError(f"KMS could not {action}: {code}")
        return VaultUnavailable(f"KMS could not {action}: {type(error).__name__}; retry later")
