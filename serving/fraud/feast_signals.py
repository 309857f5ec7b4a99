"""The Feast adapter of :class:`~serving.fraud.ports.SignalStore`: one online read per score.

It reads the streaming fraud views (and the model's batch features) with Feast's own
``get_online_features`` on the process's cached ``FeatureStore`` (``features.store``), one
call for every view the request has keys for, with the rows' event times. A view that is not
registered (``souk features apply`` or the fraud job never ran) is simply not read; an online
store that cannot be read gives ``Signals(available=False)``: the checkout is then scored on
its own facts (fail open: an outage of the feature store must not stop every sale).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from serving.fraud.model import RULE_REFS, ScoreRequest, Signals
from souk.settings import Settings

log = logging.getLogger(__name__)

#: Feast's suffix of a feature's event time in ``to_dict(include_event_timestamps=True)``.
TIMESTAMP_SUFFIX = "__ts"
#: At most one warning about an unreadable store this often (seconds).
WARN_EVERY_S = 30.0


def entity_keys(request: ScoreRequest) -> dict[str, str]:
    """The request's join keys that are known."""
    keys = {
        "customer_id": request.customer_id,
        "instrument_id": request.instrument_id,
        "device_id": request.device_id,
        "client_ip": request.client_ip,
    }
    return {name: value for name, value in keys.items() if value}


class FeastSignals:
    """Stored fraud signals through Feast's ``get_online_features`` (Redis online store)."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self._settings = settings
        self._redis_url = redis_url
        self._warned_at = float("-inf")

    def read(self, request: ScoreRequest, extra_refs: Sequence[str] = ()) -> Signals:
        """The rules' features and ``extra_refs`` of the request's entities."""
        try:
            return self._read(request, extra_refs)
        except Exception:  # any store failure: score without stored signals, say so
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning(
                    "fraud: online features unreadable; scoring without them", exc_info=True
                )
            return Signals(available=False)

    def warm(self) -> None:
        """Import Feast and open the store ahead of the first score (seconds of imports that
        ``souk serve`` should not wait for: call it from a background thread)."""
        try:
            self._store()
        except Exception:
            log.warning("fraud: the feature store could not be opened yet", exc_info=True)

    def _store(self) -> Any:
        # Imported on first use: Feast takes seconds to import, the server starts without it.
        from features.store import cached_feature_store

        return cached_feature_store(self._settings, self._redis_url)

    def _read(self, request: ScoreRequest, extra_refs: Sequence[str]) -> Signals:
        store = self._store()
        views = {fv.name: fv for fv in store.list_feature_views(allow_cache=True)}
        keys = entity_keys(request)
        refs: list[str] = []
        needed: set[str] = set()
        for ref in dict.fromkeys((*RULE_REFS, *extra_refs)):
            view = views.get(ref.split(":", 1)[0])
            if view is None or not set(view.join_keys) <= keys.keys():
                continue  # not registered, or keyed by something the request lacks
            refs.append(ref)
            needed.update(view.join_keys)
        if not refs:
            return Signals(available=bool(views))
        response = store.get_online_features(
            features=refs,
            entity_rows=[{name: keys[name] for name in sorted(needed)}],
            full_feature_names=True,
        ).to_dict(include_event_timestamps=True)
        return signals_of(response, refs)


def signals_of(response: dict[str, list[Any]], refs: Sequence[str]) -> Signals:
    """:class:`Signals` of a one-row ``to_dict(include_event_timestamps=True)`` answer."""
    values: dict[str, Any] = {}
    stamps: dict[str, datetime | None] = {}
    for ref in refs:
        view = ref.split(":", 1)[0]
        name = ref.replace(":", "__")
        values[name] = (response.get(name) or [None])[0]
        seconds = (response.get(name + TIMESTAMP_SUFFIX) or [0])[0]
        if seconds and values[name] is not None:
            stamp = datetime.fromtimestamp(float(seconds), tz=UTC)
            stamps[view] = max(stamp, stamps.get(view) or stamp)
        else:
            stamps.setdefault(view, None)
    return Signals(values=values, stamps=stamps)
