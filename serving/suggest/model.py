"""Autosuggest's pure domain: normalization, the prefix index, typo tolerance and ranking.

A suggestion is a phrase (a past query or a product title) with a weight (how often it was
searched, or the product's popularity). The index holds each phrase under the suffixes that
start at its first tokens ("acme wireless headphones" also as "wireless headphones"), sorted,
so a prefix is one ``bisect`` range; the best weights of a range come from numpy (small
ranges) or from a table precomputed for the prefixes with many matches (short ones).
No I/O here: adapters feed phrases in, the service swaps built indexes in atomically.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

Kind = Literal["query", "product"]

MAX_QUERY_CHARS = 200
MAX_SUGGESTIONS = 10
_END = "\U0010ffff"  # sorts after every character: the upper bound of a prefix range
_NOT_WORD = re.compile(r"[^\w]+|_+")
# Recency decay counts an event at time t as 2^((t - EPOCH) / half-life); scores are divided
# by the same factor at read time, so only ratios matter and no stored score is ever rewritten.
DECAY_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def normalize(text: str) -> str:
    """Lowercase words separated by one space (NFKC, punctuation dropped), at most 200 chars."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())[:MAX_QUERY_CHARS].strip()


def tokens(text: str) -> list[str]:
    """The words of an already normalized phrase."""
    return text.split()


def decay_factor(at: datetime, half_life_days: float) -> float:
    """What one event at ``at`` adds to a decayed count (1.0 when decay is off)."""
    if half_life_days <= 0:
        return 1.0
    days = (at - DECAY_EPOCH).total_seconds() / 86400
    return float(2.0 ** (days / half_life_days))


def decayed(score: float, now: datetime, half_life_days: float) -> float:
    """A stored decayed count as of ``now`` (events of ``now`` weigh 1)."""
    return score / decay_factor(now, half_life_days)


@dataclass(frozen=True, slots=True)
class Phrase:
    """A suggestion candidate: its normalized text, what to show, weight and origin."""

    text: str
    display: str
    weight: float
    kind: Kind
    product_id: str | None = None


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One ranked suggestion; ``corrected`` when it matched only after a typo fix."""

    text: str
    kind: Kind
    weight: float
    product_id: str | None
    corrected: bool


class PrefixIndex:
    """Phrases under their token-start suffixes, sorted; the best phrases of a prefix fast."""

    def __init__(
        self,
        phrases: Sequence[Phrase],
        *,
        max_suffixes: int = 3,
        hot_threshold: int = 256,
        cached: int = 2 * MAX_SUGGESTIONS,
    ) -> None:
        self.phrases = list(phrases)
        self.max_suffixes = max_suffixes
        self.hot_threshold = hot_threshold
        self.cached = cached
        keys: list[str] = []
        owners: list[int] = []
        for number, phrase in enumerate(self.phrases):
            text = phrase.text
            keys.append(text)
            owners.append(number)
            start = 0
            for _ in range(max_suffixes - 1):  # the suffixes after the next spaces
                start = text.find(" ", start) + 1
                if start == 0:
                    break
                keys.append(text[start:])
                owners.append(number)
        order = sorted(range(len(keys)), key=keys.__getitem__)
        self.keys: list[str] = [keys[i] for i in order]
        self.owner: npt.NDArray[np.int64] = np.asarray(owners, dtype=np.int64)[
            np.asarray(order, dtype=np.int64)
        ]
        weights = np.asarray([p.weight for p in self.phrases], dtype=np.float64)
        self.weights: npt.NDArray[np.float64] = (
            weights[self.owner] if keys else np.zeros(0, dtype=np.float64)
        )
        self.hot: dict[str, list[int]] = {}
        self._precompute_hot()

    def __len__(self) -> int:
        return len(self.phrases)

    def range_of(self, prefix: str) -> tuple[int, int]:
        """The keys starting with ``prefix``, as [lo, hi)."""
        return bisect_left(self.keys, prefix), bisect_left(self.keys, prefix + _END)

    def best(self, lo: int, hi: int, k: int) -> list[int]:
        """The ``k`` best distinct phrases of keys [lo, hi), by weight then text."""
        if hi <= lo:
            return []
        # A phrase has at most max_suffixes keys in a range: that many times k keys suffice.
        want = min(hi - lo, k * self.max_suffixes)
        weights = self.weights[lo:hi]
        if hi - lo > want:
            top = np.argpartition(-weights, want - 1)[:want]
            top = top[np.lexsort((top, -weights[top]))]
        else:
            top = np.lexsort((np.arange(hi - lo), -weights))
        chosen: list[int] = []
        seen: set[int] = set()
        for position in top.tolist():
            number = int(self.owner[lo + position])
            if number not in seen:
                seen.add(number)
                chosen.append(number)
                if len(chosen) == k:
                    break
        return chosen

    def lookup(self, prefix: str, k: int) -> list[int]:
        """Indexes into ``phrases`` of the ``k`` best phrases with a suffix starting ``prefix``."""
        lo, hi = self.range_of(prefix)
        if hi - lo > self.hot_threshold and k <= self.cached:
            cached = self.hot.get(prefix)
            if cached is not None:
                return cached[:k]
        return self.best(lo, hi, k)

    def _precompute_hot(self) -> None:
        """Best phrases of every prefix matching more than ``hot_threshold`` keys.

        Splits each hot range by its next character with bisect, so the work is one numpy
        selection per hot prefix, not a pass over every key per character.
        """
        keys = self.keys
        todo = [("", 0, len(keys))] if len(keys) > self.hot_threshold else []
        while todo:
            prefix, lo, hi = todo.pop()
            if prefix:
                self.hot[prefix] = self.best(lo, hi, self.cached)
            depth = len(prefix)
            start = lo
            while start < hi and len(keys[start]) <= depth:
                start += 1  # the key equal to the prefix itself
            while start < hi:
                child = keys[start][: depth + 1]
                end = bisect_left(keys, child + _END, start, hi)
                if end - start > self.hot_threshold:
                    todo.append((child, start, end))
                start = end


@dataclass(frozen=True)
class Vocabulary:
    """The words of every phrase, for typo correction: a set, a sorted list and counts."""

    words: frozenset[str]
    ordered: tuple[str, ...]
    counts: Mapping[str, int]
    alphabet: str

    @classmethod
    def of(cls, phrases: Iterable[Phrase]) -> Vocabulary:
        """The vocabulary of ``phrases``."""
        counts: dict[str, int] = {}
        for phrase in phrases:
            for word in tokens(phrase.text):
                counts[word] = counts.get(word, 0) + 1
        letters = sorted({char for word in counts for char in word})
        return cls(frozenset(counts), tuple(sorted(counts)), counts, "".join(letters))

    def merged(self, other: Vocabulary) -> Vocabulary:
        """Both vocabularies in one (a base and a small overlay)."""
        if not other.words:
            return self
        counts = dict(self.counts)
        for word, count in other.counts.items():
            counts[word] = counts.get(word, 0) + count
        letters = "".join(sorted(set(self.alphabet) | set(other.alphabet)))
        return Vocabulary(frozenset(counts), tuple(sorted(counts)), counts, letters)

    def starts(self, prefix: str) -> int:
        """How many words start with ``prefix``."""
        return bisect_left(self.ordered, prefix + _END) - bisect_left(self.ordered, prefix)


def edits1(word: str, alphabet: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion away."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    transposes = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in alphabet}
    inserts = {a + c + b for a, b in splits for c in alphabet}
    return (deletes | transposes | replaces | inserts) - {word}


def corrections(word: str, vocabulary: Vocabulary, limit: int = 2) -> list[str]:
    """Known words for a complete word: itself if known, else the commonest one edit away."""
    if word in vocabulary.words or len(word) < 4:
        return [word]
    near = edits1(word, vocabulary.alphabet) & vocabulary.words
    ranked = sorted(near, key=lambda w: (-vocabulary.counts[w], w))[:limit]
    return ranked or [word]


def prefix_corrections(partial: str, vocabulary: Vocabulary, limit: int = 4) -> list[str]:
    """Prefixes one edit from a partial last word that start some known word, best first."""
    if len(partial) < 3:
        return []
    found = [
        (vocabulary.starts(variant), variant)
        for variant in edits1(partial, vocabulary.alphabet)
        if len(variant) >= 2
    ]
    found = [(count, variant) for count, variant in found if count]
    return [variant for _, variant in heapq.nlargest(limit, found)]


@dataclass(frozen=True)
class Sources:
    """What one region's suggestions are drawn from; each index answers a prefix."""

    indexes: Sequence[PrefixIndex]
    vocabulary: Vocabulary
    # Phrases whose current version lives in a later index (an overlay), or that are gone.
    hidden: Mapping[int, frozenset[str]] = field(default_factory=dict)


def suggest(sources: Sources, query: str, k: int = MAX_SUGGESTIONS) -> list[Suggestion]:
    """Up to ``k`` completions of ``query``: exact prefix matches first, by weight; then, to
    fill up, matches after fixing one typo in any word (the last one as a prefix)."""
    text = normalize(query)
    if not text or k <= 0:
        return []
    # "wireless " (a trailing space) completes the next word, not "wireless" itself.
    complete = query[-1:].isspace()
    words = tokens(text)
    exact = _gather(sources, [text + " " if complete else text], k, corrected=False)
    if len(exact) >= k:
        return exact[:k]
    heads = [corrections(word, sources.vocabulary) for word in (words if complete else words[:-1])]
    lasts = [""] if complete else [words[-1], *prefix_corrections(words[-1], sources.vocabulary)]
    # Fewer fixed words first: "blutooth spea" → "bluetooth spea…" before "bluetooth snea…".
    tiers: dict[int, list[str]] = {}
    typed = [*(words if complete else words[:-1]), "" if complete else words[-1]]
    for combo in itertools.islice(itertools.product(*heads, lasts), 16):
        edits = sum(1 for fixed, word in zip(combo, typed, strict=True) if fixed != word)
        variant = " ".join(combo[:-1]) + (" " + combo[-1] if combo[-1] else " ")
        variant = variant.lstrip()
        if edits and variant.strip():
            tiers.setdefault(edits, []).append(variant)
    found = exact
    seen = {s.text for s in exact}
    for edits in sorted(tiers):
        for suggestion in _gather(sources, tiers[edits], k, corrected=True):
            if suggestion.text not in seen:
                seen.add(suggestion.text)
                found.append(suggestion)
        if len(found) >= k:
            break
    return found[:k]


def _gather(
    sources: Sources, prefixes: Sequence[str], k: int, *, corrected: bool
) -> list[Suggestion]:
    """The best ``k`` distinct phrases matching any of ``prefixes`` across the indexes."""
    best: dict[str, Suggestion] = {}
    for number, index in enumerate(sources.indexes):
        hidden = sources.hidden.get(number, frozenset())
        for prefix in prefixes:
            for found in index.lookup(prefix, k + min(len(hidden), k)):
                phrase = index.phrases[found]
                if phrase.text in hidden or (phrase.product_id or "") in hidden:
                    continue
                held = best.get(phrase.text)
                if held is None or phrase.weight > held.weight:
                    best[phrase.text] = Suggestion(
                        phrase.display, phrase.kind, phrase.weight, phrase.product_id, corrected
                    )
    return sorted(best.values(), key=lambda s: (-s.weight, s.text))[:k]


def product_weight(views: float, base: float) -> float:
    """A product title's weight: a base (every listed product can be suggested) plus views."""
    return base + max(views, 0.0)


def round_weight(weight: float) -> float:
    """A weight for display (3 significant decimals)."""
    return 0.0 if weight <= 0 or math.isnan(weight) else round(weight, 3)
