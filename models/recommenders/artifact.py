"""The shared recommender artifact: id maps + float32 factor matrices, saved as .npy + JSON.

Every factorisation trainer (implicit's ALS locally, Spark MLlib's ALS on a cluster) produces a
``FactorModel``; serving only ever loads this artifact, whatever trained it. The module also
holds what all trainers share: the user x item matrix of the gold interactions and top-n
selection over score rows.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from souk.settings import Settings

#: The gold table every collaborative model trains on (written by jobs/gold.py).
INTERACTIONS_TABLE = "gold/user_item_interactions"
USER_COL = "customer_id"
ITEM_COL = "product_id"
VALUE_COL = "strength"
TIME_COL = "last_at"

FACTOR_FORMAT = "souk.factor_model"
FORMAT_VERSION = 1


class ArtifactError(ValueError):
    """An artifact folder is missing files, has another format, or inconsistent shapes."""


class Recommender(Protocol):
    """What evaluation and serving need from any recommender."""

    def recommend(
        self, user_id: str, n: int = 10, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``n`` best items for ``user_id`` with their scores, minus ``exclude``."""
        ...

    def recommend_many(
        self,
        user_ids: Sequence[str],
        n: int = 10,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, list[str]]:
        """Top-``n`` item ids for each of ``user_ids`` (unknown users get what the model can)."""
        ...


@dataclass(frozen=True, eq=False)
class IdMap:
    """External string ids ↔ dense row positions (ids sorted, so maps are deterministic)."""

    ids: npt.NDArray[np.object_]  # 1-d array of str
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {key: pos for pos, key in enumerate(self.ids)})
        if len(self._index) != len(self.ids):
            raise ArtifactError("duplicate ids in an id map")

    @classmethod
    def from_values(cls, values: Iterable[Any]) -> IdMap:
        """The sorted distinct ids of ``values`` (cast to str)."""
        return cls(np.asarray(sorted({str(v) for v in values}), dtype=object))

    @classmethod
    def of(cls, ids: Sequence[str]) -> IdMap:
        """An id map keeping ``ids``' order."""
        return cls(np.asarray(list(ids), dtype=object))

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def get(self, key: str) -> int | None:
        """The position of ``key``, None when unknown."""
        return self._index.get(key)

    def positions(self, keys: Iterable[str]) -> npt.NDArray[np.int64]:
        """Positions of the known ``keys`` (unknown ones are dropped)."""
        found = [self._index[k] for k in keys if k in self._index]
        return np.asarray(found, dtype=np.int64)

    def codes(self, values: pd.Series) -> npt.NDArray[np.int64]:
        """Position of each value, -1 where unknown (vectorised for whole columns)."""
        mapped = values.astype(str).map(self._index)
        return np.asarray(mapped.fillna(-1), dtype=np.int64)

    def tolist(self) -> list[str]:
        """The ids in position order."""
        return [str(v) for v in self.ids]


@dataclass(frozen=True, eq=False)
class Interactions:
    """A user x item CSR matrix of interaction values with its id maps."""

    matrix: sp.csr_matrix
    users: IdMap
    items: IdMap

    def user_items(self) -> dict[str, list[str]]:
        """Each user's items (what recommendations exclude: already bought or seen)."""
        indptr, indices = self.matrix.indptr, self.matrix.indices
        item_ids = self.items.ids
        return {
            str(user): item_ids[indices[indptr[row] : indptr[row + 1]]].tolist()
            for row, user in enumerate(self.users.ids)
        }


def interaction_matrix(
    interactions: pd.DataFrame,
    *,
    users: IdMap | None = None,
    items: IdMap | None = None,
    value: str | None = VALUE_COL,
) -> Interactions:
    """The user x item CSR of ``interactions`` (duplicate pairs summed).

    Given id maps are kept (rows of unknown ids dropped), so a test set lines up with the
    model trained on the train set. ``value=None`` counts each row as 1.
    """
    if users is None:
        users = IdMap.from_values(interactions[USER_COL].unique())
    if items is None:
        items = IdMap.from_values(interactions[ITEM_COL].unique())
    rows = users.codes(interactions[USER_COL])
    cols = items.codes(interactions[ITEM_COL])
    if value is None:
        data = np.ones(len(interactions), dtype=np.float32)
    else:
        data = interactions[value].to_numpy(dtype=np.float32)
    keep = (rows >= 0) & (cols >= 0) & (data > 0)  # zero strength carries no signal
    matrix = sp.csr_matrix(
        (data[keep], (rows[keep], cols[keep])), shape=(len(users), len(items)), dtype=np.float32
    )
    matrix.sum_duplicates()
    return Interactions(matrix, users, items)


def load_interactions(settings: Settings) -> pd.DataFrame:
    """The gold user-item interactions from the lake (the only place models read it)."""
    from jobs.lake import table_store

    return table_store(settings).read(INTERACTIONS_TABLE).to_pandas()


def top_n(scores: npt.NDArray[Any], n: int) -> npt.NDArray[np.intp]:
    """Column indices of the ``n`` highest scores of each row, best first (-inf ones dropped).

    Works on a 1-d row too. Rows are padded with -1 when fewer than ``n`` scores are finite.
    """
    matrix = np.atleast_2d(scores)
    n = min(n, matrix.shape[1])
    if n <= 0:
        return np.empty((matrix.shape[0], 0), dtype=np.int64)
    # argpartition is O(items); only the n winners get sorted.
    part = np.argpartition(-matrix, n - 1, axis=1)[:, :n]
    part_scores = np.take_along_axis(matrix, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    best_scores = np.take_along_axis(part_scores, order, axis=1)
    best[~np.isfinite(best_scores)] = -1
    return best if scores.ndim > 1 else best[0]


def exclusion_rows(
    user_ids: Sequence[str], items: IdMap, exclude: Mapping[str, Collection[str]] | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(row, item position) pairs to mask for a batch of users, as two index arrays."""
    empty = np.empty(0, dtype=np.int64)
    if not exclude or not user_ids:
        return empty, empty
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    for row, user in enumerate(user_ids):
        positions = items.positions(exclude.get(user, ()))
        rows.append(np.full(len(positions), row, dtype=np.int64))
        cols.append(positions)
    return np.concatenate(rows), np.concatenate(cols)


def row_batches(count: int, n_items: int, budget: int = 20_000_000) -> Iterable[slice]:
    """Row slices whose dense score block stays under ``budget`` cells (~80 MB of float32)."""
    size = max(1, budget // max(1, n_items))
    for start in range(0, count, size):
        yield slice(start, min(count, start + size))


@dataclass(frozen=True, eq=False)
class FactorModel:
    """A latent-factor recommender: score(user, item) = user_factors[u] · item_factors[i]."""

    user_ids: IdMap
    item_ids: IdMap
    user_factors: npt.NDArray[np.float32]  # float32, (n_users, factors)
    item_factors: npt.NDArray[np.float32]  # float32, (n_items, factors)
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.user_factors.shape[0] != len(self.user_ids):
            raise ArtifactError("user_factors rows do not match user_ids")
        if self.item_factors.shape[0] != len(self.item_ids):
            raise ArtifactError("item_factors rows do not match item_ids")
        if self.user_factors.shape[1] != self.item_factors.shape[1]:
            raise ArtifactError("user and item factors have different ranks")

    @property
    def factors(self) -> int:
        """The rank of the factorisation."""
        return int(self.item_factors.shape[1])

    def recommend(
        self, user_id: str, n: int = 10, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``n`` best-scored items for ``user_id`` minus ``exclude``; [] for an unknown user."""
        row = self.user_ids.get(user_id)
        if row is None:
            return []  # cold start: the caller falls back (popularity, FBT)
        scores = self.item_factors @ self.user_factors[row]
        scores[self.item_ids.positions(exclude)] = -np.inf
        best = top_n(scores, n)
        return [(str(self.item_ids.ids[i]), float(scores[i])) for i in best if i >= 0]

    def recommend_many(
        self,
        user_ids: Sequence[str],
        n: int = 10,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, list[str]]:
        """Top-``n`` items for many users at once (matrix products in bounded batches)."""
        known = [u for u in user_ids if u in self.user_ids]
        result: dict[str, list[str]] = {u: [] for u in user_ids}
        rows = self.user_ids.positions(known)
        for chunk in row_batches(len(known), len(self.item_ids)):
            scores = self.user_factors[rows[chunk]] @ self.item_factors.T
            mask_rows, mask_cols = exclusion_rows(known[chunk], self.item_ids, exclude)
            scores[mask_rows, mask_cols] = -np.inf
            for user, best in zip(known[chunk], top_n(scores, n), strict=True):
                result[user] = self.item_ids.ids[best[best >= 0]].tolist()
        return result

    def similar_items(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` items nearest ``item_id`` by cosine of their factors (itself excluded)."""
        row = self.item_ids.get(item_id)
        if row is None:
            return []
        norms = np.linalg.norm(self.item_factors, axis=1)
        norms[norms == 0] = 1.0
        scores = (self.item_factors @ self.item_factors[row]) / (norms * norms[row])
        scores[row] = -np.inf
        best = top_n(scores, n)
        return [(str(self.item_ids.ids[i]), float(scores[i])) for i in best if i >= 0]

    def save(self, directory: Path) -> None:
        """Write the artifact: factor matrices as .npy, ids and params as JSON."""
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "user_factors.npy", self.user_factors.astype(np.float32))
        np.save(directory / "item_factors.npy", self.item_factors.astype(np.float32))
        write_json(directory / "user_ids.json", self.user_ids.tolist())
        write_json(directory / "item_ids.json", self.item_ids.tolist())
        write_json(
            directory / "artifact.json",
            {
                "format": FACTOR_FORMAT,
                "format_version": FORMAT_VERSION,
                "users": len(self.user_ids),
                "items": len(self.item_ids),
                "factors": self.factors,
                "params": self.params,
            },
        )

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = False) -> FactorModel:
        """Read an artifact written by ``save`` (``mmap`` maps the matrices instead of reading)."""
        header = read_header(directory, FACTOR_FORMAT)
        try:
            user_factors = np.load(directory / "user_factors.npy", mmap_mode="r" if mmap else None)
            item_factors = np.load(directory / "item_factors.npy", mmap_mode="r" if mmap else None)
            user_ids = read_json(directory / "user_ids.json")
            item_ids = read_json(directory / "item_ids.json")
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"{directory}: {exc}") from None
        return cls(
            IdMap.of(user_ids),
            IdMap.of(item_ids),
            user_factors,
            item_factors,
            dict(header.get("params", {})),
        )


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as compact UTF-8 JSON."""
    path.write_text(json.dumps(value, separators=(",", ":"), default=str), encoding="utf-8")


def read_json(path: Path) -> Any:
    """Parse a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def read_header(directory: Path, expected_format: str) -> dict[str, Any]:
    """``artifact.json`` of ``directory``, checked to be of ``expected_format``."""
    try:
        header = read_json(directory / "artifact.json")
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory}: no readable artifact.json ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != expected_format:
        found = header.get("format") if isinstance(header, dict) else None
        raise ArtifactError(f"{directory}: format {found!r}, expected {expected_format!r}")
    if int(header.get("format_version", 0)) > FORMAT_VERSION:
        raise ArtifactError(f"{directory}: written by a newer version of souk")
    return header
