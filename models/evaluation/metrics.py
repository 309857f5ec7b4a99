"""Top-k ranking metrics with their standard (binary-relevance) definitions.

Per user, with ``rec`` the ranked recommendations and ``rel`` the held-out relevant items:

- precision@k = |rec[:k] ∩ rel| / k (divided by k even when fewer than k were recommended)
- recall@k    = |rec[:k] ∩ rel| / |rel|
- nDCG@k      = DCG / IDCG, DCG = Σ_{i≤k} [rec_i ∈ rel] / log2(i + 1),
                IDCG = Σ_{i≤min(|rel|, k)} 1 / log2(i + 1)
- AP@k        = Σ_{i≤k} precision@i · [rec_i ∈ rel] / min(|rel|, k); MAP@k is its mean

The model-level figure is the mean over the users that have relevant items (a user with no
recommendations scores 0). Catalog coverage@k = |union of rec[:k]| / catalog size.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

METRICS = ("precision", "recall", "ndcg", "map")


def precision_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the top ``k`` recommendations that are relevant."""
    _check_k(k)
    return sum(1 for item in recommended[:k] if item in relevant) / k


def recall_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant items found in the top ``k``; 0 when nothing is relevant."""
    _check_k(k)
    if not relevant:
        return 0.0
    return sum(1 for item in recommended[:k] if item in relevant) / len(relevant)


def ndcg_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Normalised discounted cumulative gain of the top ``k`` (binary relevance)."""
    _check_k(k)
    if not relevant:
        return 0.0
    # Position i (1-based) is discounted by log2(i + 1); enumerate is 0-based, hence + 2.
    dcg = sum(
        1.0 / math.log2(pos + 2) for pos, item in enumerate(recommended[:k]) if item in relevant
    )
    ideal = sum(1.0 / math.log2(pos + 2) for pos in range(min(len(relevant), k)))
    return dcg / ideal


def average_precision_at_k(recommended: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Mean of precision@i over the ranks i ≤ k holding a hit, over min(|relevant|, k)."""
    _check_k(k)
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for pos, item in enumerate(recommended[:k], start=1):
        if item in relevant:
            hits += 1
            total += hits / pos
    return total / min(len(relevant), k)


def catalog_coverage(recommendations: Iterable[Sequence[str]], catalog_size: int, k: int) -> float:
    """Share of the catalog that appears in at least one top-``k`` list."""
    _check_k(k)
    if catalog_size <= 0:
        raise ValueError("catalog_size must be positive")
    shown: set[str] = set()
    for recommended in recommendations:
        shown.update(recommended[:k])
    return len(shown) / catalog_size


def ranking_metrics(
    recommendations: Mapping[str, Sequence[str]],
    relevant: Mapping[str, Collection[str]],
    k: int,
    *,
    catalog_size: int | None = None,
) -> dict[str, float]:
    """precision/recall/ndcg/map@k averaged over the users of ``relevant`` (+ coverage).

    Users without relevant items are skipped; users missing from ``recommendations`` count
    as empty lists. Keys are ``"precision@10"`` etc. and ``"users"``.
    """
    _check_k(k)
    users = [user for user, items in relevant.items() if items]
    sums = dict.fromkeys(METRICS, 0.0)
    for user in users:
        recommended = recommendations.get(user, ())
        truth = relevant[user]
        if not isinstance(truth, set | frozenset):
            truth = set(truth)  # O(1) membership tests
        sums["precision"] += precision_at_k(recommended, truth, k)
        sums["recall"] += recall_at_k(recommended, truth, k)
        sums["ndcg"] += ndcg_at_k(recommended, truth, k)
        sums["map"] += average_precision_at_k(recommended, truth, k)
    count = len(users)
    result = {f"{name}@{k}": (total / count if count else 0.0) for name, total in sums.items()}
    if catalog_size is not None:
        result[f"coverage@{k}"] = catalog_coverage(
            (recommendations.get(user, ()) for user in users), catalog_size, k
        )
    result["users"] = float(count)
    return result


def _check_k(k: int) -> None:
    """Reject a cut-off that is not a positive integer."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
