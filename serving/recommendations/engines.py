"""The promoted models a serving process answers from, hot-reloaded without a restart.

Three registry kinds: ``als`` (user and item factors; for-you), ``item_vectors`` (the FAISS
index of combined ALS + text item vectors; similar items, taste vectors) and ``fbt``
(frequently bought together). Each sits in a :class:`PromotedModel`, which stats its
PROMOTED pointer at most every ``check_every_s`` seconds and loads a newly promoted version
in the background of one request while the others keep the current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import faiss
import numpy as np

from models.recommenders.artifact import FactorModel
from models.recommenders.fbt import FBTModel
from models.registry import ModelRegistry, PromotedModel
from models.vector_index import IndexInfo, VectorIndex, load_index
from serving.recommendations.model import Scored

ALS, ITEM_VECTORS, FBT = "als", "item_vectors", "fbt"

T = TypeVar("T")


@dataclass(frozen=True)
class AlsIndex:
    """An ALS artifact with an exact inner-product FAISS index over its item factors.

    The query is the user's factor vector scaled to unit length, which ranks items exactly as
    the ALS score ``user · item`` does (the scale is the same for every item).
    """

    model: FactorModel
    index: VectorIndex

    def knows(self, customer_id: str) -> bool:
        """Whether the customer was in the training data."""
        return customer_id in self.model.user_ids

    def recommend(self, customer_id: str, k: int, exclude: set[str]) -> list[Scored]:
        """The ``k`` best items for a known customer minus ``exclude`` ([] when unknown)."""
        row = self.model.user_ids.get(customer_id)
        if row is None:
            return []
        vector = np.asarray(self.model.user_factors[row], dtype=np.float32)
        if not np.any(vector):
            return []
        return [Scored(item, score) for item, score in self.index.search(vector, k, exclude)]


def load_als(folder: Path) -> AlsIndex:
    """Load an ``als`` version and index its item factors (flat inner product, exact)."""
    model = FactorModel.load(folder)
    factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    index = faiss.IndexFlatIP(model.factors)
    index.add(factors)
    info = IndexInfo(
        kind="flat",
        dim=model.factors,
        count=len(model.item_ids),
        params={"faiss_metric": "ip", "source": "als item factors"},
        recall_at_10=1.0,
        recall_queries=0,
        query_ms_p50=0.0,
        build_seconds=0.0,
        metric="inner_product",
    )
    return AlsIndex(model, VectorIndex(index, model.item_ids.tolist(), info, folder))


class Served(Generic[T]):
    """One promoted kind: the model served now and its version id (None before promotion)."""

    def __init__(self, promoted: PromotedModel[T]) -> None:
        self.promoted = promoted

    def get(self) -> tuple[T | None, str | None]:
        """(model, version id), refreshed when due; (None, None) while nothing is promoted."""
        model = self.promoted.get()
        version = self.promoted.version
        return model, (version.id if version is not None and model is not None else None)

    def refresh(self) -> bool:
        """Check the pointer now (tests, CLI); True when a new version was loaded."""
        return self.promoted.refresh()


@dataclass(frozen=True)
class ModelSet:
    """The three promoted kinds recommendations serve from."""

    als: Served[AlsIndex]
    vectors: Served[VectorIndex]
    fbt: Served[FBTModel]

    @classmethod
    def of(cls, registry: ModelRegistry, *, check_every_s: float) -> ModelSet:
        """Follow the registry's promoted ``als``, ``item_vectors`` and ``fbt``."""
        return cls(
            Served(PromotedModel(registry, ALS, load_als, check_every_s=check_every_s)),
            Served(PromotedModel(registry, ITEM_VECTORS, load_index, check_every_s=check_every_s)),
            Served(PromotedModel(registry, FBT, FBTModel.load, check_every_s=check_every_s)),
        )

    def refresh(self) -> list[str]:
        """Check every pointer now; the kinds that loaded a new version."""
        kinds = ((ALS, self.als), (ITEM_VECTORS, self.vectors), (FBT, self.fbt))
        return [kind for kind, served in kinds if served.refresh()]
