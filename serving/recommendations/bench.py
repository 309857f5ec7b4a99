"""Promoted models for load tests and demos, and the demo summary's lines.

``promote_models`` registers and promotes an ALS artifact, an item-vector FAISS index built
from its item factors (what ``item_embeddings`` does without the text part) and optionally a
frequently-bought-together model. ``synthetic_models`` makes a random ALS of N items for the
benchmark (``bench/``), ``demo_lines`` prints a simulated customer's recommendations.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.recommenders.artifact import FactorModel, IdMap
from models.recommenders.fbt import FBTModel
from models.registry import ModelRegistry
from models.vector_index import build_index
from serving.recommendations.engines import ALS, FBT, ITEM_VECTORS


@dataclass(frozen=True)
class PromotedVersions:
    """The version ids promoted by :func:`promote_models`."""

    als: str
    item_vectors: str
    fbt: str | None = None


def promote_models(
    registry: ModelRegistry,
    als: FactorModel,
    fbt: FBTModel | None = None,
    *,
    index_kind: str = "auto",
) -> PromotedVersions:
    """Register and promote ``als``, a FAISS index of its item factors, and ``fbt``."""
    als_version = registry.register(ALS, als.save, {"params": als.params})
    factors = np.asarray(als.item_factors, dtype=np.float32)
    usable = np.linalg.norm(factors, axis=1) > 1e-12
    ids = [item for item, ok in zip(als.item_ids.tolist(), usable, strict=True) if ok]

    def write(folder: Path) -> None:
        build_index(ids, factors[usable], folder, kind=index_kind, threads=1)  # type: ignore[arg-type]

    vectors_version = registry.register(
        ITEM_VECTORS, write, {"params": {"als_version": als_version.id, "collaborative_weight": 1}}
    )
    registry.promote(ALS, als_version.id)
    registry.promote(ITEM_VECTORS, vectors_version.id)
    fbt_id = None
    if fbt is not None:
        fbt_id = registry.register(FBT, fbt.save).id
        registry.promote(FBT, fbt_id)
    return PromotedVersions(als_version.id, vectors_version.id, fbt_id)


def synthetic_models(
    product_ids: Sequence[str],
    customer_ids: Sequence[str],
    *,
    factors: int = 64,
    seed: int = 0,
) -> FactorModel:
    """A random ALS artifact over the given ids (load tests: latency, not relevance)."""
    rng = np.random.default_rng(seed)
    return FactorModel(
        IdMap.of(list(customer_ids)),
        IdMap.of(list(product_ids)),
        rng.standard_normal((len(customer_ids), factors)).astype(np.float32),
        rng.standard_normal((len(product_ids), factors)).astype(np.float32),
        {"trainer": "synthetic", "seed": seed},
    )


def bench_registry(
    items: int, users: int = 1000, *, root: Path | None = None, factors: int = 64
) -> tuple[ModelRegistry, PromotedVersions, float]:
    """A registry with a promoted ALS + FAISS index of ``items`` items: (registry, versions,
    build seconds). Products are ``prd_bench_<i>``, customers ``cus_bench_<i>``."""
    started = time.perf_counter()
    registry = ModelRegistry(root or Path(tempfile.mkdtemp(prefix="souk-recs-bench-")))
    model = synthetic_models(
        [f"prd_bench_{i:07d}" for i in range(items)],
        [f"cus_bench_{i:07d}" for i in range(users)],
        factors=factors,
    )
    versions = promote_models(registry, model)
    return registry, versions, time.perf_counter() - started


def demo_lines(service: object, customer_id: str, region: str, limit: int = 5) -> list[str]:
    """The demo summary's lines: a customer's for-you list with its model and version."""
    from serving.recommendations.service import RecommendationService, Request

    if not isinstance(service, RecommendationService):
        raise TypeError("demo_lines needs the RecommendationService (services['recommendations'])")
    served = service.for_you(customer_id, limit, Request(region, None, customer_id))
    lines = [
        f"recommendations for {customer_id} ({region}): model {served.model} "
        f"version {served.model_version}" + (" (fallback)" if served.fallback else "")
    ]
    lines += [
        f"  {i + 1}. {pick.title} [{pick.category_id}] {pick.product_id} score {pick.score:.3f}"
        for i, pick in enumerate(served.items)
    ]
    return lines
