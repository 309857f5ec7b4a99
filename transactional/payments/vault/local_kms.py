"""The local adapter of the KMS port: AES-256-GCM KEKs from a key file or from settings.

The key file (JSON, mode 0600) is created on first use and holds every KEK version; a new
version is appended by :meth:`LocalKeyring.new_key_version` (an atomic replace under a file
lock). Each process re-reads the file when it changed, so a rotation run from the command line
is seen at once by running servers: they wrap with the new version and unwrap any version.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transactional.payments.vault.kms import (
    KeyContext,
    UnknownKeyVersion,
    VaultError,
    WrappedKey,
)

KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # AES-GCM's standard nonce


def _aad(kek_id: str, context: KeyContext) -> bytes:
    return json.dumps([kek_id, sorted(context.items())]).encode()


def parse_keys(value: str) -> tuple[dict[str, bytes], str]:
    """KEKs from ``"id=base64,id2=base64"`` (32-byte keys); the last one is current."""
    keys: dict[str, bytes] = {}
    current = ""
    for item in value.split(","):
        kek_id, sep, encoded = item.strip().partition("=")
        kek_id = kek_id.strip()
        try:
            key = base64.b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4))
        except binascii.Error:
            key = b""
        if not sep or not kek_id or len(key) != KEY_BYTES or kek_id in keys:
            # Never echo the value: it is key material.
            raise VaultError(
                "SOUK_VAULT_KEK must be 'id=<base64 of 32 bytes>' pairs, comma-separated, "
                "with distinct ids (the last one is current)"
            )
        keys[kek_id] = key
        current = kek_id
    return keys, current


class LocalKeyring:
    """KEK versions held by this process: from a key file (rotatable) or fixed from settings."""

    def __init__(self, keys: dict[str, bytes], current: str, *, path: Path | None = None) -> None:
        if current not in keys:
            raise VaultError(f"the current KEK {current!r} is not among the keys")
        self._keys = dict(keys)
        self._current = current
        self._path = path
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalKeyring(current={self._current!r}, versions={len(self._keys)})"

    @classmethod
    def from_setting(cls, value: str) -> LocalKeyring:
        """A fixed keyring from SOUK_VAULT_KEK (rotate by adding a pair to the setting)."""
        keys, current = parse_keys(value)
        return cls(keys, current)

    @classmethod
    def from_file(cls, path: Path) -> LocalKeyring:
        """The keyring in ``path``, created (0600, one fresh KEK) if it does not exist yet."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            _create_file(path)
        keys, current = _read_file(path)
        keyring = cls(keys, current, path=path)
        keyring._refresh(force=True)  # remember the file's stamp
        return keyring

    def current_key_id(self) -> str:
        """The KEK version new data keys are wrapped with."""
        self._refresh()
        return self._current

    def wrap(self, data_key: bytes, context: KeyContext) -> WrappedKey:
        """Encrypt ``data_key`` with the current KEK version."""
        self._refresh()
        kek_id, kek = self._current, self._keys[self._current]
        nonce = secrets.token_bytes(NONCE_BYTES)
        blob = nonce + AESGCM(kek).encrypt(nonce, data_key, _aad(kek_id, context))
        return WrappedKey(kek_id, blob)

    def unwrap(self, wrapped: WrappedKey, context: KeyContext) -> bytes:
        """The data key inside ``wrapped``, under any KEK version this keyring knows."""
        kek = self._keys.get(wrapped.kek_id)
        if kek is None:
            # Perhaps rotated by another process since we last looked.
            self._refresh(force=True)
            kek = self._keys.get(wrapped.kek_id)
        if kek is None:
            where = f"the key file {self._path}" if self._path else "SOUK_VAULT_KEK"
            raise UnknownKeyVersion(
                f"no KEK version {wrapped.kek_id!r} in {where}: every process sharing a "
                "database must use the same SOUK_VAULT_KEY_FILE (or SOUK_VAULT_KEK)"
            )
        nonce, body = wrapped.blob[:NONCE_BYTES], wrapped.blob[NONCE_BYTES:]
        try:
            return AESGCM(kek).decrypt(nonce, body, _aad(wrapped.kek_id, context))
        except InvalidTag:
            raise VaultError(
                f"a data key wrapped by {wrapped.kek_id!r} failed authentication "
                "(tampered, or moved to another record)"
            ) from None

    def rewrap(self, wrapped: WrappedKey, context: KeyContext) -> WrappedKey:
        """``wrapped`` re-encrypted with the current KEK version."""
        return self.wrap(self.unwrap(wrapped, context), context)

    def new_key_version(self) -> str:
        """Append a fresh KEK to the key file and make it current."""
        if self._path is None:
            raise VaultError(
                "the KEK comes from SOUK_VAULT_KEK: append a new 'id=key' pair to it, restart, "
                "then run `souk vault rotate-key --no-new-key` to re-wrap"
            )
        with _file_lock(self._path):
            keys, _ = _read_file(self._path)
            kek_id = _new_id()
            keys[kek_id] = secrets.token_bytes(KEY_BYTES)
            _write_file(self._path, keys, kek_id)
        self._refresh(force=True)
        return kek_id

    def _refresh(self, *, force: bool = False) -> None:
        if self._path is None:
            return
        stat = os.stat(self._path)
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if force or stamp != self._stamp:
            self._reload()

    def _reload(self) -> None:
        assert self._path is not None
        with self._lock:
            stat = os.stat(self._path)
            keys, current = _read_file(self._path)
            self._keys, self._current = keys, current
            self._stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_file(path: Path) -> tuple[dict[str, bytes], str]:
    try:
        data = json.loads(path.read_text())
        keys = {str(k): base64.b64decode(v) for k, v in data["keys"].items()}
        current = str(data["current"])
    except (OSError, ValueError, KeyError, TypeError, binascii.Error) as error:
        raise VaultError(
            f"the vault key file {path} is unreadable: {type(error).__name__}"
        ) from None
    if current not in keys or any(len(key) != KEY_BYTES for key in keys.values()):
        raise VaultError(f"the vault key file {path} is corrupt (bad key or current version)")
    return keys, current


def _write_file(path: Path, keys: dict[str, bytes], current: str) -> None:
    """Write atomically: a 0600 temporary file, then rename over the old one."""
    text = json.dumps(
        {"current": current, "keys": {k: base64.b64encode(v).decode() for k, v in keys.items()}},
        indent=1,
    )
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _new_id() -> str:
    """A KEK version id unique across key files: a blob from another file is then "unknown"
    (a clear error), never a failed decryption under a same-named key."""
    return f"local-{secrets.token_hex(6)}"


def _create_file(path: Path) -> None:
    """A key file with one fresh KEK; the first of concurrent creators wins."""
    with _file_lock(path):
        if not path.exists():
            kek_id = _new_id()
            _write_file(path, {kek_id: secrets.token_bytes(KEY_BYTES)}, kek_id)
