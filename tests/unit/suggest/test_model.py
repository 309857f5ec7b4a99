"""Autosuggest's pure domain: normalization, prefix ranges, typo tolerance, ranking."""

from __future__ import annotations

import random
from datetime import timedelta

from serving.suggest.model import (
    DECAY_EPOCH,
    Phrase,
    PrefixIndex,
    Sources,
    Vocabulary,
    decay_factor,
    decayed,
    edits1,
    normalize,
    suggest,
)


def _sources(*phrases: Phrase, hot_threshold: int = 256) -> Sources:
    index = PrefixIndex(phrases, hot_threshold=hot_threshold)
    return Sources([index], Vocabulary.of(phrases))


def _query(text: str, weight: float) -> Phrase:
    return Phrase(normalize(text), normalize(text), weight, "query")


def _product(title: str, weight: float, product_id: str) -> Phrase:
    return Phrase(normalize(title), title, weight, "product", product_id)


CATALOG = (
    _query("wireless headphones", 40),
    _query("wireless mouse", 25),
    _query("wired headphones", 30),
    _query("sunglasses", 12),
    _product("Acme Wireless Headphones X200", 5, "prd_1"),
    _product("Bolt Bluetooth Speaker", 8, "prd_2"),
    _product("Bolt Bluetooth Sneakers", 20, "prd_3"),
)


def test_normalize_folds_case_punctuation_and_spaces() -> None:
    assert normalize("  Wireless—HEADPHONES!!  (Pro) ") == "wireless headphones pro"
    assert normalize("\uff37\uff49\uff52\uff45") == "wire"  # NFKC: full-width letters
    assert normalize("?!") == ""


def test_prefix_ranks_by_weight_and_caps_at_k() -> None:
    found = suggest(_sources(*CATALOG), "wi")
    assert [s.text for s in found] == [
        "wireless headphones",
        "wired headphones",
        "wireless mouse",
        "Acme Wireless Headphones X200",
    ]
    assert not any(s.corrected for s in found)
    assert len(suggest(_sources(*CATALOG), "wi", k=2)) == 2


def test_a_later_word_matches_too() -> None:
    found = suggest(_sources(*CATALOG), "headph")
    assert [s.text for s in found] == [
        "wireless headphones",
        "wired headphones",
        "Acme Wireless Headphones X200",
    ]
    assert found[2].product_id == "prd_1" and found[2].kind == "product"


def test_typo_in_a_complete_word_and_in_the_last_prefix() -> None:
    sources = _sources(*CATALOG)
    assert suggest(sources, "wireles hea")[0].text == "wireless headphones"
    assert suggest(sources, "wireles hea")[0].corrected
    assert suggest(sources, "sunglas")[0].text == "sunglasses"  # a plain prefix, no typo
    assert suggest(sources, "sungls")[0].text == "sunglasses"  # one deletion in the prefix
    assert suggest(sources, "xyzzy") == []


def test_fewer_fixes_rank_first() -> None:
    # "spea" is a true prefix of "speaker"; "snea" would need a second fix: speaker wins
    # although the sneakers are more popular.
    found = suggest(_sources(*CATALOG), "blutooth spea")
    assert found[0].text == "Bolt Bluetooth Speaker"


def test_trailing_space_completes_the_next_word() -> None:
    found = suggest(_sources(*CATALOG), "wireless ")
    assert [s.text for s in found] == [
        "wireless headphones",
        "wireless mouse",
        "Acme Wireless Headphones X200",
    ]
    # "wire " is a whole word: not a prefix of "wireless"; its one-edit fix "wired" is.
    assert [s.text for s in suggest(_sources(*CATALOG), "wire ")] == ["wired headphones"]


def test_duplicates_across_sources_keep_the_best() -> None:
    base = PrefixIndex([_query("tent", 3)])
    overlay = PrefixIndex([_query("tent", 9)])
    sources = Sources(
        [base, overlay], Vocabulary.of([_query("tent", 1)]), hidden={0: frozenset({"tent"})}
    )
    found = suggest(sources, "te")
    assert len(found) == 1 and found[0].weight == 9


def test_hot_prefix_table_agrees_with_a_scan() -> None:
    rng = random.Random(7)
    words = ["alpha", "alps", "beta", "bet", "gamma", "game", "garden", "gate"]
    phrases = {}
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 4)))
        phrases[text] = _query(text, rng.random() * 100)
    index = PrefixIndex(list(phrases.values()), hot_threshold=50)
    assert index.hot, "the test needs prefixes over the threshold"
    for prefix in ["a", "al", "ga", "gam", "game ", "beta alpha", "z"]:
        expected = sorted(
            (p for p in phrases.values() if any(k.startswith(prefix) for k in _suffixes(p.text))),
            key=lambda p: (-p.weight, p.text),
        )[:10]
        got = [index.phrases[i] for i in index.lookup(prefix, 10)]
        assert [p.text for p in got] == [p.text for p in expected], prefix


def _suffixes(text: str) -> list[str]:
    words = text.split()
    return [" ".join(words[i:]) for i in range(min(3, len(words)))]


def test_edits1_covers_the_four_kinds() -> None:
    variants = edits1("abc", "abcx")
    assert {"bc", "bac", "xbc", "abxc"} <= variants
    assert "abc" not in variants


def test_decay_halves_per_half_life() -> None:
    later = DECAY_EPOCH + timedelta(days=14)
    assert decay_factor(later, 14) == 2.0
    assert decayed(decay_factor(DECAY_EPOCH, 14), later, 14) == 0.5
    assert decay_factor(later, 0) == 1.0
