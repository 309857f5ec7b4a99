"""Item-item k-nearest-neighbour recommender: cosine similarity of item interaction columns.

sim(i, j) = x_i · x_j / (‖x_i‖‖x_j‖ + shrink), x_i being item i's column of the user x item
matrix; each item keeps its ``neighbours`` most similar items. A user's score for item j is
Σ_i r_ui · sim(i, j) over the items i of the user's history. Cheap to explain ("because you
looked at …"), exact for anonymous sessions (a basket is a history), and a strong baseline.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from models.recommenders.artifact import (
    IdMap,
    exclusion_rows,
    interaction_matrix,
    read_header,
    read_json,
    row_batches,
    top_n,
    write_json,
)

KNN_FORMAT = "souk.item_knn"


@dataclass(frozen=True, eq=False)
class ItemKNNModel:
    """Top-k item similarities plus the user histories they score."""

    user_ids: IdMap
    item_ids: IdMap
    similarities: sp.csr_matrix  # item x item: row i holds i's neighbours
    user_items: sp.csr_matrix  # user x item: the histories recommendations start from
    params: dict[str, Any] = field(default_factory=dict)

    def similar_items(self, item_id: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` most similar items of ``item_id`` (cosine), itself excluded."""
        row = self.item_ids.get(item_id)
        if row is None:
            return []
        start, end = self.similarities.indptr[row], self.similarities.indptr[row + 1]
        neighbours = self.similarities.indices[start:end]
        scores = self.similarities.data[start:end]
        order = np.argsort(-scores, kind="stable")[:n]
        return [(str(self.item_ids.ids[neighbours[i]]), float(scores[i])) for i in order]

    def recommend_items(
        self, history: Mapping[str, float] | Iterable[str], n: int = 10
    ) -> list[tuple[str, float]]:
        """Recommendations for a history given as items (weight 1) or {item: weight}."""
        weights = dict(history) if isinstance(history, Mapping) else dict.fromkeys(history, 1.0)
        vector = np.zeros(len(self.item_ids), dtype=np.float32)
        for item, weight in weights.items():
            pos = self.item_ids.get(item)
            if pos is not None:
                vector[pos] = weight
        scores = np.asarray(self.similarities.T @ vector, dtype=np.float64)
        scores[vector > 0] = -np.inf  # never recommend what is already in the history
        scores[scores <= 0] = -np.inf  # no neighbour of the history: no evidence at all
        best = top_n(scores, n)
        return [(str(self.item_ids.ids[i]), float(scores[i])) for i in best if i >= 0]

    def recommend(
        self, user_id: str, n: int = 10, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """Items similar to ``user_id``'s history minus ``exclude``; [] for an unknown user."""
        return self.scored_many([user_id], n, {user_id: list(exclude)})[user_id]

    def recommend_many(
        self,
        user_ids: Sequence[str],
        n: int = 10,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, list[str]]:
        """Top-``n`` item ids per user, minus their histories and ``exclude``."""
        scored = self.scored_many(user_ids, n, exclude)
        return {user: [item for item, _ in items] for user, items in scored.items()}

    def scored_many(
        self,
        user_ids: Sequence[str],
        n: int = 10,
        exclude: Mapping[str, Collection[str]] | None = None,
    ) -> dict[str, list[tuple[str, float]]]:
        """Top-``n`` (item, score) per user (sparse history x similarity products in batches)."""
        known = [u for u in user_ids if u in self.user_ids]
        result: dict[str, list[tuple[str, float]]] = {u: [] for u in user_ids}
        rows = self.user_ids.positions(known)
        for chunk in row_batches(len(known), len(self.item_ids)):
            history = self.user_items[rows[chunk]]
            scores = np.asarray((history @ self.similarities).todense(), dtype=np.float64)
            scores[scores <= 0] = -np.inf  # no neighbour of the history: no evidence
            scores[history.nonzero()] = -np.inf  # nor what the user already has
            mask_rows, mask_cols = exclusion_rows(known[chunk], self.item_ids, exclude)
            scores[mask_rows, mask_cols] = -np.inf
            for offset, (user, best) in enumerate(zip(known[chunk], top_n(scores, n), strict=True)):
                picks = best[best >= 0]
                result[user] = list(
                    zip(
                        self.item_ids.ids[picks].tolist(),
                        scores[offset, picks].tolist(),
                        strict=True,
                    )
                )
        return result

    def save(self, directory: Path) -> None:
        """Write the matrices as .npz and the ids and params as JSON."""
        directory.mkdir(parents=True, exist_ok=True)
        sp.save_npz(directory / "similarities.npz", self.similarities)
        sp.save_npz(directory / "user_items.npz", self.user_items)
        write_json(directory / "user_ids.json", self.user_ids.tolist())
        write_json(directory / "item_ids.json", self.item_ids.tolist())
        write_json(
            directory / "artifact.json",
            {"format": KNN_FORMAT, "format_version": 1, "params": self.params},
        )

    @classmethod
    def load(cls, directory: Path) -> ItemKNNModel:
        """Read an artifact written by ``save``."""
        header = read_header(directory, KNN_FORMAT)
        return cls(
            IdMap.of(read_json(directory / "user_ids.json")),
            IdMap.of(read_json(directory / "item_ids.json")),
            sp.load_npz(directory / "similarities.npz").tocsr(),
            sp.load_npz(directory / "user_items.npz").tocsr(),
            dict(header.get("params", {})),
        )


def train_item_knn(
    interactions: pd.DataFrame,
    *,
    neighbours: int = 50,
    shrink: float = 0.0,
    value: str | None = None,
) -> ItemKNNModel:
    """Cosine item-item kNN on the interaction matrix (binary by default; ``value`` weights)."""
    started = time.perf_counter()
    data = interaction_matrix(interactions, value=value)
    similarities = cosine_top_k(data.matrix, neighbours, shrink)
    params: dict[str, Any] = {
        "trainer": "item_knn",
        "neighbours": neighbours,
        "shrink": shrink,
        "value": value,
        "fit_s": round(time.perf_counter() - started, 3),
    }
    return ItemKNNModel(data.users, data.items, similarities, data.matrix, params)


def cosine_top_k(matrix: sp.csr_matrix, neighbours: int, shrink: float = 0.0) -> sp.csr_matrix:
    """The item x item cosine similarities of ``matrix``'s columns, top ``neighbours`` per row."""
    n_items = matrix.shape[1]
    items_by_user = matrix.T.tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    k = max(0, min(neighbours, n_items - 1))
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.intp]] = []
    vals: list[npt.NDArray[np.float64]] = []
    # Dot products block by block: a full item x item product can be dense for popular items.
    for block in row_batches(n_items, n_items):
        dots = np.asarray((items_by_user[block] @ matrix).todense(), dtype=np.float64)
        denominator = np.outer(norms[block], norms) + shrink
        sims = np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)
        local = np.arange(block.stop - block.start)
        sims[local, local + block.start] = 0.0  # an item is not its own neighbour
        sims[sims <= 0] = -np.inf
        best = top_n(sims, k)
        for offset, picks in enumerate(best):
            picks = picks[picks >= 0]
            rows.append(np.full(len(picks), block.start + offset, dtype=np.int64))
            cols.append(picks)
            vals.append(sims[offset, picks])
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_items, n_items),
    )
