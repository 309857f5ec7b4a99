"""Which events feed autosuggest and what each one adds (pure: envelope in, op out)."""

from __future__ import annotations

from schemas.envelope import Envelope
from serving.suggest.model import decay_factor, normalize
from serving.suggest.ports import Op, ProductViewedOp, QuerySeen, TitleChanged

# Longer "queries" are pasted text, not something to complete towards.
MAX_SUGGESTED_QUERY_CHARS = 80


def op_of(envelope: Envelope, half_life_days: float) -> Op | None:
    """The count-store op of an event, or None for events autosuggest ignores."""
    payload = envelope.payload
    event_id = str(envelope.event_id)
    kind = envelope.event_type
    if kind == "search.performed":
        # Only searches that found something: a query with no results is no suggestion.
        if int(payload.get("result_count") or 0) <= 0 or int(payload.get("page") or 1) != 1:
            return None
        text = normalize(str(payload.get("query") or ""))
        if not text or len(text) > MAX_SUGGESTED_QUERY_CHARS:
            return None
        increment = decay_factor(envelope.occurred_at, half_life_days)
        return QuerySeen(event_id, envelope.region, text, increment)
    if kind == "product.viewed":
        increment = decay_factor(envelope.occurred_at, half_life_days)
        return ProductViewedOp(event_id, str(payload["product_id"]), increment)
    if kind in ("product.created", "product.updated"):
        return TitleChanged(
            event_id,
            str(payload["product_id"]),
            int(payload["product_version"]),
            str(payload["title"]),
            payload.get("status", "active") == "active",
        )
    return None
