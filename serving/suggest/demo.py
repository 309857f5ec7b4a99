"""Lines for `make demo`'s summary: what autosuggest completes a few prefixes to."""

from __future__ import annotations

from collections.abc import Sequence

from serving.suggest.model import round_weight
from serving.suggest.service import SuggestService


def demo_lines(
    service: SuggestService, prefixes: Sequence[str], region: str | None = None, per_prefix: int = 5
) -> list[str]:
    """One line per prefix: its top suggestions with kind and score (``~`` marks a typo fix)."""
    service.refresh()  # the counts the consumer wrote a moment ago
    lines: list[str] = []
    for prefix in prefixes:
        found = service.suggest(prefix, region, per_prefix)
        shown = ", ".join(
            f"{'~' if s.corrected else ''}{s.text} ({s.kind} {round_weight(s.weight):g})"
            for s in found
        )
        lines.append(f"{prefix!r} → {shown or 'no suggestion'}")
    return lines
