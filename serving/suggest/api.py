"""HTTP controller of autosuggest: ``GET /v1/suggest?q=&region=&limit=``."""

from __future__ import annotations

import time
from typing import Annotated

from litestar import Controller, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_200_OK

from serving.suggest.model import MAX_QUERY_CHARS, MAX_SUGGESTIONS
from serving.suggest.schemas import (
    QUERY_EXAMPLES,
    REGION_EXAMPLES,
    SUGGEST_EXAMPLES,
    SuggestionOut,
    SuggestOut,
)
from serving.suggest.service import SuggestService
from transactional.shared.http import Inject


class SuggestController(Controller):
    """/v1/suggest: completions of what a shopper is typing."""

    path = "/v1/suggest"
    tags = ("suggest",)

    @get(
        "/",
        sync_to_thread=False,  # memory only: no I/O, microseconds; a thread hop would cost more
        responses={
            HTTP_200_OK: ResponseSpec(
                SuggestOut,
                description="Suggestions, best first.",
                examples=SUGGEST_EXAMPLES,
                generate_examples=False,
            )
        },
    )
    def suggest(
        self,
        suggest: Inject[SuggestService],
        q: Annotated[
            str,
            QueryParameter(
                min_length=1,
                max_length=MAX_QUERY_CHARS,
                description="What the user typed so far; the last word may be incomplete.",
                examples=QUERY_EXAMPLES,
            ),
        ],
        region: Annotated[
            str | None,
            QueryParameter(
                max_length=16,
                description="Region whose searches rank the suggestions (default: this server's).",
                examples=REGION_EXAMPLES,
            ),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_SUGGESTIONS)] = MAX_SUGGESTIONS,
    ) -> SuggestOut:
        """Prefix completions from popular past queries and product titles, weighted by
        popularity, tolerating one typo per word; 422 ``unknown_region`` for a region we do
        not serve, 400 for an empty or over-long ``q``."""
        started = time.perf_counter()
        found = suggest.suggest(q, region, limit)
        return SuggestOut(
            query=q,
            region=(region or suggest.config.default_region).lower(),
            suggestions=[SuggestionOut.of(s) for s in found],
            took_ms=round((time.perf_counter() - started) * 1000, 3),
        )


ROUTES = [SuggestController]
