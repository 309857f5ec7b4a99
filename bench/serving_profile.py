"""The in-process side of `make bench-serving`: each endpoint's service called directly.

The same requests as the HTTP rounds (``bench/serving_load.py``'s makers), turned into the
service calls their controllers make, on services wired by ``build_services`` from the same
settings, one thread, no HTTP. Latency here against latency over HTTP splits the time between
the service and the server (Litestar, uvicorn, the thread hop, the loopback); with
``--profile`` cProfile names each service's hot spots.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from bench.serving_load import Request, RequestMaker
from bench.stats import percentile
from souk.services import Services

#: Calls one endpoint's service for a request of its maker.
ServiceCall = Callable[[Request], object]


@dataclass
class InProcess:
    """One endpoint's service timed in-process."""

    endpoint: str
    latencies_ms: list[float] = field(default_factory=list)
    hot_spots: list[tuple[str, float]] = field(default_factory=list)  # (function, ms per call)

    @property
    def p50_ms(self) -> float:
        """Median latency."""
        return percentile(self.latencies_ms, 0.5) if self.latencies_ms else float("nan")

    @property
    def p99_ms(self) -> float:
        """99th percentile latency."""
        return percentile(self.latencies_ms, 0.99) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        """The figures for the JSON report."""
        return {
            "endpoint": self.endpoint,
            "calls": len(self.latencies_ms),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "hot_spots_ms_per_call": {name: round(ms, 3) for name, ms in self.hot_spots},
        }


def query_params(path: str) -> dict[str, str]:
    """The query string of a request path, one value per name."""
    return {name: values[0] for name, values in parse_qs(urlsplit(path).query).items()}


def service_calls(services: Services) -> dict[str, ServiceCall]:
    """Per endpoint, the call its controller makes for a request."""
    from serving.fraud.schemas import ScoreIn
    from serving.recommendations.service import Request as RecsRequest
    from serving.search.model import SearchRequest

    def search(request: Request) -> object:
        p = query_params(request[1])
        return services["search"].search(
            SearchRequest(
                q=p.get("q", ""),
                category=p.get("category"),
                price_min=int(p["price_min"]) if "price_min" in p else None,
                price_max=int(p["price_max"]) if "price_max" in p else None,
                currency=p.get("currency", "EUR"),
                in_stock=True if p.get("in_stock") == "true" else None,
                sort=p.get("sort", "relevance"),
                page=int(p.get("page", "1")),
                region=p.get("region"),
            )
        )

    def suggest(request: Request) -> object:
        p = query_params(request[1])
        return services["suggest"].suggest(p["q"], p.get("region"), 10)

    def similar(request: Request) -> object:
        product = unquote(urlsplit(request[1]).path.rsplit("/", 1)[1])
        recs = services["recommendations"]
        return recs.similar(product, 10, RecsRequest(recs.region(None, None)))

    def for_you(request: Request) -> object:
        customer = query_params(request[1])["customer_id"]
        recs = services["recommendations"]
        return recs.for_you(customer, 10, RecsRequest(recs.region(None, None), None, customer))

    def fraud(request: Request) -> object:
        body = msgspec.convert(request[2], ScoreIn, strict=False)
        return services["fraud_scorer"].score(body.to_domain(lambda _ip: None))

    return {
        "search": search,
        "search_all": search,
        "suggest": suggest,
        "similar": similar,
        "for_you": for_you,
        "fraud": fraud,
    }


def time_in_process(
    endpoint: str,
    make: RequestMaker,
    call: ServiceCall,
    seconds: float,
    *,
    profile: bool = False,
    seed: int = 5,
    top: int = 6,
) -> InProcess:
    """Call ``call`` with ``make``'s requests for ``seconds`` (after a short warm-up); with
    ``profile``, a second pass as long under cProfile names the hot spots."""
    rng = random.Random(seed)
    for _ in range(20):
        call(make(rng))
    result = InProcess(endpoint)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        request = make(rng)
        began = time.perf_counter()
        call(request)
        result.latencies_ms.append((time.perf_counter() - began) * 1000)
    if profile:  # a pass of its own: the profiler's overhead stays out of the latencies
        profiler = cProfile.Profile()
        calls = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            request = make(rng)
            profiler.enable()
            call(request)
            profiler.disable()
            calls += 1
        result.hot_spots = hot_spots(profiler, calls, top)
    return result


def hot_spots(profiler: cProfile.Profile, calls: int, top: int) -> list[tuple[str, float]]:
    """The ``top`` functions by own time, in ms per service call."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    table: Mapping[Any, Any] = stats.stats  # type: ignore[attr-defined]
    ranked = sorted(table.items(), key=lambda kv: -kv[1][2])[:top]
    out = []
    for (filename, line, name), (_cc, _nc, tottime, _ct, _callers) in ranked:
        where = filename.rsplit("/site-packages/", 1)[-1].rsplit("/main/", 1)[-1]
        label = f"{name} ({where}:{line})" if line else name
        out.append((label, 1000 * tottime / max(calls, 1)))
    return out
