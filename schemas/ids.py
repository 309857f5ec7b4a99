"""Time-ordered identifiers: RFC 9562 UUIDv7 and prefixed, readable ids built on them.

Time ordering matters for us: ids are primary keys in append-only stores (orders in
Cassandra, the outbox) and Kafka keys, so ids created later sort later and B-tree /
SSTable inserts stay append-mostly instead of random.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid

__all__ = ["CROCKFORD_ALPHABET", "new_id", "parse_id", "uuid7", "uuid7_time_ms"]

# Crockford base32: no I, L, O, U (avoids misreading ids over the phone); the alphabet is
# in ASCII order, so the encoded text sorts exactly like the 128-bit integer.
CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {char: index for index, char in enumerate(CROCKFORD_ALPHABET)}
_ENCODED_LEN = 26  # ceil(128 / 5)
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")

_COUNTER_BITS = 12  # rand_a is used as a dedicated counter (RFC 9562 section 6.2, method 1)
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
# Seed each new millisecond's counter below half its range so a burst in that millisecond
# still has >= 2048 increments of headroom before it must borrow the next millisecond.
_COUNTER_SEED_BITS = _COUNTER_BITS - 1

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bytes drawn from the OS in blocks: one getrandom() syscall per ~400 ids instead of
# two per id. A syscall releases the GIL, and inside the lock that made every id a convoy
# of threads when many request threads mint ids at once.
_RANDOM_BLOCK = 4096
_random = b""
_used = 0


def _reset_after_fork() -> None:
    # A forked child must not continue the parent's (ms, counter) sequence nor reuse its
    # random bytes: re-seed lazily.
    global _last_ms, _counter, _random, _used
    _last_ms = 0
    _counter = 0
    _random, _used = b"", 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def uuid7() -> uuid.UUID:
    """Return a new RFC 9562 UUIDv7, strictly increasing within this process."""
    global _last_ms, _counter, _random, _used
    with _lock:
        if _used + 10 > len(_random):
            _random, _used = os.urandom(_RANDOM_BLOCK), 0
        drawn = _random[_used : _used + 10]
        _used += 10
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = int.from_bytes(drawn[:2], "big") >> (16 - _COUNTER_SEED_BITS)
        else:
            # Same millisecond, or the wall clock stepped backwards: keep counting from the
            # last issued value so ordering holds; on overflow borrow the next millisecond.
            _counter += 1
            if _counter > _COUNTER_MAX:
                _last_ms += 1
                _counter = 0
        timestamp_ms = _last_ms
        counter = _counter
    rand_b = int.from_bytes(drawn[2:], "big") & ((1 << 62) - 1)
    value = (
        (timestamp_ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76  # version 7
        | counter << 64
        | 0b10 << 62  # RFC 9562 variant
        | rand_b
    )
    return uuid.UUID(int=value)


def uuid7_time_ms(value: uuid.UUID) -> int:
    """Return the unix-millisecond timestamp embedded in a UUIDv7."""
    if value.version != 7:
        raise ValueError(f"not a UUIDv7: {value}")
    return value.int >> 80


def _encode(value: int) -> str:
    chars = []
    for _ in range(_ENCODED_LEN):
        chars.append(CROCKFORD_ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """Return ``"<prefix>_" + 26-char Crockford base32 of a uuid7``, e.g. ``new_id("ord")``."""
    # Accept "ord_" as well as "ord": callers disagree on whether the separator is theirs.
    bare = prefix[:-1] if prefix.endswith("_") else prefix
    if not _PREFIX_RE.match(bare):
        raise ValueError(f"id prefix must match {_PREFIX_RE.pattern!r}, got {prefix!r}")
    return f"{bare}_{_encode(uuid7().int)}"


def parse_id(value: str) -> tuple[str, uuid.UUID]:
    """Split an id made by :func:`new_id` into its prefix and UUID (raises ValueError)."""
    prefix, sep, body = value.rpartition("_")
    if not sep or not _PREFIX_RE.match(prefix) or len(body) != _ENCODED_LEN:
        raise ValueError(f"not a prefixed id: {value!r}")
    number = 0
    for char in body.upper():
        digit = _DECODE.get(char)
        if digit is None:
            raise ValueError(f"invalid base32 character {char!r} in id {value!r}")
        number = number << 5 | digit
    if number >> 128:
        raise ValueError(f"id {value!r} does not encode a 128-bit value")
    return prefix, uuid.UUID(int=number)
