"""Simulated shoppers on the real serving endpoints: search ids and served lists come back.

Its own app over the session's PostgreSQL and Redis, with its own SOUK_HOME (its own search
index, rebuilt from the seeded catalog, and its own model registry, with an item-vector index
over the seeded products promoted), served by uvicorn on loopback.
"""

from __future__ import annotations

import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from models.registry import ModelRegistry
from schemas.registry import REGISTRY, topic_for
from serving.app import create_app
from serving.recommendations.bench import promote_models, synthetic_models
from serving.search.reindex import reindex
from souk.demo_serving import drain_activity, online_lines
from souk.seed import CatalogPlan, SeededCatalog, seed_catalog
from souk.services import Services, build_services
from souk.settings import Settings
from souk.simulation import SimulationConfig, SimulationReport, run_simulation
from souk.stack.endpoints import Endpoints
from souk.stack.homes import temporary_home
from souk.synthetic import SyntheticWorld
from souk.wiring import build_relay
from tests.integration.http import admin_headers, serve_in_thread
from transactional.shared.kafka import create_topics

SERVED_EVENTS = ("search.performed", "recommendation.served", "recommendation.clicked")


class Recorder(httpx.BaseTransport):
    """A real HTTP transport that keeps the search and recommendation answers it carried."""

    def __init__(self) -> None:
        self.http = httpx.HTTPTransport()
        self.lock = threading.Lock()
        self.searches: dict[str, dict[str, Any]] = {}  # search id -> answer
        self.lists: dict[str, dict[str, Any]] = {}  # recommendation id -> answer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request; remember the answer of a search or a recommendation list."""
        response = self.http.handle_request(request)
        path = request.url.path
        if path == "/v1/search" or path.startswith(("/v1/recommendations/", "/v1/feed")):
            response.read()
            if response.status_code == 200:
                body = response.json()
                with self.lock:
                    if "search_id" in body:
                        self.searches[body["search_id"]] = body
                    else:
                        self.lists[body["recommendation_id"]] = body
        return response

    def close(self) -> None:
        """Kept open: the simulation's worker clients share it (closed by ``shut``)."""

    def shut(self) -> None:
        """Close the connection pool."""
        self.http.close()


@dataclass
class Run:
    """A simulation on the shop: its report, the answers it got, its events in the outbox."""

    report: SimulationReport
    recorder: Recorder
    events: list[dict[str, Any]]  # search.performed, recommendation.served / .clicked
    vectors_version: str  # the promoted item-vector index's
    settings: Settings
    services: Services


@pytest.fixture(scope="module")
def simulated(endpoints: Endpoints, engine: Engine) -> Iterator[Run]:
    """A short simulation on a shop whose search index and item vectors know its catalog."""
    with engine.begin() as connection:
        # As the clean_outbox fixture: other tests' leftovers (topics long gone) would stall
        # the relay drain below.
        connection.execute(text("DELETE FROM outbox WHERE published_at IS NULL"))
    home = temporary_home("souk-sim-serving-")
    settings = Settings(  # type: ignore[call-arg]
        home=home,
        _env_file=None,
        password_time_cost=1,
        password_memory_kib=1024,
        recs_model_check_s=0.05,  # the promotion below shows within a request or two
    )
    services = build_services(
        settings, database_url=endpoints.database_url, redis_url=endpoints.redis_url
    )
    recorder = Recorder()
    try:
        with serve_in_thread(create_app(services)) as url:
            token = admin_headers(services.tokens)["Authorization"].removeprefix("Bearer ")
            catalog: SeededCatalog = seed_catalog(
                url,
                token,
                SyntheticWorld(["eu", "us", "in"], seed=11),
                CatalogPlan(sellers=3, products=30, stock=(20, 40)),
                tag=secrets.token_hex(3),
            )
            for region in settings.regions:
                reindex(services["search_index"], engine, region)
            model = synthetic_models(
                [p.product_id for p in catalog.products], ["cus_nobody"], factors=8, seed=2
            )
            versions = promote_models(ModelRegistry(settings=settings), model)
            with engine.connect() as connection:
                first_id = connection.execute(
                    text("SELECT coalesce(max(id), 0) FROM outbox")
                ).scalar_one()
            tag = secrets.token_hex(3)
            report = run_simulation(
                url,
                catalog,
                SimulationConfig(
                    users=8,
                    rate=6.0,
                    duration=4.0,
                    seed=4,
                    workers=4,
                    fraud_share=0.0,
                    guest_share=0.5,
                    search_share=0.8,
                    recommendation_share=0.8,
                    click_share=0.8,
                ),
                show_progress=False,
                tag=tag,
                transport=recorder,
            )
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT value FROM outbox WHERE id > :first AND event_type = ANY(:types)"),
                {"first": first_id, "types": list(SERVED_EVENTS)},
            ).all()
        events = [
            {"type": envelope.event_type, **envelope.payload}
            for envelope in (REGISTRY.decode(bytes(row.value)) for row in rows)
            if str(envelope.payload.get("session_id", "")).startswith(f"ses-{tag}-")
        ]
        yield Run(report, recorder, events, versions.item_vectors, settings, services)
    finally:
        recorder.shut()
        services.close()
        shutil.rmtree(home, ignore_errors=True)


def test_searches_are_the_servers_and_their_hits_are_what_shoppers_open(simulated: Run) -> None:
    report, recorder, events = simulated.report, simulated.recorder, simulated.events
    assert report.ok, (report.unexpected, report.samples)
    performed = {e["search_id"]: e for e in events if e["type"] == "search.performed"}
    # Every search answered became one search.performed carrying the server's search id.
    assert set(performed) == set(recorder.searches) and len(performed) == report.searches > 5
    for search_id, event in performed.items():
        answer = recorder.searches[search_id]
        assert event["result_count"] == answer["total"]
        assert event["top_product_ids"] == [h["product_id"] for h in answer["hits"]][:20]
        assert event["index_version"] == ",".join(
            f"{r}:{v or '-'}" for r, v in sorted(answer["index_versions"].items())
        )
        assert {h["category_id"] for h in answer["hits"]} <= set(event["filters"]["category"])
    # The index knows the catalog and the plans search with words of its titles: most find.
    assert report.searches_with_results > report.searches_zero_results
    assert report.views_from_search_hits > 0


def test_clicks_carry_the_ids_of_lists_the_server_served(simulated: Run) -> None:
    report, recorder, events = simulated.report, simulated.recorder, simulated.events
    vectors_version = simulated.vectors_version
    served = {e["recommendation_id"]: e for e in events if e["type"] == "recommendation.served"}
    shown = {rid: body for rid, body in recorder.lists.items() if body["items"]}
    # The server reported each non-empty list once; the simulator reported none of its own.
    assert set(served) == set(shown)
    assert sum(e["type"] == "recommendation.served" for e in events) == len(served)
    assert len(served) == report.recommendations_served > 0
    for rid, event in served.items():
        assert event["product_ids"] == [i["product_id"] for i in shown[rid]["items"]]
    clicks = [e for e in events if e["type"] == "recommendation.clicked"]
    assert len(clicks) == report.recommendations_clicked > 0
    for click in clicks:
        items = shown[click["recommendation_id"]]["items"]
        assert items[click["position"]]["product_id"] == click["product_id"]
    # Guests' lists came from the promoted item vectors, counted per model version.
    assert report.recommendation_lists[f"item_vectors {vectors_version}"] > 0
    assert sum(report.recommendation_lists.values()) == report.recommendations_served


def test_click_through_per_version_counts_what_the_shoppers_were_served_and_clicked(
    simulated: Run, endpoints: Endpoints
) -> None:
    report, recorder, settings = simulated.report, simulated.recorder, simulated.settings
    # The platform's path: outbox → relay → topics → the activity consumer → Redis counts.
    topics = [topic_for(d, r) for r in settings.regions for d in REGISTRY.domains()]
    create_topics(endpoints.kafka_bootstrap, topics, partitions=settings.kafka_partitions)
    relay = build_relay(settings, endpoints.database_url, endpoints.kafka_bootstrap)
    try:
        relay.drain()
    finally:
        relay.close()
    fresh = settings.model_copy(update={"recs_consumer_group": f"sim-{secrets.token_hex(4)}"})
    assert drain_activity(fresh, endpoints.redis_url, endpoints.kafka_bootstrap)
    service = simulated.services["recommendations"]
    rows = {(r.model, r.model_version): r for r in service.click_through()}
    row = rows[("item_vectors", simulated.vectors_version)]  # a version of this run only
    ours = {
        rid
        for rid, body in recorder.lists.items()
        if body["items"] and body["model_version"] == simulated.vectors_version
    }
    clicked = {
        e["recommendation_id"]
        for e in simulated.events
        if e["type"] == "recommendation.clicked" and e["recommendation_id"] in ours
    }
    assert (
        row.served
        == len(ours)
        == report.recommendation_lists[f"item_vectors {simulated.vectors_version}"]
    )
    assert row.clicked == len(clicked) > 0
    lines = online_lines(service, report)
    assert (
        f"  item_vectors {simulated.vectors_version}: served {row.served:,}, "
        f"clicked {row.clicked:,}, CTR {row.rate:.1%}"
    ) in lines
    assert lines[0].startswith(f"searches {report.searches:,}: ")
