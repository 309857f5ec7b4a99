"""The card vault: card numbers stored only encrypted (AES-GCM envelopes, KMS-wrapped keys).

- :mod:`.kms` — the key manager port (wrap/unwrap by KEK version) and the vault's errors;
  adapters :mod:`.local_kms` (a key file or settings) and :mod:`.aws_kms` (production).
- :mod:`.envelope` — AES-GCM envelope encryption over the port.
- :mod:`.cards` — :class:`CardVault`: seals number and expiry; only last four, brand and a
  keyed fingerprint leave it.
- :mod:`.rotation` — a new KEK version and every data key re-wrapped, in committed batches.
- :mod:`.repository` — the PostgreSQL adapters.
"""
