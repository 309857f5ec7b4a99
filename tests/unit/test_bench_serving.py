"""`make bench-serving`'s harness (request makers, figures, the cached index, a real round over
HTTP against the baseline app) and search's concurrent ``region=all`` on a small real
tantivy index."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn

from bench import serving_data as data
from bench.serving import BASELINE, Figures
from bench.serving_load import (
    SEARCH_QUERIES,
    Round,
    fraud_request,
    meets,
    prefix_of,
    ratios,
    run_round,
    search_request,
    suggest_request,
)
from bench.serving_server import UVICORN_OPTIONS, baseline_app
from serving.search.model import FxTable, IndexQuery, IndexResult, SearchRequest, merge_key
from serving.search.service import SearchService
from serving.search.tantivy_index import TantivySearchIndex
from serving.search.text import SYNONYMS_FILE, Synonyms

RATES = {"EUR": 1.0, "USD": 0.92, "INR": 0.011, "GBP": 1.17}


def _query(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}


def test_search_requests_are_reproducible_known_queries_in_the_asked_region() -> None:
    first = [search_request(random.Random(3), None) for _ in range(50)]
    again = [search_request(random.Random(3), None) for _ in range(50)]
    assert first == again
    regions = Counter(_query(path)["region"] for _, path, _ in first)
    assert set(regions) <= {"eu", "us", "in"}
    rng = random.Random(5)
    for _ in range(200):
        method, path, body = search_request(rng, "all")
        params = _query(path)
        assert method == "GET" and body is None and path.startswith("/v1/search?")
        assert params["region"] == "all"
        assert params.get("q", "") in SEARCH_QUERIES
        if "price_min" in params:
            assert int(params["price_min"]) < int(params["price_max"])


def test_suggest_prefixes_are_prefixes_of_at_least_two_characters() -> None:
    rng = random.Random(1)
    for text in ("ab", "sonyx earbuds", "x", "wireless headphones"):
        for _ in range(30):
            typed = prefix_of(text, rng)
            assert text.startswith(typed)
            assert len(typed) >= min(2, len(text))
    _, path, _ = suggest_request(rng, ["kettle"])
    assert _query(path)["q"] in {"ke", "ket", "kett", "kettl", "kettle"}


def test_a_fraud_request_adds_up_its_lines() -> None:
    method, path, body = fraud_request(random.Random(2), ["cus_bench_0000001"])
    assert method == "POST" and path == "/v1/fraud/score" and body is not None
    lines = body["items"]
    assert body["amount_minor"] == sum(i["quantity"] * i["unit_price_minor"] for i in lines)
    assert body["customer_id"] == "cus_bench_0000001"


def test_round_figures_ratios_and_verdicts() -> None:
    measured = Round("search", 2, seconds=2.0, latencies_ms=[float(n) for n in range(1, 101)])
    measured.statuses.update({200: 98, 404: 1, 503: 1})
    measured.cpu_s = 0.5
    assert measured.requests == 100 and measured.per_s == 50.0
    assert measured.p50_ms == 50.5 and measured.p99_ms == 100.0
    assert measured.failures == 2 and measured.five_xx == 1
    assert measured.server_cpu_ms_per_request == 5.0
    base = Round(BASELINE, 2, seconds=1.0, latencies_ms=[0.5] * 99 + [2.0])
    assert ratios(measured, base) == {
        "p50_vs_baseline": 101.0,
        "p99_vs_baseline": 50.0,
        "req_per_s_vs_baseline": 0.5,
    }
    summary = measured.summary(base, 10.0)
    assert summary["meets_target"] is False and summary["target_p99_ms"] == 10.0
    assert meets(9.9, 10.0) is True and meets(float("nan"), 10.0) is None
    assert meets(3.0, None) is None


def test_the_report_pairs_each_round_with_the_baseline_of_its_client_count() -> None:
    def round_(name: str, clients: int, ms: float) -> Round:
        r = Round(name, clients, seconds=1.0, latencies_ms=[ms] * 10)
        r.statuses[200] = 10
        return r

    figures = Figures(
        setup=[data.Timed("catalog tables", 1.25)],
        rounds=[round_(BASELINE, 1, 0.5), round_(BASELINE, 4, 1.0), round_("suggest", 4, 3.0)],
        checks={"suggest completes a prefix": True},
    )
    report = figures.report()
    suggest = report["rounds"][-1]
    assert suggest["p99_vs_baseline"] == 3.0 and suggest["meets_target"] is True
    assert report["ok"] is True and report["setup_s"] == {"catalog tables": 1.25}
    figures.checks["suggest completes a prefix"] = False
    assert figures.report()["ok"] is False


def test_past_searches_are_distinct_and_reproducible() -> None:
    past = data.past_queries(500, 4)
    assert past == data.past_queries(500, 4) and len(past) == 500
    assert len({(region, text) for region, text, _ in past}) == 500
    assert all(region in data.REGIONS and weight >= 1 for region, _, weight in past)


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cached index of 240 generated products."""
    cache = tmp_path_factory.mktemp("bench") / "search-n240-s3"
    assert data.cached_search_index(cache, 240, 3) is True
    return cache


def test_the_cached_index_is_built_once_and_linked_into_a_home(
    small_index: Path, tmp_path: Path
) -> None:
    assert data.cached_search_index(small_index, 240, 3) is False  # complete: reused
    target = tmp_path / "search"
    data.link_tree(small_index, target)
    assert (target / "eu" / "current").is_symlink()
    assert not (target / "complete").exists()
    index = TantivySearchIndex(target, data.REGIONS, RATES)
    counts = {region: sum(v.documents for v in index.versions(region)) for region in data.REGIONS}
    assert counts == {"eu": 80, "us": 80, "in": 80}


class _Recording:
    """The real index, recording which thread searched which region (and optionally slow)."""

    def __init__(self, index: TantivySearchIndex, delay_s: float = 0.0) -> None:
        self._index = index
        self._delay_s = delay_s
        self.threads: list[tuple[str, str]] = []

    def search(self, region: str, query: IndexQuery) -> IndexResult:
        self.threads.append((region, threading.current_thread().name))
        if self._delay_s:
            time.sleep(self._delay_s)
        return self._index.search(region, query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def _service(index: Any) -> SearchService:
    return SearchService(
        index, FxTable(RATES), Synonyms.from_file(SYNONYMS_FILE), list(data.REGIONS), "eu"
    )


def test_region_all_searches_the_regions_at_once_and_merges_in_order(
    small_index: Path, tmp_path: Path
) -> None:
    data.link_tree(small_index, tmp_path / "search")
    real = TantivySearchIndex(tmp_path / "search", data.REGIONS, RATES)
    slow = _Recording(real, delay_s=0.1)
    service = _service(slow)
    service.search(SearchRequest(q="headphones", region="all"))  # warm the spellers
    slow.threads.clear()
    began = time.perf_counter()
    merged = service.search(SearchRequest(q="headphones", region="all", page_size=20))
    elapsed = time.perf_counter() - began
    assert sorted(region for region, _ in slow.threads) == sorted(data.REGIONS)
    assert len({thread for _, thread in slow.threads}) == 3
    assert elapsed < 0.25, f"3 regions of 0.1 s each took {elapsed:.2f} s: not concurrent"
    # The same answer as the regions searched one by one and merged by the engines' order.
    one_by_one = [
        _service(real).search(SearchRequest(q="headphones", region=r, page_size=100))
        for r in data.REGIONS
    ]
    assert merged.total == sum(o.total for o in one_by_one) > 0
    assert merged.regions == list(data.REGIONS)
    categories: Counter[str] = Counter()
    for outcome in one_by_one:
        categories.update(dict(outcome.categories))
    assert dict(merged.categories) == dict(categories)
    docs = {d.product_id: d for d in data.corpus_docs(240, 3)}
    fx = FxTable(RATES)
    expected = sorted(
        (hit for o in one_by_one for hit in o.hits),
        key=lambda h: merge_key("relevance", docs[h.product_id], h.score, fx),
    )
    assert [h.product_id for h in merged.hits] == [h.product_id for h in expected[:20]]


@pytest.fixture(scope="module")
def baseline_server() -> Iterator[int]:
    """The bench's baseline app on uvicorn with the bench's options, in a thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(baseline_app(), port=port, **UVICORN_OPTIONS))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the baseline server did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(timeout=5)


@pytest.mark.parametrize("path", ["/ping", "/ping-thread", "/missing"])
def test_a_round_over_http_counts_answers_and_latencies(baseline_server: int, path: str) -> None:
    def make(_rng: random.Random) -> tuple[str, str, None]:
        return "GET", path, None

    clock: Sequence[float] = (1.0, 3.5)
    readings = iter(clock)
    result = run_round(
        "127.0.0.1", baseline_server, "ping", make, 2, 0.3, cpu=lambda: next(readings)
    )
    assert result.requests > 10 and 0.3 <= result.seconds < 1.0
    assert all(ms > 0 for ms in result.latencies_ms)
    assert result.cpu_s == 2.5
    status = 404 if path == "/missing" else 200
    assert set(result.statuses) == {status} and not result.errors
    assert result.failures == (result.requests if status == 404 else 0)


def test_in_process_timing_and_hot_spots_name_the_service_call() -> None:
    from bench.serving_profile import query_params, time_in_process

    assert query_params("/v1/suggest?q=wire%20hea&region=eu") == {"q": "wire hea", "region": "eu"}

    def busy_service(request: tuple[str, str, None]) -> object:
        return sum(i * i for i in range(2_000)) + len(request[1])

    timed = time_in_process(
        "suggest",
        lambda rng: suggest_request(rng, ["kettle"]),
        busy_service,  # type: ignore[arg-type]
        0.2,
        profile=True,
    )
    assert len(timed.latencies_ms) > 10 and 0 < timed.p50_ms <= timed.p99_ms
    assert timed.hot_spots and any("genexpr" in name for name, _ in timed.hot_spots)
    assert timed.summary()["calls"] == len(timed.latencies_ms)
