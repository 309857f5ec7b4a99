"""Query understanding, pure: synonyms from a file and spelling correction from a vocabulary."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from serving.search.model import MAX_QUERY_TOKENS, STOPWORDS, TermGroup, tokens

SYNONYMS_FILE = Path(__file__).with_name("synonyms.txt")


class Synonyms:
    """Equivalent words, one group per line (``headphones, headset, earphones``)."""

    def __init__(self, groups: Iterable[Iterable[str]]) -> None:
        self._of: dict[str, tuple[str, ...]] = {}
        for group in groups:
            words = [w for w in dict.fromkeys(word for g in group for word in tokens(g))]
            for word in words:
                merged = dict.fromkeys([*self._of.get(word, ()), *words])
                self._of[word] = tuple(w for w in merged if w != word)

    @classmethod
    def from_file(cls, path: Path) -> Synonyms:
        """Read ``path``: comma-separated single words per line, ``#`` starts a comment."""
        groups = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                groups.append([part.strip() for part in line.split(",") if part.strip()])
        return cls(groups)

    def of(self, word: str) -> tuple[str, ...]:
        """The other words of ``word``'s group (empty when it has none)."""
        return self._of.get(word, ())


def edit_distance(a: str, b: str, limit: int = 3) -> int:
    """Damerau-Levenshtein distance (adjacent transpositions), capped at ``limit``."""
    if abs(len(a) - len(b)) >= limit:
        return limit
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) >= limit:
            return limit
        previous2, previous = previous, current
    return min(previous[-1], limit)


class Speller:
    """Corrects a word to the most frequent vocabulary word within two edits (or completes it).

    Candidates come from single-deletion keys (SymSpell): a word and a vocabulary entry that
    share a key are within two edits; the real distance then decides.
    """

    def __init__(self, vocabulary: Mapping[str, int]) -> None:
        self._freq = dict(vocabulary)
        self._keys: dict[str, list[str]] = {}
        for word in self._freq:
            if len(word) >= 3 and not word.isdigit():
                for key in _deletes(word):
                    self._keys.setdefault(key, []).append(word)
        self._sorted = sorted(w for w in self._freq if len(w) >= 3)

    def __len__(self) -> int:
        return len(self._freq)

    def correct(self, word: str) -> str | None:
        """The vocabulary word meant by ``word`` (itself if known); None when nothing is near."""
        if word in self._freq:
            return word
        if len(word) < 3 or word.isdigit():
            return None
        limit = 1 if len(word) <= 4 else 2
        best: tuple[int, int, str] | None = None
        for candidate in {c for key in _deletes(word) for c in self._keys.get(key, ())}:
            distance = edit_distance(word, candidate, limit + 1)
            if distance <= limit:
                rank = (distance, -self._freq[candidate], candidate)
                best = rank if best is None or rank < best else best
        if best is not None:
            return best[2]
        return self.complete(word) if len(word) >= 4 else None

    def complete(self, prefix: str) -> str | None:
        """The most frequent vocabulary word starting with ``prefix``."""
        from bisect import bisect_left

        start = bisect_left(self._sorted, prefix)
        best: str | None = None
        for word in self._sorted[start : start + 200]:
            if not word.startswith(prefix):
                break
            if best is None or self._freq[word] > self._freq[best]:
                best = word
        return best


def _deletes(word: str) -> set[str]:
    return {word, *(word[:i] + word[i + 1 :] for i in range(len(word)))}


class Corrector(Protocol):
    """What ``understand`` needs of a speller."""

    def correct(self, word: str) -> str | None:
        """The vocabulary word meant by ``word``, or None."""
        ...


@dataclass(frozen=True)
class Understood:
    """The query as the engine will run it and as the shopper should see it."""

    groups: tuple[TermGroup, ...]
    text: str  # the corrected query, words joined by spaces
    corrected: bool


def understand(
    q: str, speller: Corrector, known: Callable[[str], bool], synonyms: Synonyms
) -> Understood:
    """Words of ``q`` → term groups: correction, synonyms, fuzzy fallback, prefix on the last.

    ``known`` answers from the live index (the speller's vocabulary may be a little stale, and a
    word a product just brought must not be "corrected" away).
    """
    words = tokens(q)[:MAX_QUERY_TOKENS]
    groups: list[TermGroup] = []
    shown: list[str] = []
    corrected = False
    for position, word in enumerate(words):
        last = position == len(words) - 1
        if word in STOPWORDS and len(words) > 1:
            shown.append(word)
            continue
        # A word of the synonym file is meant as typed, even if no product uses it.
        is_known = known(word) or word.isdigit() or bool(synonyms.of(word))
        meant = word if is_known else speller.correct(word)
        if meant is not None and meant != word:
            corrected = True
        chosen = meant or word
        shown.append(chosen)
        alternatives = tuple(dict.fromkeys([chosen, *synonyms.of(chosen)]))
        groups.append(
            TermGroup(
                terms=alternatives if meant is not None else (),
                # Known words match exactly; an unknown one also near itself, and when last,
                # as the start of a longer word (the shopper may not have finished typing).
                fuzzy=None if is_known or len(word) < 4 else word,
                prefix=last and not is_known,
                required=meant is not None,
            )
        )
    return Understood(tuple(groups), " ".join(shown), corrected)
