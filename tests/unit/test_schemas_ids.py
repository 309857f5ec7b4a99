"""UUIDv7 and prefixed ids: layout bits, time ordering, uniqueness, round-trips."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import pytest

from schemas.ids import CROCKFORD_ALPHABET, new_id, parse_id, uuid7, uuid7_time_ms


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    value = uuid7()
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert (value.int >> 76) & 0xF == 7
    assert (value.int >> 62) & 0b11 == 0b10


def test_uuid7_embeds_the_current_unix_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    # The counter may borrow a millisecond or two under bursts, never more.
    assert before <= uuid7_time_ms(value) <= after + 2


def test_10k_uuid7_are_unique_and_strictly_increasing_in_creation_order() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(a.int < b.int for a, b in itertools.pairwise(ids))
    # Text order matches too (what databases and logs compare).
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)


def test_uuid7_is_unique_across_threads() -> None:
    results: list[list[uuid.UUID]] = [[] for _ in range(8)]

    def work(bucket: list[uuid.UUID]) -> None:
        bucket.extend(uuid7() for _ in range(2_000))

    threads = [threading.Thread(target=work, args=(bucket,)) for bucket in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [value for bucket in results for value in bucket]
    assert len(set(everything)) == len(everything)
    for bucket in results:
        assert bucket == sorted(bucket)  # per-thread order is creation order as well


def test_uuid7_time_ms_rejects_other_versions() -> None:
    with pytest.raises(ValueError, match="not a UUIDv7"):
        uuid7_time_ms(uuid.uuid4())


def test_new_id_shape() -> None:
    value = new_id("ord")
    prefix, body = value.split("_")
    assert prefix == "ord"
    assert len(body) == 26
    assert set(body) <= set(CROCKFORD_ALPHABET)
    assert new_id("ord_").startswith("ord_") and "__" not in new_id("ord_")


def test_new_ids_sort_in_creation_order_and_are_unique() -> None:
    ids = [new_id("evt") for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_parse_id_round_trips_to_a_uuid7() -> None:
    value = new_id("pay")
    prefix, parsed = parse_id(value)
    assert prefix == "pay"
    assert parsed.version == 7
    assert parse_id(value.lower()) == (prefix, parsed)  # Crockford is case-insensitive


@pytest.mark.parametrize("prefix", ["", "Ord", "1ab", "a-b", "x" * 17])
def test_new_id_rejects_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id(prefix)


@pytest.mark.parametrize("value", ["ord", "ord_123", "ord_" + "U" * 26, "ord_" + "Z" * 26])
def test_parse_id_rejects_garbage(value: str) -> None:
    with pytest.raises(ValueError):
        parse_id(value)
