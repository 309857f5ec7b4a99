"""AES-GCM envelope encryption: a fresh data key per secret, wrapped by the key manager's KEK.

Only the wrapped data key and the ciphertext are stored; the data key exists in the clear
just long enough to encrypt or decrypt one secret. The context is authenticated on both
layers, so a sealed value copied to another record does not open there.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transactional.payments.vault.kms import KeyContext, KeyManagement, VaultError, WrappedKey

FORMAT = b"\x01"  # the layout below: version, nonce, AES-256-GCM ciphertext with its tag
DATA_KEY_BYTES = 32
NONCE_BYTES = 12


@dataclass(frozen=True)
class Envelope:
    """A sealed secret: the ciphertext and the data key that opens it, wrapped."""

    ciphertext: bytes = field(repr=False)
    data_key: WrappedKey


def _aad(context: KeyContext) -> bytes:
    return json.dumps(sorted(context.items())).encode()


def seal(plaintext: bytes, kms: KeyManagement, context: KeyContext) -> Envelope:
    """Encrypt ``plaintext`` under a new data key, wrapped by the current KEK."""
    data_key = AESGCM.generate_key(bit_length=8 * DATA_KEY_BYTES)
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = AESGCM(data_key).encrypt(nonce, plaintext, _aad(context))
    return Envelope(FORMAT + nonce + body, kms.wrap(data_key, context))


def open_envelope(envelope: Envelope, kms: KeyManagement, context: KeyContext) -> bytes:
    """The plaintext of ``envelope``; VaultError if it was tampered with or moved."""
    blob = envelope.ciphertext
    if blob[:1] != FORMAT:
        raise VaultError("a sealed value has an unknown format")
    data_key = kms.unwrap(envelope.data_key, context)
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        return AESGCM(data_key).decrypt(nonce, body, _aad(context))
    except InvalidTag:
        raise VaultError("a sealed value failed authentication (tampered or moved)") from None
