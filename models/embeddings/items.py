"""Item vectors for similar-item retrieval: collaborative (ALS factors) + content (product text).

Each part is L2-normalised and scaled by the square root of its weight before the two are
concatenated, so a combined vector has unit length and the inner product of two items is
``weight * cos(ALS) + (1 - weight) * cos(text)``: one FAISS inner-product index ranks by both.

A cold-start item (text but no usable ALS factors) gets its collaborative part predicted from
its text vector by a ridge regression text -> normalised factors, learned on the items that
have both; so every item with text gets a vector. Items with factors but no text are not in
the catalog (deleted products keep their history) and get none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["ItemVectors", "TextToFactors", "combine", "product_text"]

Matrix = npt.NDArray[np.float32]

#: Ridge penalties tried on a held-out share of the items that have both parts.
DEFAULT_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
#: Below this many items with both parts a regression would be noise: cold items get text only.
MIN_PAIRS = 20


class ItemVectors(NamedTuple):
    """Item ids and their unit-length combined vectors (row i belongs to ids[i])."""

    ids: list[str]
    vectors: Matrix


def product_text(
    title: str, description: str = "", brand: str = "", category: Sequence[str] = ()
) -> str:
    """The text embedded for a product: title first, since the model truncates the tail."""
    parts = [title.strip()]
    if brand.strip():
        parts.append(f"Brand: {brand.strip()}.")
    if category:
        parts.append(f"Category: {' > '.join(c.strip() for c in category)}.")
    if description.strip():
        parts.append(description.strip())
    return " ".join(p for p in parts if p)


def _normalise(rows: npt.NDArray[np.floating[Any]]) -> tuple[Matrix, npt.NDArray[np.bool_]]:
    """Unit rows and a mask of the usable ones (finite, non-zero); unusable rows become 0."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1)
    usable = np.isfinite(norms) & (norms > 1e-12)
    out = np.zeros_like(rows)
    out[usable] = rows[usable] / norms[usable, None]
    return out, usable


@dataclass(frozen=True)
class TextToFactors:
    """Ridge regression from text vectors to unit ALS factors (the cold-start predictor)."""

    weights: npt.NDArray[np.float64]  # (text dim, factor dim)
    bias: npt.NDArray[np.float64]  # (factor dim,)
    alpha: float
    #: Mean cosine of predicted vs true factors on the held-out items (1.0 = perfect).
    holdout_cosine: float
    #: The same for predicting the mean factor vector for everyone (what "no text" would give).
    baseline_cosine: float

    @classmethod
    def fit(
        cls,
        text_vectors: npt.NDArray[np.floating[Any]],
        factor_vectors: npt.NDArray[np.floating[Any]],
        *,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        holdout: float = 0.2,
        seed: int = 0,
    ) -> TextToFactors:
        """Fit on paired rows, choosing alpha by cosine on a held-out share, then refit on all."""
        x = np.asarray(text_vectors, dtype=np.float64)
        y, _ = _normalise(np.asarray(factor_vectors))
        y64 = y.astype(np.float64)
        if x.ndim != 2 or y64.ndim != 2 or len(x) != len(y64):
            raise ValueError(f"paired rows needed, got shapes {x.shape} and {y64.shape}")
        if len(x) < 2 or not alphas:
            raise ValueError("need at least 2 paired rows and one alpha")
        order = np.random.default_rng(seed).permutation(len(x))
        n_val = min(max(1, round(len(x) * holdout)), len(x) - 1)
        val, train = order[:n_val], order[n_val:]
        best: tuple[float, float] | None = None
        for alpha in alphas:
            w, b = _ridge(x[train], y64[train], alpha)
            score = _mean_cosine(x[val] @ w + b, y64[val])
            if best is None or score > best[1]:
                best = (alpha, score)
        assert best is not None
        baseline = _mean_cosine(np.broadcast_to(y64[train].mean(axis=0), y64[val].shape), y64[val])
        w, b = _ridge(x, y64, best[0])
        return cls(w, b, best[0], best[1], baseline)

    def predict(self, text_vectors: npt.NDArray[np.floating[Any]]) -> Matrix:
        """Unit factor vectors predicted for ``text_vectors``."""
        raw = np.asarray(text_vectors, dtype=np.float64) @ self.weights + self.bias
        return _normalise(raw)[0]


def _ridge(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], alpha: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    # Centred, so the intercept is not penalised; d x d normal equations (d = text dim, small).
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc = x - x_mean
    gram = xc.T @ xc
    gram[np.diag_indices_from(gram)] += alpha
    w = np.linalg.solve(gram, xc.T @ (y - y_mean))
    return w, y_mean - x_mean @ w


def _mean_cosine(pred: npt.NDArray[np.float64], true: npt.NDArray[np.float64]) -> float:
    norms = np.linalg.norm(pred, axis=1) * np.linalg.norm(true, axis=1)
    return float(np.mean(np.sum(pred * true, axis=1) / np.clip(norms, 1e-12, None)))


def _check(ids: Sequence[str], vectors: npt.NDArray[np.floating[Any]], name: str) -> None:
    if vectors.ndim != 2 or vectors.shape[0] != len(ids):
        raise ValueError(f"{name}: {len(ids)} ids but vectors of shape {vectors.shape}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name}: duplicate ids")


def combine(
    als_ids: Sequence[str],
    als_vectors: npt.NDArray[np.floating[Any]],
    text_ids: Sequence[str],
    text_vectors: npt.NDArray[np.floating[Any]],
    weight: float = 0.5,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    seed: int = 0,
) -> ItemVectors:
    """Combined unit vectors for every item with text, in ``text_ids`` order.

    ``weight`` is the collaborative share of the similarity (0 = text only, 1 = ALS only,
    cold-start items then ranked by their predicted factors).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be within [0, 1], got {weight}")
    als = np.asarray(als_vectors)
    text = np.asarray(text_vectors)
    if als.ndim == 1 and len(als_ids) == 0:  # no factors at all: np.empty(0) is fine
        als = als.reshape(0, 0)
    _check(als_ids, als, "als")
    _check(text_ids, text, "text")
    text_unit, text_ok = _normalise(text)
    if not text_ok.all():
        bad = [text_ids[i] for i in np.flatnonzero(~text_ok)[:5]]
        raise ValueError(f"text vectors must be finite and non-zero (e.g. {bad})")
    als_unit, als_ok = _normalise(als)

    # Row of each text item in the ALS matrix; -1 when it has no usable factors (cold start).
    als_row = {item: i for i, item in enumerate(als_ids) if als_ok[i]}
    rows = np.array([als_row.get(item, -1) for item in text_ids], dtype=np.int64)
    warm, cold = rows >= 0, rows < 0
    factor_dim = als.shape[1]
    collab = np.zeros((len(text_ids), factor_dim), dtype=np.float32)
    collab[warm] = als_unit[rows[warm]]
    if cold.any() and factor_dim and weight > 0 and int(warm.sum()) >= MIN_PAIRS:
        model = TextToFactors.fit(text_unit[warm], als_unit[rows[warm]], alphas=alphas, seed=seed)
        collab[cold] = model.predict(text_unit[cold])
    # Cold items with no prediction get text only, rescaled so they stay unit length.
    text_scale = np.full(len(text_ids), np.sqrt(1.0 - weight), dtype=np.float32)
    no_collab = ~np.any(collab != 0, axis=1)
    text_scale[no_collab] = 1.0
    vectors = np.hstack([np.float32(np.sqrt(weight)) * collab, text_scale[:, None] * text_unit])
    return ItemVectors(list(text_ids), np.ascontiguousarray(vectors, dtype=np.float32))
