"""FAISS vector indexes of item vectors: build into a folder, load, search, swap atomically.

Vectors are L2-normalised and scores are cosine similarities. The index kind follows the
catalog size: exact (``IndexFlatIP``) below ``exact_below`` items, where brute force is fast
and perfect; HNSW (``IndexHNSWFlat``) up to ``hnsw_below``; IVF-PQ with an exact re-ranking of
its candidates (``IVF,PQ,RFlat``) beyond, where HNSW builds slowly and its links cost memory.
The approximate kinds search by L2 distance, which ranks unit vectors exactly as cosine does
(|a - b|^2 = 2 - 2 cos): FAISS's IVF-PQ with inner product recalled 0.31-0.84 of the true
top 10 on 200k ALS factors where L2 recalled 0.98-1.0 at the same settings.

A build writes ``index.faiss``, ``ids.json`` (row -> item id) and ``index.json`` (kind, dim,
count, search params, recall@10 against exact search measured on a sample of the items' own
vectors as queries, query latency). ``index.json`` is written last: a folder without it is an
unfinished build and does not load. Versioning is the model registry's job: the folder is the
model version's; :class:`IndexSlot` serves one loaded folder and swaps to another.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import numpy.typing as npt

__all__ = [
    "EXACT_BELOW",
    "HNSW_BELOW",
    "IndexInfo",
    "IndexSlot",
    "UnknownItem",
    "VectorIndex",
    "VectorIndexError",
    "build_index",
    "load_index",
    "recall_at_k",
]

logger = logging.getLogger(__name__)

Kind = Literal["auto", "flat", "hnsw", "ivfpq"]
Matrix = npt.NDArray[np.float32]

INDEX_FILE, IDS_FILE, INFO_FILE = "index.faiss", "ids.json", "index.json"
FORMAT, FORMAT_VERSION = "souk.vector_index", 1
#: Below this many items exact search is fast enough (~ms per query) and perfect.
EXACT_BELOW = 20_000
#: Up to this many items HNSW; beyond, its build time and link memory (~256 B per item) favour
#: IVF-PQ: on 200k ALS factors (64-d) HNSW took 25 s of CPU, IVF-PQ 7 s, both at recall 0.97.
HNSW_BELOW = 500_000
#: Fewer items cannot train even 16 codewords per PQ sub-quantizer (and need no IVF anyway).
IVFPQ_MIN_ITEMS = 256
#: Search-time settings tried in order until the measured recall reaches the target.
HNSW_EF_SEARCH = (64, 128, 256, 512)
IVF_PROBES = ((8, 4), (16, 4), (16, 8), (32, 8), (64, 16), (128, 16), (256, 32))  # nprobe, k_factor


class VectorIndexError(RuntimeError):
    """An index folder is missing, unfinished or inconsistent, or a slot is empty."""


class UnknownItem(KeyError):
    """The item id is not in the index."""


@dataclass(frozen=True)
class IndexInfo:
    """What ``index.json`` records about a built index."""

    kind: str
    dim: int
    count: int
    params: dict[str, Any]
    #: Recall@10 against exact search on ``recall_queries`` item vectors (self excluded).
    recall_at_10: float
    recall_queries: int
    #: Median single-query search time measured at build, milliseconds.
    query_ms_p50: float
    build_seconds: float
    metric: str = "cosine"
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The ``index.json`` document."""
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> IndexInfo:
        """Parse an ``index.json`` document (VectorIndexError if it is not one)."""
        if doc.get("format") != FORMAT or doc.get("format_version") != FORMAT_VERSION:
            raise VectorIndexError(
                f"not a {FORMAT} v{FORMAT_VERSION} document: "
                f"{doc.get('format')!r} v{doc.get('format_version')!r}"
            )
        try:
            return cls(**doc)
        except TypeError as exc:
            raise VectorIndexError(f"malformed index.json: {exc}") from None


def _unit_rows(vectors: npt.ArrayLike, what: str) -> Matrix:
    """A C-contiguous float32 copy with unit rows (ValueError on zero or non-finite rows)."""
    rows = np.array(vectors, dtype=np.float32, order="C", copy=True, ndmin=2)
    if rows.ndim != 2:
        raise ValueError(f"{what} must be a 2-d array, got shape {rows.shape}")
    norms = np.linalg.norm(rows, axis=1)
    bad = ~np.isfinite(norms) | (norms <= 1e-12)
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} rows are zero or not finite")
    rows /= norms[:, None]
    return rows


class VectorIndex:
    """A loaded index and its item ids; searches are thread-safe (read-only).

    Each search runs on ``search_threads`` OpenMP threads (None: FAISS's default, all cores).
    One is the default because serving gets its parallelism from concurrent requests: on a
    busy 2-core machine a 20k x 416 exact search took p50 1.9-5 ms on one thread and 37-74 ms
    on two (their spin-waits fight the other load).
    """

    def __init__(
        self,
        index: Any,
        ids: Sequence[str],
        info: IndexInfo,
        folder: Path | None = None,
        *,
        search_threads: int | None = 1,
    ) -> None:
        if index.ntotal != len(ids) or index.d != info.dim:
            raise VectorIndexError(
                f"index holds {index.ntotal} x {index.d}, ids/info say {len(ids)} x {info.dim}"
            )
        self._index = index
        self.ids: list[str] = list(ids)
        self._position = {item: i for i, item in enumerate(self.ids)}
        if len(self._position) != len(self.ids):
            raise VectorIndexError("duplicate item ids")
        self.info = info
        self.folder = folder
        self._l2 = index.metric_type == faiss.METRIC_L2
        self.search_threads = search_threads
        _apply_params(index, info.kind, info.params)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._position

    @property
    def dim(self) -> int:
        """Vector length."""
        return self.info.dim

    @property
    def kind(self) -> str:
        """flat, hnsw or ivfpq."""
        return self.info.kind

    def vector(self, item_id: str) -> Matrix:
        """The stored (unit) vector of ``item_id``."""
        try:
            position = self._position[item_id]
        except KeyError:
            raise UnknownItem(item_id) from None
        return np.asarray(self._index.reconstruct(position), dtype=np.float32)

    def search(
        self, vector: npt.ArrayLike, k: int = 10, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` items closest to ``vector`` by cosine, best first, minus ``exclude``."""
        return self.search_many(_unit_rows(vector, "query"), k, exclude)[0]

    def search_many(
        self, vectors: npt.ArrayLike, k: int = 10, exclude: Collection[str] = ()
    ) -> list[list[tuple[str, float]]]:
        """``search`` for each row of ``vectors`` in one batch."""
        queries = _unit_rows(vectors, "queries")
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries are {queries.shape[1]}-d, the index is {self.dim}-d")
        if k < 1 or not self.ids:
            return [[] for _ in range(len(queries))]
        skip = {self._position[item] for item in exclude if item in self._position}
        with _omp_threads(self.search_threads):
            scores, positions = self._index.search(queries, min(k + len(skip), len(self.ids)))
        if self._l2:
            scores = 1.0 - scores / 2.0  # squared L2 between unit vectors -> cosine
        return [
            [
                (self.ids[p], float(s))
                for s, p in zip(row_scores, row_positions, strict=True)
                if p >= 0 and p not in skip
            ][:k]
            for row_scores, row_positions in zip(scores, positions, strict=True)
        ]

    def similar(
        self, item_id: str, k: int = 10, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """The ``k`` items most similar to ``item_id`` (itself excluded); UnknownItem if absent."""
        return self.search(self.vector(item_id), k, {item_id, *exclude})


def _apply_params(index: Any, kind: str, params: dict[str, Any]) -> None:
    # Search-time settings live in index.json, the one place a build's tuning is recorded.
    if kind == "hnsw":
        index.hnsw.efSearch = int(params["ef_search"])
    elif kind == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
        index.k_factor = float(params["k_factor"])


def _pow2_floor(value: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(value, 1.0))))


def _ivfpq_layout(n: int, dim: int) -> dict[str, int]:
    """nlist ~ 4 sqrt(n) (power of 2, >= 39 training points each); PQ sub-vectors of ~8 dims."""
    nlist = max(1, min(_pow2_floor(4 * math.sqrt(n)), _pow2_floor(n / 39)))
    m = next(dim // sub for sub in (8, 4, 6, 12, 16, 2, 3, 1) if dim % sub == 0)
    # 2^nbits codewords each need ~39 training points, or k-means warns and degrades.
    nbits = max(4, min(8, math.floor(math.log2(max(n, 1) / 39))))
    return {"nlist": nlist, "pq_m": m, "pq_nbits": nbits}


def _build_faiss(
    kind: str, vectors: Matrix, *, hnsw_m: int, ef_construction: int, seed: int
) -> tuple[Any, dict[str, Any]]:
    n, dim = vectors.shape
    index: Any  # faiss's stubs type each class apart; they share the Index interface
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, {"faiss_metric": "ip"}
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_L2)
        index.hnsw.efConstruction = ef_construction
        index.add(vectors)
        return index, {"m": hnsw_m, "ef_construction": ef_construction, "faiss_metric": "l2"}
    layout = _ivfpq_layout(n, dim)
    spec = f"IVF{layout['nlist']},PQ{layout['pq_m']}x{layout['pq_nbits']},RFlat"
    index = faiss.index_factory(dim, spec, faiss.METRIC_L2)
    # Polysemous training (codes ordered for Hamming filtering, which is never used here)
    # dominated the build: 40-75 s vs ~1 s for 3k x 384 on the 2-core machines.
    ivf: Any = faiss.downcast_index(faiss.extract_index_ivf(index))
    ivf.do_polysemous_training = False
    train_n = min(n, max(100_000, 50 * layout["nlist"]))
    sample = np.random.default_rng(seed).choice(n, size=train_n, replace=False)
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    return index, {"factory": spec, **layout, "train_points": train_n, "faiss_metric": "l2"}


def _drop_self(
    positions: npt.NDArray[np.int64], self_positions: npt.NDArray[np.int64], k: int
) -> npt.NDArray[np.int64]:
    """Rows of k neighbours without the query item itself (searched with k + 1)."""
    out = np.empty((len(positions), k), dtype=np.int64)
    for row, (found, own) in enumerate(zip(positions, self_positions, strict=True)):
        kept = found[found != own]
        out[row] = (
            kept[:k] if len(kept) >= k else np.pad(kept, (0, k - len(kept)), constant_values=-1)
        )
    return out


def _tie_aware_recall(
    found: npt.NDArray[np.int64],
    truth: npt.NDArray[np.int64],
    truth_kth: npt.NDArray[np.float32],
    score: Any,
) -> float:
    """Share of true top-k found; a result tied with the k-th true score counts as found.

    Identical products (same text) have identical vectors: which of them make the top k is
    arbitrary, and either answer is right.
    """
    hits = 0
    for row in range(len(found)):
        true_set = {int(p) for p in truth[row] if p >= 0}
        hits += sum(
            1
            for p in found[row]
            if p >= 0 and (int(p) in true_set or score(row, int(p)) >= truth_kth[row] - 1e-5)
        )
    return hits / found.size if found.size else 1.0


def _measure(
    index: Any, vectors: Matrix, sample: npt.NDArray[np.int64], k: int
) -> tuple[float, float]:
    """Recall@k (self excluded) against brute force on ``vectors[sample]``, and p50 query ms."""
    queries = vectors[sample]
    k_eff = min(k, len(vectors) - 1)
    if k_eff < 1:
        return 1.0, 0.0
    _, true_pos = faiss.knn(queries, vectors, k_eff + 1, metric=faiss.METRIC_INNER_PRODUCT)
    _, found_pos = index.search(queries, k_eff + 1)
    truth = _drop_self(true_pos, sample, k_eff)
    found = _drop_self(found_pos, sample, k_eff)
    kth = np.array(
        [
            float(queries[r] @ vectors[truth[r, -1]]) if truth[r, -1] >= 0 else -np.inf
            for r in range(len(sample))
        ],
        dtype=np.float32,
    )
    recall = _tie_aware_recall(found, truth, kth, lambda r, p: float(queries[r] @ vectors[p]))
    timings = []
    with _omp_threads(1):  # as VectorIndex serves single queries
        for query in queries[: min(len(queries), 200)]:
            start = time.perf_counter()
            index.search(query[None, :], k)
            timings.append((time.perf_counter() - start) * 1000)
    return recall, float(np.median(timings)) if timings else 0.0


def build_index(
    ids: Sequence[str],
    vectors: npt.ArrayLike,
    out_dir: str | Path,
    *,
    kind: Kind = "auto",
    exact_below: int = EXACT_BELOW,
    hnsw_below: int = HNSW_BELOW,
    target_recall: float = 0.95,
    recall_queries: int = 500,
    hnsw_m: int = 32,
    ef_construction: int = 100,
    threads: int | None = 1,
    seed: int = 0,
) -> IndexInfo:
    """Build an index of ``vectors`` (row i = ``ids[i]``) into ``out_dir``; return its info.

    Search settings are raised until recall@10 on a sample of the items reaches
    ``target_recall`` (the best one is kept, with a warning, if none does). ``threads`` caps
    FAISS's OpenMP threads for this build (this thread only; None = all cores): 1 by default
    because the 2-core machines are shared, and there an IVF-PQ build of 3k x 384 took 1.6 s
    on 1 thread and 10-13 s on 2 (OpenMP workers spin-wait against the other load). Pass
    None on a dedicated machine.
    """
    with _omp_threads(threads):
        return _build(
            ids,
            vectors,
            Path(out_dir),
            kind=kind,
            exact_below=exact_below,
            hnsw_below=hnsw_below,
            target_recall=target_recall,
            recall_queries=recall_queries,
            hnsw_m=hnsw_m,
            ef_construction=ef_construction,
            seed=seed,
        )


@contextmanager
def _omp_threads(threads: int | None) -> Iterator[None]:
    # OpenMP's thread count is per calling thread, so this does not affect other threads.
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(max(1, threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _build(
    ids: Sequence[str],
    vectors: npt.ArrayLike,
    out: Path,
    *,
    kind: Kind,
    exact_below: int,
    hnsw_below: int,
    target_recall: float,
    recall_queries: int,
    hnsw_m: int,
    ef_construction: int,
    seed: int,
) -> IndexInfo:
    started = time.perf_counter()
    ids = list(ids)
    if any(not isinstance(item, str) or not item for item in ids):
        raise ValueError("item ids must be non-empty strings")
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate item ids")
    raw = np.asarray(vectors, dtype=np.float32)
    if raw.ndim != 2 or len(raw) != len(ids):
        raise ValueError(f"{len(ids)} ids but vectors of shape {raw.shape}")
    norms = np.linalg.norm(raw, axis=1)
    bad = np.flatnonzero(~np.isfinite(norms) | (norms <= 1e-12))
    if len(bad):  # no direction, no cosine: e.g. ALS factors of items nobody interacted with
        named = ", ".join(ids[i] for i in bad[:5])
        raise ValueError(f"{len(bad)} vectors are zero or not finite (e.g. {named})")
    unit = _unit_rows(raw, "vectors")
    if not ids:
        raise ValueError("no items to index")
    n, dim = unit.shape
    if kind == "auto":
        kind = "flat" if n < exact_below else "hnsw" if n < hnsw_below else "ivfpq"
    if kind not in ("flat", "hnsw", "ivfpq"):
        raise ValueError(f"unknown index kind {kind!r}")
    if kind == "ivfpq" and n < IVFPQ_MIN_ITEMS:
        raise ValueError(f"IVF-PQ needs at least {IVFPQ_MIN_ITEMS} items to train, got {n}")

    index, params = _build_faiss(
        kind, unit, hnsw_m=hnsw_m, ef_construction=ef_construction, seed=seed
    )
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, recall_queries), replace=False)).astype(np.int64)
    settings: Sequence[dict[str, Any]] = [{}]
    if kind == "hnsw":
        settings = [{"ef_search": ef} for ef in HNSW_EF_SEARCH]
    elif kind == "ivfpq":
        settings = [
            {"nprobe": p, "k_factor": f} for p, f in IVF_PROBES if p <= params["nlist"]
        ] or [{"nprobe": params["nlist"], "k_factor": 16}]
    recall, latency = 0.0, 0.0
    for setting in settings:
        _apply_params(index, kind, setting)
        recall, latency = _measure(index, unit, sample, 10)
        if recall >= target_recall:
            break
    else:
        if kind != "flat":
            logger.warning(
                "%s index of %d items: recall@10 %.3f < %.3f", kind, n, recall, target_recall
            )
    params.update(setting)
    info = IndexInfo(
        kind=kind,
        dim=dim,
        count=n,
        params=params,
        recall_at_10=round(recall, 4),
        recall_queries=len(sample),
        query_ms_p50=round(latency, 4),
        build_seconds=0.0,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / INFO_FILE).unlink(missing_ok=True)  # a rebuild is unfinished until index.json
    _write_atomic(out / INDEX_FILE, faiss.serialize_index(index).tobytes())
    _write_atomic(out / IDS_FILE, json.dumps(ids).encode())
    info = replace(info, build_seconds=round(time.perf_counter() - started, 3))
    _write_atomic(out / INFO_FILE, json.dumps(info.to_json(), indent=2).encode())
    return info


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_index(folder: str | Path, *, search_threads: int | None = 1) -> VectorIndex:
    """Load a built index folder (VectorIndexError if it is missing, unfinished or corrupt)."""
    folder = Path(folder)
    info_path = folder / INFO_FILE
    if not info_path.is_file():
        raise VectorIndexError(f"{folder} has no {INFO_FILE}: not a finished index build")
    try:
        info = IndexInfo.from_json(json.loads(info_path.read_text()))
        ids = json.loads((folder / IDS_FILE).read_text())
        index = faiss.read_index(str(folder / INDEX_FILE))
    except (OSError, ValueError, RuntimeError) as exc:  # faiss raises RuntimeError
        raise VectorIndexError(f"cannot load the index in {folder}: {exc}") from exc
    if not isinstance(ids, list) or len(ids) != info.count:
        raise VectorIndexError(f"{folder}/{IDS_FILE} does not hold {info.count} ids")
    return VectorIndex(index, ids, info, folder, search_threads=search_threads)


def recall_at_k(
    index: VectorIndex,
    exact: VectorIndex,
    queries: npt.ArrayLike,
    k: int = 10,
    *,
    query_ids: Sequence[str] | None = None,
) -> float:
    """Recall@k of ``index`` against ``exact`` (a flat index of the same items) on ``queries``.

    With ``query_ids`` (queries that are items' own vectors) each query's item is left out of
    both answers, as in similar-item lookups. Results tied with the k-th exact score count.
    """
    rows = _unit_rows(queries, "queries")
    if query_ids is not None and len(query_ids) != len(rows):
        raise ValueError(f"{len(query_ids)} query ids for {len(rows)} queries")
    position = {item: i for i, item in enumerate(exact.ids)}
    found_rows, truth_rows, kth = [], [], []
    for r, query in enumerate(rows):
        skip = () if query_ids is None else (query_ids[r],)
        truth = exact.search(query, k, skip)
        found = index.search(query, k, skip)
        truth_rows.append([position[item] for item, _ in truth] + [-1] * (k - len(truth)))
        found_rows.append([position.get(item, -1) for item, _ in found] + [-1] * (k - len(found)))
        kth.append(truth[-1][1] if truth else -np.inf)

    def score(r: int, p: int) -> float:
        return float(rows[r] @ exact.vector(exact.ids[p]))

    return _tie_aware_recall(
        np.array(found_rows, dtype=np.int64).reshape(len(rows), k),
        np.array(truth_rows, dtype=np.int64).reshape(len(rows), k),
        np.array(kth, dtype=np.float32),
        score,
    )


class IndexSlot:
    """The live index of a process: swapped atomically to a new folder, rolled back on demand.

    Readers take no lock: they read the current reference once and finish on that index even
    if a swap happens meanwhile. Writers (swap, rollback) are serialised by a lock, and the
    slow load happens before the reference changes.
    """

    def __init__(self, index: VectorIndex | None = None, *, search_threads: int | None = 1) -> None:
        self._current = index
        self._search_threads = search_threads
        self._previous: VectorIndex | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> VectorIndex:
        """The live index (VectorIndexError if none is loaded yet)."""
        index = self._current
        if index is None:
            raise VectorIndexError("no vector index loaded")
        return index

    @property
    def previous(self) -> VectorIndex | None:
        """The index a rollback returns to, if any."""
        return self._previous

    def swap(self, source: str | Path | VectorIndex) -> VectorIndex:
        """Make the index in folder ``source`` (or a loaded one) live; return it."""
        with self._lock:
            new = (
                source
                if isinstance(source, VectorIndex)
                else load_index(source, search_threads=self._search_threads)
            )
            self._previous, self._current = self._current, new
            return new

    def rollback(self) -> VectorIndex:
        """Make the previous index live again (VectorIndexError if there is none)."""
        with self._lock:
            if self._previous is None:
                raise VectorIndexError("no previous vector index to roll back to")
            self._current, self._previous = self._previous, None
            return self._current

    def search(
        self, vector: npt.ArrayLike, k: int = 10, exclude: Collection[str] = ()
    ) -> list[tuple[str, float]]:
        """``search`` on the live index."""
        return self.current.search(vector, k, exclude)

    def similar(
        self, item_id: str, k: int = 10, exclude: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """``similar`` on the live index."""
        return self.current.similar(item_id, k, exclude)
