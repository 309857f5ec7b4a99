"""The admin metrics service: a reader per request, the headline computed from it."""

from __future__ import annotations

from collections.abc import Callable

from jobs.analytics.metrics import Window
from jobs.analytics.port import AnalyticsReader
from jobs.analytics.rates import RateTable
from jobs.analytics.report import Headline, headline
from souk.settings import Settings


class AnalyticsService:
    """Headline metrics over a window, read from the analytics store."""

    def __init__(self, open_reader: Callable[[], AnalyticsReader], rates: RateTable) -> None:
        # A reader per request: the local loader (and its endpoint) may start after `serve`.
        self._open_reader = open_reader
        self.rates = rates

    def metrics(self, window: Window) -> Headline:
        """The headline of ``window`` (AnalyticsUnavailable: no store answers → 503)."""
        reader = self._open_reader()
        try:
            return headline(reader, self.rates, window)
        finally:
            reader.close()


def build_analytics(settings: Settings) -> AnalyticsService:
    """The service over this home's loader endpoint, or ``SOUK_ANALYTICS_URL``."""
    from jobs.analytics import reader
    from jobs.analytics.rates import rate_table

    # Never the chdb folder itself: `souk serve` must not take it from the loader.
    return AnalyticsService(lambda: reader(settings, embedded=False), rate_table(settings))
