"""Recommenders: ALS (implicit locally, Spark MLlib on a cluster), item-kNN, FBT, popularity.

Each model kind saves to and loads from a folder; ``load_artifact`` picks the loader by kind
(the registry's kinds), so serving can load whatever is promoted without knowing the trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.recommenders.artifact import FactorModel, IdMap, Recommender
from models.recommenders.fbt import FBTModel
from models.recommenders.item_knn import ItemKNNModel
from models.recommenders.popularity import PopularityModel

#: Registry kind → artifact loader.
LOADERS: dict[str, Callable[[Path], Any]] = {
    "als": FactorModel.load,
    "item_knn": ItemKNNModel.load,
    "fbt": FBTModel.load,
    "popularity": PopularityModel.load,
}


def load_artifact(kind: str, directory: Path) -> Any:
    """Load the artifact of model ``kind`` from ``directory``."""
    try:
        loader = LOADERS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r} (known: {', '.join(LOADERS)})") from None
    return loader(directory)


__all__ = [
    "LOADERS",
    "FBTModel",
    "FactorModel",
    "IdMap",
    "ItemKNNModel",
    "PopularityModel",
    "Recommender",
    "load_artifact",
]
