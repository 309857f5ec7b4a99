"""The promoted fraud model (registry kind ``fraud``) as the scorer's :class:`FraudModel`.

``models.registry.PromotedModel`` checks the registry's pointer every few seconds and loads a
newly promoted version without a restart; until one is promoted ``current()`` is None and the
rules decide alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import ThreadpoolController

from models.registry import ModelRegistry, PromotedModel
from serving.fraud.model import FraudModel

if TYPE_CHECKING:  # the training module pulls in the lake and Spark helpers: loaded lazily
    from models.fraud.training import TrainedFraudModel

#: The registry kind of the fraud classifier (``models.fraud.job.KIND``).
KIND = "fraud"


class LoadedFraudModel:
    """A trained classifier with its registry version."""

    def __init__(self, trained: TrainedFraudModel, version: str) -> None:
        self._trained = trained
        self._version = version

    @property
    def version(self) -> str:
        """The registry version."""
        return self._version

    @property
    def features(self) -> Sequence[str]:
        """Input columns in order."""
        return self._trained.features

    @property
    def feature_refs(self) -> Sequence[str]:
        """Feast references among the inputs."""
        return self._trained.feature_refs

    def predict(self, rows: Sequence[Mapping[str, float | None]]) -> list[float]:
        """Fraud probabilities (one thread: a request must not fan out over the cores)."""
        matrix = np.array(
            [
                [np.nan if row.get(name) is None else row[name] for name in self.features]
                for row in rows
            ],
            dtype=np.float64,
        )
        # One BLAS/OpenMP thread for a one-row prediction; the controller is built once, as
        # threadpool_limits() rescans the loaded libraries on every call (most of a score).
        with _controller().limit(limits=1):
            return [float(p) for p in self._trained.model.predict_proba(matrix)[:, 1]]


@functools.cache
def _controller() -> ThreadpoolController:
    """The process's thread-pool controller (the libraries loaded when first asked)."""
    return ThreadpoolController()


def _load(path: Path) -> LoadedFraudModel:
    from models.fraud.training import load_fraud_model

    return LoadedFraudModel(load_fraud_model(path), path.name)


class RegistryModels:
    """The promoted ``fraud`` model of a registry, hot-reloaded."""

    def __init__(self, registry: ModelRegistry, *, check_every_s: float = 10.0) -> None:
        self._promoted: PromotedModel[LoadedFraudModel] = PromotedModel(
            registry, KIND, _load, check_every_s=check_every_s
        )

    def current(self) -> FraudModel | None:
        """The model served now, None while none is promoted."""
        return self._promoted.get()

    def refresh(self) -> bool:
        """Check the pointer now (tests, CLI); True when another version was loaded."""
        return self._promoted.refresh()
