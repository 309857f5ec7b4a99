"""The popularity baseline: the same best-sellers for everyone, minus what they already have.

Every personalised model must beat it clearly offline to earn its keep; it is also the
fallback for users the collaborative models never saw (cold start).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.recommenders.artifact import (
    ITEM_COL,
    USER_COL,
    VALUE_COL,
    IdMap,
    read_header,
    read_json,
    write_json,
)

if TYPE_CHECKING:
    from souk.settings import Settings

ITEM_STATS_TABLE = "gold/item_stats"
POPULARITY_FORMAT = "souk.popularity"

#: users: distinct users per item (robust to a few heavy users); strength: summed strength.
Measure = Literal["users", "strength"]


@dataclass(frozen=True, eq=False)
class PopularityModel:
    """Items ranked by one global score."""

    item_ids: IdMap
    scores: npt.NDArray[np.float64]  # float64, one per item
    params: dict[str, Any] = field(default_factory=dict)
    _ranking: npt.NDArray[np.intp] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.item_ids):
            raise ValueError("one score per item expected")
        # Stable sort on -score: ties keep id order, so rankings are deterministic.
        object.__setattr__(self, "_ranking", np.argsort(-self.scores, kind="stable"))

    def top(self, n: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
        """The ``n`` most popular items not in ``exclude``."""
        skip = set(exclude)
        result: list[tuple[str, float]] = []
        for pos in self._ranking:
            item = str(self.item_ids.ids[pos])
            if item not in skip:
                result.append((item, float(self.scores[pos])))
                if len(result) == n:
                    break
        return result

    def recommend(
        self, user_id: str, n: int = 10, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The popular items ``user_id`` does not have (the user does not matter otherwise)."""
        return self.top(n, exclude)

    def recommend_many(
        self,
        user_ids: Sequence[str],
        n: int = 10,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, list[str]]:
        """Top-``n`` popular items per user, minus each user's exclusions."""
        exclude = exclude or {}
        return {user: [item for item, _ in self.top(n, exclude.get(user, ()))] for user in user_ids}

    def save(self, directory: Path) -> None:
        """Write ids, scores and params as JSON."""
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "item_ids.json", self.item_ids.tolist())
        np.save(directory / "scores.npy", self.scores)
        write_json(
            directory / "artifact.json",
            {"format": POPULARITY_FORMAT, "format_version": 1, "params": self.params},
        )

    @classmethod
    def load(cls, directory: Path) -> PopularityModel:
        """Read an artifact written by ``save``."""
        header = read_header(directory, POPULARITY_FORMAT)
        return cls(
            IdMap.of(read_json(directory / "item_ids.json")),
            np.load(directory / "scores.npy"),
            dict(header.get("params", {})),
        )


def train_popularity(interactions: pd.DataFrame, *, by: Measure = "users") -> PopularityModel:
    """Popularity from the interaction table: distinct users (default) or summed strength."""
    if by == "users":
        counts = interactions.groupby(interactions[ITEM_COL].astype(str))[USER_COL].nunique()
    else:
        counts = interactions.groupby(interactions[ITEM_COL].astype(str))[VALUE_COL].sum()
    counts = counts.sort_index()
    return PopularityModel(
        IdMap.of(counts.index.tolist()),
        counts.to_numpy(dtype=np.float64),
        {"trainer": "popularity", "by": by, "items": len(counts)},
    )


def popularity_from_item_stats(
    item_stats: pd.DataFrame, *, by: str = "purchases"
) -> PopularityModel:
    """Popularity from the gold item statistics (e.g. purchases, views, cart_adds)."""
    stats = item_stats.assign(**{ITEM_COL: item_stats[ITEM_COL].astype(str)}).sort_values(ITEM_COL)
    return PopularityModel(
        IdMap.of(stats[ITEM_COL].tolist()),
        stats[by].to_numpy(dtype=np.float64),
        {"trainer": "popularity", "by": by, "items": len(stats)},
    )


def load_item_stats(settings: Settings) -> pd.DataFrame:
    """The gold item statistics from the lake."""
    from jobs.lake import table_store

    return table_store(settings).read(ITEM_STATS_TABLE).to_pandas()
