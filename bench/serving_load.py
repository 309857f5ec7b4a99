"""Load rounds of `make bench-serving`: closed-loop clients over keep-alive HTTP, and figures.

Each client thread holds one raw HTTP/1.1 connection (``bench/rawhttp.py``) and sends the
next request as soon as the previous answer arrived, for the round's seconds; every latency
is recorded. The pure parts (requests per endpoint, figures, ratios, verdicts) are tested in
``tests/unit/test_bench_serving.py``.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from bench.rawhttp import RawHttp, RawHttpError
from bench.start import StartLine
from bench.stats import percentile

#: A request: (method, path with query, JSON body or None).
Request = tuple[str, str, Mapping[str, Any] | None]
#: Makes the next request of a client from its random generator.
RequestMaker = Callable[[random.Random], Request]

# The targets (p99 over HTTP on loopback, ms), printed beside the figures; fraud's
# is from its own section ("p99 below 30 ms with the features in Redis").
TARGETS_P99_MS: dict[str, float] = {
    "search": 10.0,
    "search_all": 10.0,
    "suggest": 5.0,
    "similar": 15.0,
    "for_you": 15.0,
    "fraud": 30.0,
}
# Known queries: plain, misspelled (typo tolerance), multi-word, brands.
SEARCH_QUERIES = (
    "headphones",
    "wireles hedphones",
    "sunglas",
    "runing shoes",
    "kettle",
    "gaming laptop",
    "sonyx earbuds",
    "yoga mat",
    "black sneakers",
    "standing desk",
    "crime novel",
    "mirrorless camera",
    "smartwatch",
    "face serum",
    "polarized sunglasses",
    "bluetooth speaker",
    "office chair",
    "frying pan",
    "",
)
CATEGORIES = (
    "cat_electronics",
    "cat_electronics_audio",
    "cat_fashion_shoes",
    "cat_home_kitchen",
    "cat_sports_fitness",
)
SORTS = ("price_asc", "price_desc", "newest", "popularity")


def search_request(rng: random.Random, region: str | None) -> Request:
    """A storefront search: a known query, sometimes filtered, sorted or on page 2.
    ``region`` None picks one of the three regions."""
    params: dict[str, str] = {"q": rng.choice(SEARCH_QUERIES)}
    params["region"] = region or rng.choice(("eu", "us", "in"))
    if rng.random() < 0.3:
        params["category"] = rng.choice(CATEGORIES)
    if rng.random() < 0.2:
        low = rng.choice((0, 20, 50, 100))
        params["price_min"], params["price_max"] = str(low), str(low + rng.choice((50, 200, 1000)))
        params["currency"] = "EUR"
    if rng.random() < 0.2:
        params["sort"] = rng.choice(SORTS)
    if rng.random() < 0.1:
        params["in_stock"] = "true"
    if rng.random() < 0.1:
        params["page"] = "2"
    return "GET", "/v1/search?" + urlencode(params), None


def prefix_of(text: str, rng: random.Random) -> str:
    """What a shopper has typed of ``text`` so far: at least two characters."""
    if len(text) <= 2:
        return text
    return text[: rng.randint(2, len(text))].rstrip() or text[:2]


def suggest_request(rng: random.Random, texts: Sequence[str]) -> Request:
    """Autosuggest for a prefix of a past search or a title, in a random region."""
    params = {"q": prefix_of(rng.choice(texts), rng), "region": rng.choice(("eu", "us", "in"))}
    return "GET", "/v1/suggest?" + urlencode(params), None


def similar_request(rng: random.Random, product_ids: Sequence[str]) -> Request:
    """Neighbours of a product of the promoted model."""
    product = quote(rng.choice(product_ids), safe="")
    return "GET", f"/v1/recommendations/similar/{product}?limit=10", None


def for_you_request(rng: random.Random, customers: Sequence[str]) -> Request:
    """A known customer's recommendations (asked with an admin token)."""
    params = {"customer_id": rng.choice(customers), "limit": "10"}
    return "GET", "/v1/recommendations/for-you?" + urlencode(params), None


def fraud_request(rng: random.Random, customers: Sequence[str]) -> Request:
    """A payment attempt of a known customer: 1-3 lines, card, device, IP, shipping."""
    items: list[dict[str, Any]] = [
        {
            "sku": f"sku_bench_{rng.randrange(10_000):05d}",
            "quantity": rng.randint(1, 3),
            "unit_price_minor": rng.randint(500, 50_000),
        }
        for _ in range(rng.randint(1, 3))
    ]
    created = datetime.now(UTC) - timedelta(days=rng.randint(1, 400))
    body = {
        "customer_id": rng.choice(customers),
        "amount_minor": sum(int(i["quantity"]) * int(i["unit_price_minor"]) for i in items),
        "currency": "EUR",
        "items": items,
        "payment_instrument": f"card_{rng.randrange(100_000):06d}",
        "device_id": f"dev_{rng.randrange(100_000):06d}",
        "client_ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        "shipping_country": rng.choice(("DE", "FR", "US", "IN")),
        "account_region": "eu",
        "account_created_at": created.isoformat(),
    }
    return "POST", "/v1/fraud/score", body


@dataclass
class Round:
    """What one round against one endpoint measured."""

    endpoint: str
    clients: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float | None = None  # the server's CPU seconds during the round

    @property
    def requests(self) -> int:
        """Answered requests."""
        return len(self.latencies_ms)

    @property
    def per_s(self) -> float:
        """Answered requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        """Median latency."""
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99_ms(self) -> float:
        """99th percentile latency (nearest rank)."""
        return percentile(self.latencies_ms, 0.99) if self.latencies_ms else float("nan")

    @property
    def failures(self) -> int:
        """Answers that were not 2xx, and broken connections."""
        bad = sum(count for status, count in self.statuses.items() if not 200 <= status < 300)
        return bad + sum(self.errors.values())

    @property
    def five_xx(self) -> int:
        """5xx answers."""
        return sum(count for status, count in self.statuses.items() if status >= 500)

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        """The server's CPU milliseconds per answered request."""
        if self.cpu_s is None or not self.requests:
            return None
        return 1000 * self.cpu_s / self.requests

    def summary(
        self, baseline: Round | None = None, target_ms: float | None = None
    ) -> dict[str, Any]:
        """The round's figures, with ratios to ``baseline`` and the target when given."""
        out: dict[str, Any] = {
            "endpoint": self.endpoint,
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "req_per_s": round(self.per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "failures": self.failures,
            "five_xx": self.five_xx,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }
        cpu = self.server_cpu_ms_per_request
        if cpu is not None:
            out["server_cpu_ms_per_request"] = round(cpu, 3)
        if baseline is not None:
            out.update(ratios(self, baseline))
        if target_ms is not None:
            out["target_p99_ms"] = target_ms
            out["meets_target"] = meets(self.p99_ms, target_ms)
        return out


def ratios(measured: Round, baseline: Round) -> dict[str, float]:
    """Latency as a multiple of the baseline's, throughput as a share of it."""
    return {
        "p50_vs_baseline": round(measured.p50_ms / baseline.p50_ms, 2) if baseline.p50_ms else 0.0,
        "p99_vs_baseline": round(measured.p99_ms / baseline.p99_ms, 2) if baseline.p99_ms else 0.0,
        "req_per_s_vs_baseline": round(measured.per_s / baseline.per_s, 3)
        if baseline.per_s
        else 0.0,
    }


def meets(p99_ms: float, target_ms: float | None) -> bool | None:
    """Whether a p99 is within its target (None without a target or without samples)."""
    if target_ms is None or p99_ms != p99_ms:  # NaN: nothing was measured
        return None
    return p99_ms <= target_ms


def run_round(
    host: str,
    port: int,
    endpoint: str,
    make: RequestMaker,
    clients: int,
    seconds: float,
    *,
    headers: Mapping[str, str] | None = None,
    seed: int = 1,
    cpu: Callable[[], float] | None = None,
) -> Round:
    """``clients`` closed-loop clients sending ``make``'s requests for ``seconds``."""
    result = Round(endpoint, clients)
    lock = threading.Lock()
    line = StartLine(clients + 1, seconds)
    sent_headers = dict(headers or {})

    def client(number: int) -> None:
        rng = random.Random(seed * 7919 + number)
        http = RawHttp(host, port)
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        try:
            line.wait()
            while line.running():
                method, path, body = make(rng)
                began = time.perf_counter()
                try:
                    status, _ = http.request(method, path, body, sent_headers)
                except RawHttpError as error:
                    errors[str(error)[:80]] += 1
                    continue
                latencies.append((time.perf_counter() - began) * 1000)
                statuses[status] += 1
        finally:
            http.close()
            with lock:
                result.latencies_ms.extend(latencies)
                result.statuses.update(statuses)
                result.errors.update(errors)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    before = cpu() if cpu is not None else None
    line.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - line.started
    if cpu is not None and before is not None:
        result.cpu_s = cpu() - before
    return result
