"""Search's adapters from settings: tantivy under SOUK_HOME unless SOUK_SEARCH_URL is set."""

from __future__ import annotations

import threading
from collections.abc import Callable

from serving.search.model import FxTable
from serving.search.ports import Reranker, SearchIndex
from serving.search.service import SearchService
from serving.search.text import SYNONYMS_FILE, Synonyms
from souk.settings import Settings


def build_search_index(settings: Settings) -> SearchIndex:
    """Elasticsearch at SOUK_SEARCH_URL, else the embedded tantivy index."""
    if settings.search_url:
        from serving.search.elastic_index import ElasticSearchIndex

        return ElasticSearchIndex(settings.search_url, settings.regions, settings.fx_rates)
    from serving.search.tantivy_index import TantivySearchIndex

    return TantivySearchIndex(
        settings.state_dir / "search",
        settings.regions,
        settings.fx_rates,
        keep_versions=settings.search_keep_versions,
    )


def build_search_service(
    settings: Settings,
    index: SearchIndex,
    *,
    reranker_lookup: Callable[[], Reranker | None] | None = None,
) -> SearchService:
    """The search service over ``index`` with the settings' currencies and synonyms."""
    return SearchService(
        index=index,
        fx=FxTable(settings.fx_rates),
        synonyms=Synonyms.from_file(settings.search_synonyms_file or SYNONYMS_FILE),
        regions=settings.regions,
        default_region=settings.region,
        max_page_size=settings.search_max_page_size,
        vocabulary_ttl_s=settings.search_vocabulary_ttl_s,
        reranker_lookup=reranker_lookup,
    )


def indexer_thread(
    settings: Settings, index: SearchIndex, stop: threading.Event
) -> threading.Thread:
    """A daemon thread keeping ``index`` current from the topics until ``stop`` (not started).

    Popularity weighs views, carts and purchases as trending does (SOUK_TRENDING_WEIGHT_*).
    """
    from serving.search.indexer import PopularityWeights, index_forever
    from souk.stack.endpoints import resolve_url
    from transactional.shared.kafka import KafkaClientSettings

    kafka = KafkaClientSettings(
        bootstrap=resolve_url(settings, "kafka"),
        session_timeout_ms=settings.kafka_session_timeout_ms,
        fetch_wait_max_ms=settings.kafka_fetch_wait_max_ms,
        client_id="souk-search-indexer",
    )
    weights = PopularityWeights(
        view=settings.trending_weight_view,
        cart=settings.trending_weight_cart,
        purchase=settings.trending_weight_purchase,
    )
    return threading.Thread(
        target=index_forever,
        args=(index, settings.regions, kafka, stop),
        kwargs={"weights": weights, "replay_window_s": settings.search_replay_window_s},
        name="souk-search-indexer",
        daemon=True,
    )
