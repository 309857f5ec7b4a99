"""The argon2id adapter of the PasswordHasher port."""

from __future__ import annotations

from transactional.customers.passwords import Argon2Passwords


def test_argon2id_hashes_are_salted_and_verify() -> None:
    passwords = Argon2Passwords(time_cost=1, memory_cost_kib=1024)
    first, second = passwords.hash("s3cret pass"), passwords.hash("s3cret pass")
    assert first.startswith("$argon2id$") and first != second
    assert passwords.verify(first, "s3cret pass")
    assert not passwords.verify(first, "S3cret pass")
    assert not passwords.verify("not-a-hash", "s3cret pass")
