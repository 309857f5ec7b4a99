"""The card vault: card numbers and expiry sealed per card, and what may leave the vault.

Sealed inside (AES-GCM envelope): the number and the expiry month and year. The gateway
opens them only to act on the card (the test card's outcome, the expiry check). Outside the
vault a card is its last four digits, its brand and its fingerprint: a keyed HMAC-SHA256 of
the number, so the same card is recognised across tokens without storing it, and cannot be
brute-forced from the fingerprint without the key. The fingerprint key is itself a vault
secret (random, wrapped by the KEK, re-wrapped by rotations). The CVC is never given here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Protocol

from transactional.payments.model import card_brand
from transactional.payments.vault.envelope import Envelope, open_envelope, seal
from transactional.payments.vault.kms import KeyContext, KeyManagement, VaultError, WrappedKey

FINGERPRINT_SECRET = "fingerprint"


def card_context(token: str) -> KeyContext:
    """What a card's data key and ciphertext are bound to: its token."""
    return {"purpose": "card", "token": token}


def secret_context(name: str) -> KeyContext:
    """What a named vault secret's wrapped key is bound to."""
    return {"purpose": "secret", "name": name}


@dataclass(frozen=True)
class CardSecret:
    """What the vault seals: the full number and expiry (never in a repr)."""

    number: str = field(repr=False)
    exp_month: int = field(repr=False)
    exp_year: int = field(repr=False)


@dataclass(frozen=True)
class SealedCard:
    """A card as stored: sealed secret plus the three facts that may leave the vault."""

    envelope: Envelope
    last4: str
    brand: str
    fingerprint: str


class SecretStore(Protocol):
    """Named vault secrets (e.g. the fingerprint key), stored wrapped."""

    def load(self, name: str) -> WrappedKey | None:
        """The wrapped secret, or None."""

    def add(self, name: str, wrapped: WrappedKey) -> WrappedKey:
        """Store a secret unless one exists; the stored one (the first writer wins)."""


class CardVault:
    """Seals and opens cards with a key manager; one per process, thread-safe."""

    def __init__(self, kms: KeyManagement, secrets_store: SecretStore) -> None:
        self._kms = kms
        self._secrets = secrets_store
        self._fingerprint_key: bytes | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CardVault({self._kms!r})"

    @property
    def kms(self) -> KeyManagement:
        """The key manager (rotation uses it)."""
        return self._kms

    def seal(self, token: str, card: CardSecret) -> SealedCard:
        """Seal the card for ``token``; what is stored and what may be shown."""
        payload = json.dumps({"n": card.number, "m": card.exp_month, "y": card.exp_year})
        envelope = seal(payload.encode(), self._kms, card_context(token))
        return SealedCard(
            envelope=envelope,
            last4=card.number[-4:],
            brand=card_brand(card.number),
            fingerprint=self.fingerprint(card.number),
        )

    def open(self, token: str, envelope: Envelope) -> CardSecret:
        """The sealed card of ``token``; VaultError if it does not belong to it."""
        fields = json.loads(open_envelope(envelope, self._kms, card_context(token)))
        return CardSecret(str(fields["n"]), int(fields["m"]), int(fields["y"]))

    def fingerprint(self, number: str) -> str:
        """A stable keyed digest of a card number (same card, same fingerprint)."""
        digits = "".join(ch for ch in number if ch.isdigit())
        digest = hmac.new(self._key(), digits.encode(), hashlib.sha256).hexdigest()
        return "fp_" + digest[:40]

    def _key(self) -> bytes:
        if self._fingerprint_key is not None:
            return self._fingerprint_key
        with self._lock:
            if self._fingerprint_key is None:
                context = secret_context(FINGERPRINT_SECRET)
                stored = self._secrets.load(FINGERPRINT_SECRET)
                if stored is None:
                    fresh = self._kms.wrap(secrets.token_bytes(32), context)
                    stored = self._secrets.add(FINGERPRINT_SECRET, fresh)
                key = self._kms.unwrap(stored, context)
                if len(key) != 32:
                    raise VaultError("the vault's fingerprint key is corrupt")
                self._fingerprint_key = key
            return self._fingerprint_key
