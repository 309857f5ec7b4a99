"""The edge of autosuggest: response bodies (msgspec) and their OpenAPI examples."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar.openapi.spec import Example

from serving.suggest.model import Suggestion, round_weight


class SuggestionOut(msgspec.Struct, kw_only=True):
    """One suggestion: the text to show, where it comes from, and why it ranks."""

    text: str
    kind: Literal["query", "product"]
    product_id: str | None = None
    score: float
    corrected: bool  # matched only after fixing a typo

    @classmethod
    def of(cls, suggestion: Suggestion) -> SuggestionOut:
        """The body of a domain suggestion."""
        return cls(
            text=suggestion.text,
            kind=suggestion.kind,
            product_id=suggestion.product_id,
            score=round_weight(suggestion.weight),
            corrected=suggestion.corrected,
        )


class SuggestOut(msgspec.Struct, kw_only=True):
    """Suggestions for a prefix, best first (at most 10)."""

    query: str
    region: str
    suggestions: list[SuggestionOut]
    took_ms: float


SUGGEST_EXAMPLES = [
    Example(
        summary="Completing a misspelled prefix",
        description="`GET /v1/suggest?q=wireles%20hea&region=eu`: the first word is corrected.",
        value={
            "query": "wireles hea",
            "region": "eu",
            "suggestions": [
                {
                    "text": "wireless headphones",
                    "kind": "query",
                    "product_id": None,
                    "score": 42.7,
                    "corrected": True,
                },
                {
                    "text": "Acme Wireless Headphones X200",
                    "kind": "product",
                    "product_id": "prd_07_01JD5B3Q0S3M1A6T9V2W4X8Y7Z",
                    "score": 13.0,
                    "corrected": True,
                },
            ],
            "took_ms": 0.31,
        },
    )
]
QUERY_EXAMPLES = [Example(summary="A prefix", value="wireless hea")]
REGION_EXAMPLES = [Example(summary="Europe", value="eu")]
