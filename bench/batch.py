"""Benchmark: ALS trainers, the silver/gold build, Feast reads and FAISS beside baselines.

Four parts, each against a baseline measured in the same run, on data generated with a fixed
seed (sizes times ``--scale``):

* als: implicit-feedback ALS on 100k customers x 20k products, a Zipf + taste-group shop. The
  interactions are split in time (the latest 20 % held out) so that the training part holds
  2M rows. ``train_implicit`` (the local trainer) and ``train_spark`` (Spark MLlib, local[*]
  session) each train in a child process of their own while this process samples the RSS of
  the child's whole tree (the Spark JVM and its Python workers included) every 50 ms: seconds,
  peak MiB, and precision@10 on the held-out rows, so speed is compared at known quality.
* gold: 1M bronze events (views, cart adds, checkouts, orders, payments; payloads from the
  registry's examples with ids changed) in a private lake; ``jobs.silver`` then ``jobs.gold``
  (full runs on a local[*] session) beside a plain pyarrow + msgspec pass over the same bronze
  tables computing one gold table, ``gold/item_stats``, whose values are compared with gold's.
* feast: 10k customers' ``gold/customer_stats`` materialised into a private Valkey; p50/p99
  of ``get_online_features`` for 1 and 100 random customers beside redis-py HGETALL of the
  same keys (one pipeline for 100).
* faiss: the implicit model's item factors (text embeddings of generated titles when als is
  not run) indexed exact, HNSW and IVF-PQ: single-query p50/p99 and recall@10 against exact.

    python -m bench.batch [--scale 1.0] [--parts als,gold,feast,faiss] [--json FILE]
        [--seed 7] [--spark-memory 2g]

Use ``--scale 0.05`` for a quick check (about three minutes); the full run took about ten on
the 2-core machine, seven of them Spark's ALS. Everything lives in a temporary folder removed
at the end; the Valkey is started there and stopped. Benchmarks print figures; they assert
nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec
import numpy as np
import numpy.typing as npt
import pandas as pd
import psutil
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from bench.stats import percentile

console = Console()
# Feast's Google client imports httplib2, whose pyparsing calls warn at import: noise here.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"httplib2(\..*)?")

PARTS = ("als", "gold", "feast", "faiss")
#: The issue's sizes at --scale 1.
USERS, ITEMS, TRAIN_INTERACTIONS = 100_000, 20_000, 2_000_000
BRONZE_EVENTS = 1_000_000
FEAST_CUSTOMERS = 10_000
#: Held-out share of the interactions (the latest ones): 2M train rows need 2.5M in all.
TEST_FRACTION = 0.2
K = 10
#: Held-out users scored for precision@10 (a seeded sample: scoring all 100k takes minutes).
EVAL_USERS = 20_000
#: RSS sampling period of a trainer's process tree.
SAMPLE_S = 0.05
#: Online reads per batch size (at least), after WARMUP untimed ones.
FEAST_READS = 300
WARMUP = 20
FEAST_BATCHES = (1, 100)
#: FAISS single queries per index kind (item vectors as queries, each item left out).
FAISS_QUERIES = 1_000
FAISS_KINDS: tuple[Literal["flat", "hnsw", "ivfpq"], ...] = ("flat", "hnsw", "ivfpq")
#: A trainer child may take this long before it is stopped.
TRAIN_TIMEOUT_S = 3_600.0
#: Both trainers run the same rank and number of sweeps. The regularisation and alpha are
#: each library's own (MLlib scales the regularisation by interaction counts and uses
#: confidence 1 + alpha·r; see models/recommenders/als.py): implicit's tuned defaults, and
#: for MLlib the values the recommender tests found to learn the taste groups.
FACTORS, ITERATIONS = 64, 15
IMPLICIT_PARAMS: dict[str, float] = {"regularization": 20.0, "alpha": 2.0}
SPARK_PARAMS: dict[str, float] = {"regularization": 1.0, "alpha": 10.0}
TRAINERS = ("implicit", "spark")
TRAIN_COMMAND = "_train"  # hidden sub-command: one trainer in a child process

#: Synthetic time: interactions over 60 days before INTERACTIONS_END, bronze over 28 days.
INTERACTIONS_END = datetime(2026, 3, 1, tzinfo=UTC)
INTERACTION_DAYS = 60
BRONZE_START = datetime(2026, 2, 1, tzinfo=UTC)
BRONZE_DAYS = 28
#: The gold run's as-of time: a day after the last bronze event.
GOLD_AS_OF = BRONZE_START + timedelta(days=BRONZE_DAYS + 1)
#: Bronze mix: each order is ORDER_EVENTS events, cart adds a share, the rest are views.
ORDER_EVENTS = 6
ORDER_SHARE = 0.015
CART_SHARE = 0.12
ANONYMOUS_SHARE = 0.3
REGION_CURRENCY = {"eu": "EUR", "us": "USD"}
MIB = 1024 * 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BenchError(RuntimeError):
    """A part could not run (a failed child, a missing model)."""


# --- small helpers (unit-tested) -------------------------------------------------------------


def scaled(count: int, scale: float, minimum: int = 1) -> int:
    """``count`` times ``scale``, rounded, at least ``minimum``."""
    return max(minimum, round(count * scale))


def parse_parts(text: str) -> list[str]:
    """The comma-separated parts in run order (als before faiss, which may use its vectors)."""
    asked = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(asked - set(PARTS))
    if unknown:
        raise SystemExit(f"--parts: unknown {', '.join(unknown)} (known: {', '.join(PARTS)})")
    if not asked:
        raise SystemExit("--parts: name at least one part")
    return [part for part in PARTS if part in asked]


def ratio(value: float | None, base: float | None) -> float | None:
    """``value / base``; None when either is missing or the base is zero."""
    if value is None or base is None or base == 0:
        return None
    return value / base


def fmt(value: float | None, unit: str = "", digits: int = 0) -> str:
    """A figure with thousands separators and its unit; ``-`` when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:,.{digits}f}{unit}"


def fmt_ratio(value: float | None) -> str:
    """A ratio as ``1.23x`` (two significant decimals, more below 0.1); ``-`` when missing."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def latency_ms(samples: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p99, mean and count of latency samples in milliseconds (rounded to 0.001 ms)."""
    if not samples:
        return {"p50": None, "p99": None, "mean": None, "samples": 0}
    values = list(samples)
    return {
        "p50": round(percentile(values, 0.5), 3),
        "p99": round(percentile(values, 0.99), 3),
        "mean": round(sum(values) / len(values), 3),
        "samples": len(values),
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _zipf(count: int, exponent: float) -> npt.NDArray[np.float64]:
    weights: npt.NDArray[np.float64] = 1.0 / np.arange(1, count + 1, dtype=np.float64) ** exponent
    weights /= weights.sum()
    return weights


def _names(prefix: str, count: int, width: int) -> npt.NDArray[np.object_]:
    return np.array([f"{prefix}{n:0{width}d}" for n in range(count)], dtype=object)


# --- part 1's data: a Zipf + taste-group shop ------------------------------------------------


@dataclass(frozen=True)
class TasteShape:
    """How the synthetic shop's catalogue is laid out."""

    groups: int
    group_size: int
    head: int  # the best-sellers, in no taste group


def taste_shape(items: int) -> TasteShape:
    """One taste group per ~200 products (at least 2), below a head of 5 % best-sellers."""
    groups = max(2, items // 200)
    head = max(1, items // 20)
    return TasteShape(groups, max(1, (items - head) * 3 // 4 // groups), head)


def taste_interactions(
    users: int, items: int, interactions: int, *, seed: int, group_share: float = 0.6
) -> pd.DataFrame:
    """``interactions`` distinct (customer, product) rows of a Zipf + taste-group shop.

    Each customer belongs to one taste group and draws ``group_share`` of the events from its
    group's products (Zipf within the group), the rest from the whole catalogue (Zipf 1.1);
    how active a customer is follows a log-normal. Events of the same pair add up: strength is
    the sum of their weights (view 1, cart 3, purchase 5) decayed with a 30-day half-life,
    ``last_at`` the latest one (UTC, within the 60 days before INTERACTIONS_END). Same seed,
    same frame; rows in the order pairs were first drawn.
    """
    if interactions > users * items // 2:
        raise ValueError(f"{interactions:,} pairs do not fit {users:,} x {items:,} sparsely")
    rng = np.random.default_rng(seed)
    shape = taste_shape(items)
    popularity = _zipf(items, 1.1)
    within = _zipf(shape.group_size, 0.8)
    activity = rng.lognormal(0.0, 1.0, users)
    activity /= activity.sum()
    group_of = rng.integers(0, shape.groups, users)
    codes: list[npt.NDArray[np.int64]] = []
    batch = int(interactions * 1.3) + 1024
    while True:
        user = rng.choice(users, batch, p=activity)
        own = rng.random(batch) < group_share
        in_group = (
            shape.head
            + group_of[user] * shape.group_size
            + rng.choice(shape.group_size, batch, p=within)
        )
        anywhere = rng.choice(items, batch, p=popularity)
        codes.append(user.astype(np.int64) * items + np.where(own, in_group, anywhere))
        every = np.concatenate(codes)
        unique, first, inverse = np.unique(every, return_index=True, return_inverse=True)
        if len(unique) >= interactions:
            break
        batch = interactions // 2 + 1024  # too many repeats: draw more
    kept = np.argsort(first, kind="stable")[:interactions]  # first drawn pairs, in draw order
    rank = np.full(len(unique), -1, dtype=np.int64)
    rank[kept] = np.arange(len(kept))
    pair = rank[inverse.reshape(-1)]  # every event's row, -1 for pairs left out
    kept_codes = unique[kept]
    weight = rng.choice(np.array([1.0, 3.0, 5.0]), len(every), p=[0.7, 0.2, 0.1])
    age_s = rng.integers(0, INTERACTION_DAYS * 86_400, len(every))
    decayed = weight * np.exp(-math.log(2) * age_s / (30 * 86_400))
    events = pair >= 0
    strength = np.bincount(pair[events], weights=decayed[events], minlength=len(kept_codes))
    newest_age = np.full(len(kept_codes), np.iinfo(np.int64).max)
    np.minimum.at(newest_age, pair[events], age_s[events])
    end_us = (INTERACTIONS_END - EPOCH) // timedelta(microseconds=1)
    last_at = pd.to_datetime(end_us - newest_age * 1_000_000, unit="us", utc=True)
    return pd.DataFrame(
        {
            "customer_id": _names("c", users, 6)[kept_codes // items],
            "product_id": _names("p", items, 5)[kept_codes % items],
            "strength": strength.astype(np.float64),
            "last_at": last_at,
        }
    )


# --- part 2's data: bronze events ------------------------------------------------------------


@dataclass
class _Rows:
    """Bronze columns of one domain being generated."""

    event_type: list[str] = field(default_factory=list)
    aggregate_id: list[str] = field(default_factory=list)
    payload: list[str] = field(default_factory=list)
    region: list[str] = field(default_factory=list)
    at_s: list[npt.NDArray[np.int64]] = field(default_factory=list)

    def add(
        self,
        event_type: str,
        aggregate_ids: Sequence[str],
        payloads: Sequence[str],
        regions: Sequence[str],
        at_s: npt.NDArray[np.int64],
    ) -> None:
        """Append one event type's rows (seconds after BRONZE_START)."""
        self.event_type.extend([event_type] * len(payloads))
        self.aggregate_id.extend(aggregate_ids)
        self.payload.extend(payloads)
        self.region.extend(regions)
        self.at_s.append(at_s.astype(np.int64))


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount_minor": int(amount), "currency": currency}


def _address(region: str) -> dict[str, Any]:
    if region == "eu":
        return {"country": "DE", "subdivision": "BE", "city": "Berlin", "postal_code": "10115"}
    return {"country": "US", "subdivision": "TX", "city": "Austin", "postal_code": "73301"}


def synthetic_bronze(events: int, *, seed: int) -> dict[str, pa.Table]:
    """``events`` bronze rows of a generated shop, as ``{"bronze/<domain>": table}``.

    Sessions of customers (Zipf-ish activity, 30 % of views anonymous) view products (Zipf
    1.05) and add them to carts; orders of 1-3 lines go checkout.started → order.placed →
    payment.authorized → payment.captured → order.paid → checkout.completed. Payloads are
    ``schemas.examples.EXAMPLES`` with ids, money, region and times changed; the rows follow
    ``BRONZE_SCHEMA`` as the archiver writes them. Same seed, same tables.
    """
    from schemas.examples import EXAMPLES

    orders = max(1, round(events * ORDER_SHARE))
    carts = max(1, round(events * CART_SHARE))
    views = events - ORDER_EVENTS * orders - carts
    if views < 1:
        raise ValueError(f"{events} events are too few for one order, a cart add and a view")
    rng = np.random.default_rng(seed)
    encode = msgspec.json.Encoder().encode
    n_customers = max(10, events // 20)
    n_products = max(10, events // 50)
    n_sessions = max(1, events // 8)
    n_sellers = max(1, n_products // 100)
    product_p = _zipf(n_products, 1.05)
    price = rng.integers(199, 20_000, n_products)
    seller = rng.integers(0, n_sellers, n_products)
    customer_p = rng.lognormal(0.0, 1.0, n_customers)
    customer_p /= customer_p.sum()
    customer_region = np.where(rng.random(n_customers) < 0.6, "eu", "us")
    session_customer = rng.choice(n_customers, n_sessions, p=customer_p)
    anonymous = rng.random(n_sessions) < ANONYMOUS_SHARE
    session_start = rng.integers(0, BRONZE_DAYS * 86_400 - 7_200, n_sessions)
    named = {domain: _Rows() for domain in ("behaviour", "carts", "checkout", "orders", "payments")}

    def cus(c: int) -> str:
        return f"cus_{c:07d}"

    # product.viewed
    session = rng.integers(0, n_sessions, views)
    product = rng.choice(n_products, views, p=product_p)
    position = rng.integers(0, 20, views)
    base = EXAMPLES["product.viewed"]
    payloads, regions = [], []
    for s, p, pos in zip(session.tolist(), product.tolist(), position.tolist(), strict=True):
        region = str(customer_region[session_customer[s]])
        customer = None if anonymous[s] else cus(int(session_customer[s]))
        payload = {
            **base,
            "session_id": f"ses_{s:08d}",
            "customer_id": customer,
            "product_id": f"prd_{p:06d}",
            "sku": f"sku_{p:06d}",
            "search_id": f"srch_{s:08d}",
            "position": pos,
            "price": _money(price[p], REGION_CURRENCY[region]),
        }
        payloads.append(encode(payload).decode())
        regions.append(region)
    named["behaviour"].add(
        "product.viewed",
        [f"ses_{s:08d}" for s in session.tolist()],
        payloads,
        regions,
        session_start[session] + rng.integers(0, 1_800, views),
    )

    # cart.item_added (carts of sessions with a customer)
    known = np.flatnonzero(~anonymous)
    if len(known) == 0:
        known = np.arange(n_sessions)
    session = known[rng.integers(0, len(known), carts)]
    product = rng.choice(n_products, carts, p=product_p)
    quantity = rng.integers(1, 4, carts)
    base = EXAMPLES["cart.item_added"]
    payloads, regions = [], []
    for s, p, q in zip(session.tolist(), product.tolist(), quantity.tolist(), strict=True):
        region = str(customer_region[session_customer[s]])
        payload = {
            **base,
            "cart_id": f"crt_{s:08d}",
            "session_id": f"ses_{s:08d}",
            "customer_id": cus(int(session_customer[s])),
            "sku": f"sku_{p:06d}",
            "product_id": f"prd_{p:06d}",
            "seller_id": f"sel_{int(seller[p]):04d}",
            "quantity": q,
            "quantity_in_cart": q,
            "unit_price": _money(price[p], REGION_CURRENCY[region]),
            "recommendation_id": None,
        }
        payloads.append(encode(payload).decode())
        regions.append(region)
    named["carts"].add(
        "cart.item_added",
        [f"crt_{s:08d}" for s in session.tolist()],
        payloads,
        regions,
        session_start[session] + rng.integers(0, 1_800, carts),
    )

    # orders: one session each, 1-3 lines, six events
    session = known[rng.integers(0, len(known), orders)]
    line_counts = rng.choice(np.array([1, 2, 3]), orders, p=[0.6, 0.3, 0.1])
    line_products = rng.choice(n_products, int(line_counts.sum()), p=product_p)
    line_quantities = rng.integers(1, 4, len(line_products))
    placed_at = session_start[session] + 1_800 + rng.integers(0, 600, orders)
    kinds = (
        ("checkout.started", "checkout", 0),
        ("order.placed", "orders", 60),
        ("payment.authorized", "payments", 61),
        ("payment.captured", "payments", 62),
        ("order.paid", "orders", 63),
        ("checkout.completed", "checkout", 64),
    )
    built: dict[str, tuple[list[str], list[str], list[str]]] = {
        kind: ([], [], []) for kind, _, _ in kinds
    }
    cursor = 0
    for o, (s, count) in enumerate(zip(session.tolist(), line_counts.tolist(), strict=True)):
        region = str(customer_region[session_customer[s]])
        currency = REGION_CURRENCY[region]
        customer = cus(int(session_customer[s]))
        order_id, checkout_id, payment_id = f"ord_{o:07d}", f"chk_{o:07d}", f"pay_{o:07d}"
        lines: list[dict[str, Any]] = []
        for n in range(count):
            p = int(line_products[cursor + n])
            lines.append(
                {
                    "line_id": f"lin_{n + 1}",
                    "sku": f"sku_{p:06d}",
                    "product_id": f"prd_{p:06d}",
                    "seller_id": f"sel_{int(seller[p]):04d}",
                    "quantity": int(line_quantities[cursor + n]),
                    "unit_price": _money(price[p], currency),
                    "warehouse_id": f"wh_{region}_1",
                }
            )
        cursor += count
        subtotal = sum(line["quantity"] * line["unit_price"]["amount_minor"] for line in lines)
        total = _money(subtotal, currency)
        zero = _money(0, currency)
        common = {"customer_id": customer}
        payloads_of = {
            "checkout.started": {
                **EXAMPLES["checkout.started"],
                **common,
                "checkout_id": checkout_id,
                "cart_id": f"crt_{s:08d}",
                "session_id": f"ses_{s:08d}",
                "lines": [{k: v for k, v in line.items() if k != "warehouse_id"} for line in lines],
                "subtotal": total,
                "shipping_address": _address(region),
                "ip_region": region,
            },
            "order.placed": {
                **EXAMPLES["order.placed"],
                **common,
                "order_id": order_id,
                "checkout_id": checkout_id,
                "region": region,
                "lines": lines,
                "totals": {
                    "subtotal": total,
                    "discount": zero,
                    "shipping": zero,
                    "tax": zero,
                    "grand_total": total,
                },
                "shipping_address": _address(region),
                "fulfilment_groups": [
                    {
                        "group_id": "ful_1",
                        "seller_id": lines[0]["seller_id"],
                        "warehouse_id": f"wh_{region}_1",
                        "line_ids": [line["line_id"] for line in lines],
                    }
                ],
                "coupon_codes": [],
            },
            "payment.authorized": {
                **EXAMPLES["payment.authorized"],
                **common,
                "payment_id": payment_id,
                "order_id": order_id,
                "amount": total,
                "gateway": f"stripe-{region}",
                "gateway_reference": f"pi_{o:07d}",
                "instrument_country": "DE" if region == "eu" else "US",
            },
            "payment.captured": {
                **EXAMPLES["payment.captured"],
                **common,
                "payment_id": payment_id,
                "order_id": order_id,
                "amount": total,
                "gateway_reference": f"ch_{o:07d}",
            },
            "order.paid": {
                **EXAMPLES["order.paid"],
                **common,
                "order_id": order_id,
                "payment_id": payment_id,
                "amount": total,
            },
            "checkout.completed": {
                **EXAMPLES["checkout.completed"],
                **common,
                "checkout_id": checkout_id,
                "order_id": order_id,
                "cart_id": f"crt_{s:08d}",
                "payment_id": payment_id,
                "amount": total,
                "ship_region": region,
                "shipping_address": _address(region),
                "warehouse_ids": [f"wh_{region}_1"],
            },
        }
        aggregate = {"checkout": checkout_id, "orders": order_id, "payments": payment_id}
        for kind, domain, _ in kinds:
            ids, texts, where = built[kind]
            ids.append(aggregate[domain])
            texts.append(encode(payloads_of[kind]).decode())
            where.append(region)
    for kind, domain, offset in kinds:
        ids, texts, where = built[kind]
        named[domain].add(kind, ids, texts, where, placed_at + offset)
    return {f"bronze/{domain}": _bronze_table(domain, rows, rng) for domain, rows in named.items()}


def _bronze_table(domain: str, rows: _Rows, rng: np.random.Generator) -> pa.Table:
    """The archiver's bronze rows (BRONZE_SCHEMA) of one domain's generated events."""
    from jobs.lake.tables import BRONZE_SCHEMA
    from schemas.registry import REGISTRY, topic_for

    count = len(rows.payload)
    start_us = (BRONZE_START - EPOCH) // timedelta(microseconds=1)
    at_us = start_us + np.concatenate(rows.at_s) * 1_000_000
    hexes = rng.bytes(16 * count).hex()
    event_ids = [
        f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        for h in (hexes[i : i + 32] for i in range(0, 32 * count, 32))
    ]
    aggregate_type = {t: REGISTRY.spec(t).aggregate_type for t in set(rows.event_type)}
    topics = {region: topic_for(domain, region) for region in set(rows.region)}
    timestamp = pa.timestamp("us", tz="UTC")
    columns: dict[str, Any] = {
        "event_id": pa.array(event_ids, pa.string()),
        "event_type": pa.array(rows.event_type, pa.string()),
        "schema_version": pa.array(np.ones(count, dtype=np.int32)),
        "occurred_at": pa.array(at_us, timestamp),
        "aggregate_type": pa.array([aggregate_type[t] for t in rows.event_type], pa.string()),
        "aggregate_id": pa.array(rows.aggregate_id, pa.string()),
        "correlation_id": pa.nulls(count, pa.string()),
        "causation_id": pa.nulls(count, pa.string()),
        "payload": pa.array(rows.payload, pa.string()),
        "topic": pa.array([topics[r] for r in rows.region], pa.string()),
        "kafka_partition": pa.array(rng.integers(0, 3, count).astype(np.int32)),
        "kafka_offset": pa.array(np.arange(count, dtype=np.int64)),
        "archived_at": pa.array(at_us + 60_000_000, timestamp),
        "event_date": pa.array((at_us // 86_400_000_000).astype(np.int32), pa.date32()),
        "region": pa.array(rows.region, pa.string()),
    }
    return pa.Table.from_pydict(columns, schema=BRONZE_SCHEMA)


# --- part 4's fallback data: product titles --------------------------------------------------

_TITLE_PARTS: dict[str, tuple[list[str], list[str], list[str], list[str]]] = {
    "audio": (
        ["Sonyx", "Boze", "JBLoud", "Sennhaus"],
        ["wireless headphones", "bluetooth earbuds", "portable speaker", "soundbar"],
        ["noise cancelling", "waterproof", "bass boost", "foldable"],
        ["commuting", "the gym", "home cinema", "parties"],
    ),
    "kitchen": (
        ["Tefala", "Kitchenaid", "Ikeo", "Le Crucible"],
        ["frying pan", "electric kettle", "knife set", "stand mixer"],
        ["non-stick", "stainless steel", "induction ready", "ceramic"],
        ["baking", "family dinners", "small kitchens", "camping"],
    ),
    "shoes": (
        ["Nikey", "Adidos", "Pumba", "New Balanse"],
        ["running shoes", "leather boots", "sneakers", "hiking boots"],
        ["breathable", "waterproof", "cushioned", "wide fit"],
        ["marathons", "trails", "winter", "summer"],
    ),
    "books": (
        ["Penguinn", "Harper", "Vintage", "Orbitt"],
        ["crime thriller", "fantasy novel", "cookbook", "biography"],
        ["paperback", "hardcover", "illustrated", "signed edition"],
        ["book clubs", "holiday reading", "young adults", "gift giving"],
    ),
    "fitness": (
        ["Decathlan", "Garminn", "Fitbyte", "Rogue Iron"],
        ["yoga mat", "smartwatch", "dumbbells", "exercise bike"],
        ["non-slip", "heart rate monitor", "adjustable", "GPS"],
        ["home workouts", "runners", "strength training", "yoga"],
    ),
    "garden": (
        ["Gardena", "Bosch Green", "Flymow", "Spearhead"],
        ["lawn mower", "garden hose", "hedge trimmer", "planter"],
        ["cordless", "expandable", "frost proof", "recycled plastic"],
        ["small gardens", "balconies", "allotments", "patios"],
    ),
}


def product_titles(count: int, *, seed: int) -> list[str]:
    """``count`` product titles (brand, attribute, kind, use) over six categories."""
    rng = random.Random(seed)
    categories = sorted(_TITLE_PARTS)
    titles = []
    for n in range(count):
        brands, kinds, attributes, uses = _TITLE_PARTS[categories[n % len(categories)]]
        titles.append(
            f"{rng.choice(brands)} {rng.choice(attributes)} {rng.choice(kinds)} "
            f"for {rng.choice(uses)}"
        )
    return titles


# --- memory of a process tree ----------------------------------------------------------------


def tree_rss(pid: int) -> int:
    """Bytes resident in a process and all its descendants alive now (0 once it is gone).

    A sum of RSS: pages shared between processes (a forked worker's) count once per process.
    """
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += process.memory_info().rss
    return total


class RssSampler:
    """Samples ``tree_rss(pid)`` every ``period`` seconds in a thread: (wall time, bytes)."""

    def __init__(self, pid: int, period: float = SAMPLE_S) -> None:
        self.pid = pid
        self.period = period
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), tree_rss(self.pid)))
            self._stop.wait(self.period)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float | None = None, end: float | None = None) -> int | None:
        """The largest sample (between wall times ``start`` and ``end`` when given)."""
        chosen = [
            rss
            for at, rss in self.samples
            if (start is None or at >= start) and (end is None or at <= end)
        ]
        return max(chosen) if chosen else None


def mib(value: int | None) -> float | None:
    """Bytes as MiB (None stays None)."""
    return None if value is None else value / MIB


# --- part 1: ALS -----------------------------------------------------------------------------


def train_child(argv: Sequence[str]) -> None:
    """The hidden sub-command: train one model on a parquet frame, save it and its timings."""
    parser = argparse.ArgumentParser(prog=f"bench.batch {TRAIN_COMMAND}")
    parser.add_argument("--trainer", choices=TRAINERS, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--spark-memory", default="2g")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from models.recommenders.als import train_implicit, train_spark

    frame = pd.read_parquet(args.data)
    report: dict[str, Any] = {"rows": len(frame)}
    if args.trainer == "implicit":
        report["rss_before_fit"] = tree_rss(os.getpid())
        report["fit_started_at"] = time.time()
        started = time.perf_counter()
        model = train_implicit(
            frame,
            factors=FACTORS,
            iterations=ITERATIONS,
            regularization=IMPLICIT_PARAMS["regularization"],
            alpha=IMPLICIT_PARAMS["alpha"],
            random_state=args.seed,
        )
    else:
        from jobs.spark.session import spark_session
        from souk.settings import Settings

        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, home=args.home, spark_driver_memory=args.spark_memory
        )
        quiet_spark()
        started = time.perf_counter()
        spark = spark_session(settings, "bench")
        report["session_s"] = time.perf_counter() - started
        report["rss_before_fit"] = tree_rss(os.getpid())
        report["fit_started_at"] = time.time()
        started = time.perf_counter()
        model = train_spark(
            spark,
            frame,
            factors=FACTORS,
            iterations=ITERATIONS,
            regularization=SPARK_PARAMS["regularization"],
            alpha=SPARK_PARAMS["alpha"],
            seed=args.seed,
        )
    report["train_s"] = time.perf_counter() - started
    report["fit_ended_at"] = time.time()
    report["params"] = model.params
    model.save(args.out)
    (args.out / "result.json").write_text(json.dumps(report))
    if args.trainer == "spark":
        spark.stop()


@dataclass
class Trained:
    """One trainer's figures."""

    trainer: str
    train_s: float
    fit_s: float | None
    session_s: float | None
    wall_s: float
    peak_rss: int | None
    peak_rss_fit: int | None
    rss_before_fit: int | None
    users: int
    items: int
    metrics: dict[str, float]

    def report(self) -> dict[str, Any]:
        """The figures as JSON-able values."""
        return {
            "train_s": round(self.train_s, 2),
            "library_fit_s": _round(self.fit_s, 2),
            "spark_session_start_s": _round(self.session_s, 2),
            "child_wall_s": round(self.wall_s, 2),
            "peak_rss_mib": _round(mib(self.peak_rss), 1),
            "peak_rss_during_training_mib": _round(mib(self.peak_rss_fit), 1),
            "rss_before_training_mib": _round(mib(self.rss_before_fit), 1),
            "model_users": self.users,
            "model_items": self.items,
            **{key: round(value, 5) for key, value in self.metrics.items()},
        }


def run_trainer(
    trainer: str, data: Path, out: Path, work: Path, args: argparse.Namespace
) -> tuple[dict[str, Any], float, RssSampler]:
    """Run one trainer child while sampling its tree's RSS; its report, wall seconds, samples."""
    command = [
        sys.executable,
        "-m",
        "bench.batch",
        TRAIN_COMMAND,
        "--trainer",
        trainer,
        "--data",
        str(data),
        "--out",
        str(out),
        "--home",
        str(work / "spark-home"),
        "--spark-memory",
        args.spark_memory,
        "--seed",
        str(args.seed),
    ]
    log = work / f"train-{trainer}.log"
    started = time.perf_counter()
    with log.open("wb") as sink:
        child = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            with RssSampler(child.pid) as sampler:
                code = child.wait(TRAIN_TIMEOUT_S)
        except BaseException:
            child.kill()
            child.wait()
            raise
    wall = time.perf_counter() - started
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise BenchError(f"the {trainer} trainer exited with {code}:\n" + "\n".join(tail))
    report: dict[str, Any] = json.loads((out / "result.json").read_text())
    return report, wall, sampler


def evaluate(
    model: Any,
    relevant: Mapping[str, set[str]],
    seen: Mapping[str, list[str]],
    users: list[str],
    catalog_size: int,
) -> dict[str, float]:
    """precision/recall/ndcg/map@K and coverage of ``model`` on ``users``' held-out items."""
    from models.evaluation.metrics import ranking_metrics

    recommendations = model.recommend_many(users, K, seen)
    scored = ranking_metrics(
        recommendations, {u: relevant[u] for u in users}, K, catalog_size=catalog_size
    )
    return {key: float(value) for key, value in scored.items() if "@" in key}


def run_als(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Part 1: both trainers on the same split, each in a child; speed, memory, quality."""
    from models.evaluation.split import cut_at_fraction, time_split
    from models.recommenders.artifact import FactorModel

    users = scaled(USERS, args.scale, 10)
    items = scaled(ITEMS, args.scale, 50)
    train_rows = scaled(TRAIN_INTERACTIONS, args.scale, 100)
    total = round(train_rows / (1 - TEST_FRACTION))
    with console.status(f"als: generating {total:,} interactions…"):
        frame = taste_interactions(users, items, total, seed=args.seed)
        split = time_split(frame, cut_at_fraction(frame, TEST_FRACTION))
        data = work / "als-train.parquet"
        split.train.to_parquet(data, index=False)
        relevant = split.relevant()
        seen = split.seen()
        catalog = len(split.catalog())
    eval_users = sorted(relevant)
    if len(eval_users) > EVAL_USERS:
        eval_users = sorted(random.Random(args.seed).sample(eval_users, EVAL_USERS))
    results: dict[str, Trained] = {}
    for trainer in TRAINERS:
        out = work / f"als-{trainer}"
        with console.status(f"als: training with {trainer} ({len(split.train):,} rows)…"):
            report, wall, sampler = run_trainer(trainer, data, out, work, args)
        with console.status(f"als: scoring {trainer} on {len(eval_users):,} held-out users…"):
            model = FactorModel.load(out)
            metrics = evaluate(model, relevant, seen, eval_users, catalog)
        results[trainer] = Trained(
            trainer=trainer,
            train_s=float(report["train_s"]),
            fit_s=report["params"].get("fit_s"),
            session_s=report.get("session_s"),
            wall_s=wall,
            peak_rss=sampler.peak(),
            peak_rss_fit=sampler.peak(report["fit_started_at"], report["fit_ended_at"]),
            rss_before_fit=report.get("rss_before_fit"),
            users=len(model.user_ids),
            items=len(model.item_ids),
            metrics=metrics,
        )
        console.print(
            f"als: {trainer} trained in {report['train_s']:.1f} s, "
            f"precision@{K} {metrics[f'precision@{K}']:.4f}"
        )
    spark, local = results["spark"], results["implicit"]
    return {
        "data": {
            "users": users,
            "items": items,
            "interactions": total,
            "taste_groups": taste_shape(items).groups,
            **split.describe(),
            "evaluated_users": len(eval_users),
        },
        "params": {
            "factors": FACTORS,
            "iterations": ITERATIONS,
            "implicit": IMPLICIT_PARAMS,
            "spark": SPARK_PARAMS,
            "spark_driver_memory": args.spark_memory,
            "cpus": os.cpu_count(),
        },
        "implicit": local.report(),
        "spark": spark.report(),
        "ratio_spark_to_implicit": {
            "train_s": _round(ratio(spark.train_s, local.train_s)),
            "peak_rss": _round(ratio(spark.peak_rss, local.peak_rss)),
            f"precision@{K}": _round(
                ratio(spark.metrics[f"precision@{K}"], local.metrics[f"precision@{K}"])
            ),
        },
        "item_vectors": str(work / "als-implicit"),
    }


def print_als(result: Mapping[str, Any]) -> None:
    """One table: a column per trainer and their ratio."""
    data = result["data"]
    table = Table(
        title=f"ALS on {data['users']:,} customers x {data['items']:,} products, "
        f"{data['train_rows']:,} training rows",
        caption=f"rank {FACTORS}, {ITERATIONS} sweeps each, {result['params']['cpus']} cores; "
        "peak = summed RSS of the trainer's process tree (the Spark JVM and its workers "
        f"included) sampled every {SAMPLE_S * 1000:.0f} ms; quality on "
        f"{data['evaluated_users']:,} users' held-out (latest {TEST_FRACTION:.0%}) rows",
    )
    table.add_column("measure")
    table.add_column("implicit", justify="right")
    table.add_column("Spark MLlib", justify="right")
    table.add_column("Spark / implicit", justify="right")
    local, spark = result["implicit"], result["spark"]

    def row(label: str, key: str, unit: str = "", digits: int = 1) -> None:
        table.add_row(
            label,
            fmt(local[key], unit, digits),
            fmt(spark[key], unit, digits),
            fmt_ratio(ratio(spark[key], local[key])),
        )

    row("training (the train_* call)", "train_s", " s")
    row("library fit alone", "library_fit_s", " s")
    table.add_row("Spark session start", "-", fmt(spark["spark_session_start_s"], " s", 1), "")
    row("peak RSS, whole child", "peak_rss_mib", " MiB", 0)
    row("peak RSS during training", "peak_rss_during_training_mib", " MiB", 0)
    row("RSS before training", "rss_before_training_mib", " MiB", 0)
    for metric in ("precision", "recall", "ndcg", "map", "coverage"):
        row(f"{metric}@{K}", f"{metric}@{K}", "", 4)
    console.print(table)


# --- part 2: the gold build ------------------------------------------------------------------


class _ProductPayload(msgspec.Struct):
    product_id: str | None = None


class _Line(msgspec.Struct):
    product_id: str | None = None
    quantity: int = 0


class _PlacedPayload(msgspec.Struct):
    lines: list[_Line] = []


def _first_copies(table: pa.Table, event_type: str) -> pd.DataFrame:
    """Rows of ``event_type`` once per event_id (the first archived copy, as silver keeps)."""
    frame = table.to_pandas()
    frame = frame.sort_values("archived_at", kind="stable").drop_duplicates("event_id")
    return frame[frame["event_type"] == event_type]


def _decode_all(payloads: pd.Series, decoder: msgspec.json.Decoder[Any]) -> list[Any]:
    """Every JSON payload decoded in one call (one JSON array of them)."""
    if payloads.empty:
        return []
    return list(decoder.decode(("[" + ",".join(payloads.tolist()) + "]").encode()))


def plain_item_stats(root: str) -> dict[str, tuple[int, int, int, int]]:
    """gold/item_stats from bronze in one process: (views, cart_adds, purchases, units).

    pyarrow reads the three bronze tables it needs, pandas keeps each event's first archived
    copy, msgspec decodes the payloads; counts in Python dicts.
    """
    from jobs.lake.delta_rs import DeltaRsStore

    store = DeltaRsStore(root)
    columns = ["event_id", "event_type", "occurred_at", "aggregate_id", "payload", "archived_at"]
    views: dict[str, int] = {}
    carts: dict[str, int] = {}
    for table, event_type, counts in (
        ("bronze/behaviour", "product.viewed", views),
        ("bronze/carts", "cart.item_added", carts),
    ):
        if not store.exists(table):
            continue
        rows = _first_copies(store.read(table, columns=columns), event_type)
        decoder = msgspec.json.Decoder(list[_ProductPayload])
        for payload in _decode_all(rows["payload"], decoder):
            if payload.product_id is not None:
                counts[payload.product_id] = counts.get(payload.product_id, 0) + 1
    orders: dict[str, set[str]] = {}
    units: dict[str, int] = {}
    if store.exists("bronze/orders"):
        placed = _first_copies(store.read("bronze/orders", columns=columns), "order.placed")
        # An order counts once: its first placement (by time, then event id), as silver's.
        placed = placed.sort_values(["occurred_at", "event_id"]).drop_duplicates("aggregate_id")
        decoder = msgspec.json.Decoder(list[_PlacedPayload])
        decoded = _decode_all(placed["payload"], decoder)
        for order_id, payload in zip(placed["aggregate_id"].tolist(), decoded, strict=True):
            for line in payload.lines:
                if line.product_id is None:
                    continue
                orders.setdefault(line.product_id, set()).add(order_id)
                units[line.product_id] = units.get(line.product_id, 0) + line.quantity
    products = set(views) | set(carts) | set(orders)
    return {
        p: (views.get(p, 0), carts.get(p, 0), len(orders.get(p, ())), units.get(p, 0))
        for p in products
    }


def compare_item_stats(
    plain: Mapping[str, tuple[int, int, int, int]], gold: pa.Table
) -> tuple[int, int]:
    """(products whose four counts differ or are missing on one side, products compared)."""
    rows = gold.select(["product_id", "views", "cart_adds", "purchases", "units"]).to_pylist()
    theirs = {
        r["product_id"]: (r["views"], r["cart_adds"], r["purchases"], r["units"]) for r in rows
    }
    keys = set(plain) | set(theirs)
    return sum(1 for key in keys if plain.get(key) != theirs.get(key)), len(keys)


def quiet_spark() -> None:
    """No console progress bars from the Spark sessions this process starts (they redraw
    over the benchmark's own output); set before the JVM starts, unless set already."""
    os.environ.setdefault(
        "PYSPARK_SUBMIT_ARGS", "--conf spark.ui.showConsoleProgress=false pyspark-shell"
    )


def run_gold(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Part 2: bronze → silver → gold on a local[*] session, beside the plain pass."""
    import jobs.gold
    import jobs.silver
    from jobs.lake.delta_rs import DeltaRsStore
    from jobs.lake.store import lake_root
    from jobs.lake.tables import BRONZE_PARTITIONS
    from jobs.spark.session import spark_session
    from souk.settings import Settings

    events = scaled(BRONZE_EVENTS, args.scale, 1_000)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=work / "gold-home",
        lake_uri=None,
        spark_driver_memory=args.spark_memory,
    )
    root = lake_root(settings)
    store = DeltaRsStore(root)
    with console.status(f"gold: writing {events:,} bronze events…"):
        started = time.perf_counter()
        tables = synthetic_bronze(events, seed=args.seed)
        generated_s = time.perf_counter() - started
        per_table = {name: table.num_rows for name, table in tables.items()}
        started = time.perf_counter()
        for name, table in tables.items():
            store.append(name, table, partition_by=BRONZE_PARTITIONS)
        written_s = time.perf_counter() - started
        del tables
    console.print(
        f"gold: {events:,} bronze events generated in {generated_s:.1f} s, "
        f"written in {written_s:.1f} s"
    )
    with console.status("gold: the plain pyarrow pass…"):
        started = time.perf_counter()
        plain = plain_item_stats(root)
        plain_s = time.perf_counter() - started
    quiet_spark()
    with console.status("gold: starting Spark…"):
        started = time.perf_counter()
        spark = spark_session(settings, "bench")
        session_s = time.perf_counter() - started
    try:
        with RssSampler(os.getpid()) as sampler:
            with console.status("gold: jobs.silver (full)…"):
                started = time.perf_counter()
                silver = jobs.silver.run(settings, spark=spark, full=True)
                silver_s = time.perf_counter() - started
            with console.status("gold: jobs.gold (full)…"):
                started = time.perf_counter()
                gold = jobs.gold.run(settings, spark=spark, full=True, as_of=GOLD_AS_OF)
                gold_s = time.perf_counter() - started
    finally:
        spark.stop()
    differ, compared = compare_item_stats(plain, store.read(jobs.gold.ITEM_STATS))
    jobs_s = silver_s + gold_s
    return {
        "events": events,
        "bronze_rows": per_table,
        "generate_s": round(generated_s, 2),
        "write_bronze_s": round(written_s, 2),
        "spark_session_start_s": round(session_s, 2),
        "silver": {
            "seconds": round(silver_s, 2),
            "rows_in": silver.rows_in,
            "rows_out": silver.rows_out,
            "events_per_s": round(events / silver_s),
        },
        "gold": {
            "seconds": round(gold_s, 2),
            "rows_in": gold.rows_in,
            "rows_out": gold.rows_out,
            "events_per_s": round(events / gold_s),
        },
        "silver_and_gold": {"seconds": round(jobs_s, 2), "events_per_s": round(events / jobs_s)},
        "plain_item_stats": {
            "seconds": round(plain_s, 2),
            "events_per_s": round(events / plain_s),
            "products": len(plain),
        },
        "ratio_jobs_to_plain_events_per_s": _round(ratio(plain_s, jobs_s)),
        "item_stats_differ": {"differing": differ, "compared": compared},
        "peak_rss_mib_this_process_and_jvm": _round(mib(sampler.peak()), 1),
        "spark_driver_memory": args.spark_memory,
    }


def print_gold(result: Mapping[str, Any]) -> None:
    """One table: a row per pass."""
    events = result["events"]
    table = Table(
        title=f"Silver + gold build on {events:,} bronze events (full runs, Spark local[*])",
        caption="events/s = bronze events ÷ wall seconds of the pass; plain: one process, "
        "pyarrow reads the 3 bronze tables it needs, pandas keeps first copies, msgspec "
        "decodes payloads, Python dicts count gold/item_stats; "
        f"Spark session start ({result['spark_session_start_s']:.1f} s) excluded",
    )
    for column in ("pass", "seconds", "events/s", "÷ plain events/s", "rows written"):
        table.add_column(column, justify="left" if column == "pass" else "right")
    plain_rate = result["plain_item_stats"]["events_per_s"]
    for label, key in (
        ("jobs.silver", "silver"),
        ("jobs.gold", "gold"),
        ("silver + gold", "silver_and_gold"),
        ("plain item_stats", "plain_item_stats"),
    ):
        part = result[key]
        written = part.get("rows_out")
        table.add_row(
            label,
            fmt(part["seconds"], " s", 1),
            fmt(part["events_per_s"]),
            fmt_ratio(ratio(part["events_per_s"], plain_rate)),
            "-" if written is None else f"{sum(written.values()):,} ({len(written)} tables)",
        )
    console.print(table)
    differ = result["item_stats_differ"]
    console.print(
        f"gold/item_stats = plain: {differ['compared'] - differ['differing']:,}/"
        f"{differ['compared']:,} products; peak RSS of this process + the JVM during the jobs: "
        f"{fmt(result['peak_rss_mib_this_process_and_jvm'], ' MiB')}"
    )


# --- part 3: Feast online reads --------------------------------------------------------------


def customer_stats_table(customers: int, *, seed: int, now: datetime) -> pa.Table:
    """``gold/customer_stats`` rows as jobs/gold.py writes them: one per customer, in EUR."""
    rng = np.random.default_rng(seed)
    orders = rng.integers(1, 30, customers)
    last_days = rng.integers(0, 25, customers)
    now_us = (now - EPOCH) // timedelta(microseconds=1)
    last_us = now_us - last_days * 86_400_000_000
    timestamp = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "customer_id": pa.array(_names("cus_", customers, 7).tolist(), pa.string()),
            "currency": pa.array(["EUR"] * customers, pa.string()),
            "orders": pa.array(orders.astype(np.int64)),
            "spend_minor": pa.array(orders * rng.integers(1_000, 20_000, customers)),
            "first_order_at": pa.array(last_us - orders * 86_400_000_000, timestamp),
            "last_order_at": pa.array(last_us, timestamp),
            "recency_days": pa.array(last_days.astype(np.int32)),
        }
    )


def redis_key(customer_id: str) -> bytes:
    """Feast's Redis key of a customer entity (serialized entity key + project)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from features.store import ENTITY_KEY_SERIALIZATION_VERSION, PROJECT

    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(string_val=customer_id)])
    return (
        bytes(
            serialize_entity_key(
                key, entity_key_serialization_version=ENTITY_KEY_SERIALIZATION_VERSION
            )
        )
        + PROJECT.encode()
    )


def run_feast(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Part 3: materialise customer stats, then time online reads beside raw HGETALL."""
    import redis

    from features.batch import BATCH_VIEWS
    from features.jobs import materialize
    from features.store import feature_store
    from jobs.lake.store import table_store
    from souk.settings import Settings
    from souk.stack import Stack

    customers = scaled(FEAST_CUSTOMERS, args.scale, 200)
    stack = Stack(Settings(_env_file=None, home=work / "stack"))  # type: ignore[call-arg]
    try:
        with console.status("feast: starting Valkey…"):
            url = stack.up_component("redis")
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, home=work / "feast-home", redis_url=url, lake_uri=None
        )
        table = customer_stats_table(customers, seed=args.seed, now=datetime.now(UTC))
        table_store(settings).overwrite("gold/customer_stats", table)
        with console.status(f"feast: materialising {customers:,} customers…"):
            started = time.perf_counter()
            job = materialize(settings)
            materialize_s = time.perf_counter() - started
        store = feature_store(settings, url)
        view = BATCH_VIEWS["customer_purchase_stats"]
        refs = [f"{view.name}:{feature.name}" for feature in view.features]
        client: Any = redis.Redis.from_url(url)  # keys are bytes (the stubs say str)
        ids = table.column("customer_id").to_pylist()
        expected = dict(zip(ids, table.column("orders").to_pylist(), strict=True))
        keys = {customer: redis_key(customer) for customer in ids}
        rng = random.Random(args.seed)

        def feast_read(batch: list[str]) -> dict[str, Any]:
            rows = [{"customer_id": customer} for customer in batch]
            return store.get_online_features(features=refs, entity_rows=rows).to_dict()

        def raw_read(batch: list[str]) -> list[Any]:
            if len(batch) == 1:
                return [client.hgetall(keys[batch[0]])]
            pipe = client.pipeline(transaction=False)
            for customer in batch:
                pipe.hgetall(keys[customer])
            return list(pipe.execute())

        out: dict[str, Any] = {
            "customers": customers,
            "materialize_s": round(materialize_s, 2),
            "materialize_rows_out": job.rows_out,
            "features": refs,
        }
        for size in FEAST_BATCHES:
            timings: dict[str, list[float]] = {"feast": [], "raw": []}
            missing = {"feast": 0, "raw": 0}
            wrong = 0
            with console.status(f"feast: {FEAST_READS} reads of {size} customers…"):
                for n in range(WARMUP + FEAST_READS):
                    batch = rng.sample(ids, size)
                    # Alternating sides share the machine's noise evenly.
                    order = ("feast", "raw") if n % 2 == 0 else ("raw", "feast")
                    for side in order:
                        started = time.perf_counter()
                        answer: Any = feast_read(batch) if side == "feast" else raw_read(batch)
                        elapsed = (time.perf_counter() - started) * 1000
                        if n < WARMUP:
                            continue
                        timings[side].append(elapsed)
                        if side == "feast":
                            got = answer["orders"]
                            missing["feast"] += sum(v is None for v in got)
                            wrong += sum(
                                v is not None and v != expected[c]
                                for c, v in zip(batch, got, strict=True)
                            )
                        else:
                            missing["raw"] += sum(not fields for fields in answer)
            feast_ms, raw_ms = latency_ms(timings["feast"]), latency_ms(timings["raw"])
            out[f"entities_{size}"] = {
                "feast_ms": feast_ms,
                "raw_hgetall_ms": raw_ms,
                "ratio_feast_to_raw_p50": _round(ratio(feast_ms["p50"], raw_ms["p50"]), 2),
                "ratio_feast_to_raw_p99": _round(ratio(feast_ms["p99"], raw_ms["p99"]), 2),
                "missing_values": missing,
                "feast_wrong_orders_values": wrong,
            }
        client.close()
        return out
    finally:
        with contextlib.suppress(Exception):
            stack.down()


def print_feast(result: Mapping[str, Any]) -> None:
    """One table: a row per batch size and percentile."""
    table = Table(
        title=f"Feast online reads of customer_purchase_stats ({result['customers']:,} "
        "customers in a private Valkey)",
        caption=f"{FEAST_READS} reads per batch size after {WARMUP} warm-up ones, random "
        "customers, Feast and raw alternating; raw: redis-py HGETALL of Feast's own keys "
        "(one pipeline for a batch), no decoding; Feast: get_online_features(...).to_dict(); "
        f"materialize took {result['materialize_s']:.1f} s",
    )
    for column in ("customers per read", "percentile", "Feast", "raw HGETALL", "Feast / raw"):
        table.add_column(column, justify="right")
    for size in FEAST_BATCHES:
        part = result[f"entities_{size}"]
        for q in ("p50", "p99"):
            table.add_row(
                str(size),
                q,
                fmt(part["feast_ms"][q], " ms", 2),
                fmt(part["raw_hgetall_ms"][q], " ms", 3),
                fmt_ratio(ratio(part["feast_ms"][q], part["raw_hgetall_ms"][q])),
            )
    console.print(table)
    checks = [
        f"{size}: {part['missing_values']['feast']} missing / "
        f"{part['feast_wrong_orders_values']} wrong in Feast, "
        f"{part['missing_values']['raw']} empty hashes raw"
        for size in FEAST_BATCHES
        for part in (result[f"entities_{size}"],)
    ]
    console.print("values read, per batch size: " + "; ".join(checks))


# --- part 4: FAISS ---------------------------------------------------------------------------


def item_vectors(
    args: argparse.Namespace, work: Path, als: Mapping[str, Any] | None
) -> tuple[list[str], npt.NDArray[np.float32], str]:
    """(ids, vectors, what they are): the ALS item factors, else title embeddings."""
    if als is not None:
        folder = Path(als["item_vectors"])
        vectors = np.load(folder / "item_factors.npy").astype(np.float32)
        ids = [str(item) for item in json.loads((folder / "item_ids.json").read_text())]
        return ids, vectors, f"implicit ALS item factors ({vectors.shape[1]}-d)"
    from models.embeddings.text import TextEncoder

    count = scaled(ITEMS, args.scale, 300)
    titles = product_titles(count, seed=args.seed)
    with console.status(f"faiss: embedding {count:,} product titles…"):
        encoder = TextEncoder()
        vectors = encoder.encode(titles)
    ids = [f"prd_{n:06d}" for n in range(count)]
    what = f"MiniLM title embeddings ({vectors.shape[1]}-d)"
    return ids, np.asarray(vectors, dtype=np.float32), what


def run_faiss(
    args: argparse.Namespace, work: Path, als: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Part 4: build each kind, then time single queries and measure recall against exact."""
    from models.vector_index import build_index, load_index, recall_at_k

    ids, vectors, source = item_vectors(args, work, als)
    norms = np.linalg.norm(vectors, axis=1)
    usable = np.isfinite(norms) & (norms > 1e-12)  # a zero vector has no direction
    ids = [item for item, ok in zip(ids, usable.tolist(), strict=True) if ok]
    vectors = vectors[usable]
    built: dict[str, Any] = {}
    indexes = {}
    for kind in FAISS_KINDS:
        with console.status(f"faiss: building {kind} over {len(ids):,} items…"):
            info = build_index(ids, vectors, work / "faiss" / kind, kind=kind, seed=args.seed)
        indexes[kind] = load_index(work / "faiss" / kind)
        built[kind] = {
            "build_s": info.build_seconds,
            "params": info.params,
            "build_recall_at_10": info.recall_at_10,
        }
    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(len(ids), size=min(FAISS_QUERIES, len(ids)), replace=False))
    query_ids = [ids[i] for i in sample.tolist()]
    queries = vectors[sample]
    import faiss

    default_threads = faiss.omp_get_max_threads()
    out: dict[str, Any] = {
        "vectors": source,
        "items": len(ids),
        "queries": len(sample),
        "omp_threads_default": default_threads,
    }
    latencies: dict[str, dict[str, Any]] = {kind: {} for kind in FAISS_KINDS}
    for label, threads in (("default", default_threads), ("one_thread", 1)):
        timings: dict[str, list[float]] = {kind: [] for kind in FAISS_KINDS}
        faiss.omp_set_num_threads(threads)
        try:
            with console.status(f"faiss: {len(sample):,} single queries per kind ({label})…"):
                for kind in FAISS_KINDS:  # warm-up
                    for query in queries[:WARMUP]:
                        indexes[kind].search(query, K)
                for query in queries:
                    for kind in FAISS_KINDS:  # interleaved: every kind meets the same noise
                        started = time.perf_counter()
                        indexes[kind].search(query, K)
                        timings[kind].append((time.perf_counter() - started) * 1000)
        finally:
            faiss.omp_set_num_threads(default_threads)
        for kind in FAISS_KINDS:
            latencies[kind][label] = latency_ms(timings[kind])
    for kind in FAISS_KINDS:
        with console.status(f"faiss: recall@{K} of {kind}…"):
            recall = (
                1.0
                if kind == "flat"
                else recall_at_k(indexes[kind], indexes["flat"], queries, K, query_ids=query_ids)
            )
        mine, exact = latencies[kind], latencies["flat"]
        out[kind] = {
            **built[kind],
            "query_ms": mine["default"],
            "query_ms_one_omp_thread": mine["one_thread"],
            f"recall@{K}": round(recall, 4),
            "ratio_to_exact_p50": _round(ratio(mine["default"]["p50"], exact["default"]["p50"])),
            "ratio_to_exact_p99": _round(ratio(mine["default"]["p99"], exact["default"]["p99"])),
            "ratio_to_exact_p50_one_omp_thread": _round(
                ratio(mine["one_thread"]["p50"], exact["one_thread"]["p50"])
            ),
        }
    return out


def print_faiss(result: Mapping[str, Any]) -> None:
    """One table: a column per index kind."""
    table = Table(
        title=f"FAISS over {result['items']:,} {result['vectors']}",
        caption=f"{result['queries']:,} single queries (VectorIndex.search, k={K}) per kind, "
        f"kinds interleaved, with FAISS's default {result['omp_threads_default']} OpenMP threads "
        "and then with 1; recall@10 against exact with the query's own item left out "
        "(ties with the 10th exact score count); search settings as build_index tuned them",
    )
    table.add_column("measure")
    names = {"flat": "exact (flat)", "hnsw": "HNSW", "ivfpq": "IVF-PQ"}
    for kind in FAISS_KINDS:
        table.add_column(names[kind], justify="right")

    def row(label: str, cell: Callable[[Mapping[str, Any]], str]) -> None:
        table.add_row(label, *(cell(result[kind]) for kind in FAISS_KINDS))

    row("build", lambda r: fmt(r["build_s"], " s", 2))
    row("query p50", lambda r: fmt(r["query_ms"]["p50"], " ms", 3))
    row("query p99", lambda r: fmt(r["query_ms"]["p99"], " ms", 3))
    row("p50 / exact p50", lambda r: fmt_ratio(r["ratio_to_exact_p50"]))
    row("p99 / exact p99", lambda r: fmt_ratio(r["ratio_to_exact_p99"]))
    row("p50, 1 thread", lambda r: fmt(r["query_ms_one_omp_thread"]["p50"], " ms", 3))
    row("p99, 1 thread", lambda r: fmt(r["query_ms_one_omp_thread"]["p99"], " ms", 3))
    row("p50 / exact, 1 thread", lambda r: fmt_ratio(r["ratio_to_exact_p50_one_omp_thread"]))
    row(f"recall@{K}", lambda r: f"{r[f'recall@{K}']:.4f}")
    row(
        "search setting",
        lambda r: (
            ", ".join(
                f"{k} {v}"
                for k, v in r["params"].items()
                if k in ("ef_search", "nprobe", "k_factor")
            )
            or "-"
        ),
    )
    console.print(table)


# --- the run ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies every data size (default 1.0)"
    )
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=7, help="of the generated data")
    parser.add_argument(
        "--spark-memory", default="2g", help="spark.driver.memory of both Spark parts"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed and checked arguments; ``parts`` becomes the list to run."""
    args = build_parser().parse_args(argv)
    if not 0 < args.scale <= 10:
        raise SystemExit("--scale must be in (0, 10]")
    args.parts = parse_parts(args.parts)
    return args


@contextlib.contextmanager
def work_folder() -> Iterator[Path]:
    """A private folder for the run (lake, models, Valkey), removed afterwards."""
    from souk.stack.homes import temporary_home

    path = temporary_home("souk-bench-batch-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the asked parts and print each one's figures beside its baseline."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [TRAIN_COMMAND]:
        train_child(argv[1:])
        return
    args = parse_args(argv)
    figures: dict[str, Any] = {
        "scale": args.scale,
        "seed": args.seed,
        "cpus": os.cpu_count(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "parts": {},
    }
    printers: dict[str, Callable[[Mapping[str, Any]], None]] = {
        "als": print_als,
        "gold": print_gold,
        "feast": print_feast,
        "faiss": print_faiss,
    }
    failed: list[str] = []
    with work_folder() as work:
        for part in args.parts:
            started = time.perf_counter()
            try:
                if part == "als":
                    result = run_als(args, work)
                elif part == "gold":
                    result = run_gold(args, work)
                elif part == "feast":
                    result = run_feast(args, work)
                else:
                    result = run_faiss(args, work, figures["parts"].get("als"))
            except Exception as exc:  # a part's failure is reported; the others still run
                failed.append(part)
                figures["parts"][part] = {"error": f"{type(exc).__name__}: {exc}"}
                console.print(f"[red]{part} failed[/]:")
                console.print(traceback.format_exc(), markup=False, highlight=False)
                continue
            result["part_wall_s"] = round(time.perf_counter() - started, 1)
            figures["parts"][part] = result
            console.print(f"{part}: done in {result['part_wall_s']:.0f} s")
    for part, result in figures["parts"].items():
        if "error" not in result:
            printers[part](result)
    if "als" in figures["parts"]:
        figures["parts"]["als"].pop("item_vectors", None)  # a folder that no longer exists
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        console.print(f"figures written to {args.json}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
