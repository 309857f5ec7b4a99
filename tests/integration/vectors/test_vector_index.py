"""FAISS indexes on real item vectors: recall against exact search, files, the live slot."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from models.embeddings import TextEncoder, combine
from models.vector_index import (
    IndexSlot,
    UnknownItem,
    VectorIndexError,
    build_index,
    load_index,
    recall_at_k,
)
from tests.integration.vectors import als_factors, catalog_embeddings, taste_interactions

N_ITEMS = 1200  # the same catalog as test_embeddings: encoded once per test process
RECALL_FLOOR = 0.9

Dataset = tuple[list[str], np.ndarray]


@pytest.fixture(scope="module")
def catalog_vectors() -> tuple[object, np.ndarray]:
    """The generated catalog and its MiniLM title vectors."""
    return catalog_embeddings(N_ITEMS)


@pytest.fixture(scope="module")
def datasets(catalog_vectors: tuple) -> dict[str, Dataset]:
    """Real item vectors: titles (384-d), titles + ALS (416-d), ALS factors of 5k items."""
    catalog, text = catalog_vectors
    tastes = als_factors(taste_interactions(catalog.categories, n_users=3000, per_user=30))
    combined = combine(catalog.ids, tastes, catalog.ids, text, 0.5)
    groups = [f"g{i % 40}" for i in range(5000)]
    factors = als_factors(taste_interactions(groups, n_users=4000, per_user=30), factors=48)
    return {
        "text": (catalog.ids, text),
        "combined": (combined.ids, combined.vectors),
        "als": ([f"itm_{i:05d}" for i in range(len(groups))], factors),
    }


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def shopper_queries(name: str, ids: list[str], vectors: np.ndarray) -> np.ndarray:
    """Queries that are not item vectors: search phrases, or a session's mean of two items."""
    if name == "text":
        phrases = [
            "noise cancelling headphones for the gym",
            "cheap phone charger",
            "laptop for university",
            "non stick pan",
            "comfy office chair",
            "trail running shoes",
            "warm winter jacket",
            "a good thriller to read",
            "yoga equipment",
            "sunscreen for kids",
            "hose for the garden",
            "lego for a 6 year old",
            "food for my puppy",
            "drill with batteries",
            "coffee machine",
            "pram for a newborn",
        ]
        return TextEncoder(threads=1).encode(phrases)
    rng = np.random.default_rng(2)
    pairs = rng.integers(len(ids), size=(200, 2))
    return unit(vectors[pairs[:, 0]] + vectors[pairs[:, 1]])


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
@pytest.mark.parametrize("name", ["text", "combined", "als"])
def test_approximate_indexes_recall_the_exact_neighbours(
    datasets: dict[str, Dataset], name: str, kind: str, tmp_path: Path
) -> None:
    ids, vectors = datasets[name]
    info = build_index(ids, vectors, tmp_path / kind, kind=kind)
    exact_info = build_index(ids, vectors, tmp_path / "flat", kind="flat")
    assert (info.kind, info.count, info.dim) == (kind, len(ids), vectors.shape[1])
    assert info.recall_at_10 >= RECALL_FLOOR, info
    assert exact_info.recall_at_10 == 1.0
    index, exact = load_index(tmp_path / kind), load_index(tmp_path / "flat")

    # Measured again here, on queries the build never saw.
    queries = shopper_queries(name, ids, vectors)
    assert recall_at_k(index, exact, queries, 10) >= RECALL_FLOOR
    assert recall_at_k(exact, exact, queries, 10) == 1.0
    # Item-to-item (similar items): the item itself is left out of both answers.
    sample = np.random.default_rng(4).choice(len(ids), size=100, replace=False)
    item_recall = recall_at_k(index, exact, vectors[sample], 10, query_ids=[ids[i] for i in sample])
    assert item_recall >= RECALL_FLOOR


def test_exact_index_matches_brute_force(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    ids, vectors = datasets["combined"]
    build_index(ids, vectors, tmp_path, kind="flat")
    index = load_index(tmp_path)
    normalised = unit(vectors)
    for q in np.random.default_rng(5).choice(len(ids), size=20, replace=False):
        scores = normalised @ normalised[q]
        top = np.argsort(-scores)[:10]
        hits = index.search(vectors[q], 10)
        np.testing.assert_allclose([s for _, s in hits], scores[top], atol=1e-5)
        assert hits[0][0] == ids[q]


def test_similar_titles_are_from_the_same_category(catalog_vectors: tuple, tmp_path: Path) -> None:
    catalog, text = catalog_vectors
    build_index(catalog.ids, text, tmp_path, kind="hnsw")
    index = load_index(tmp_path)
    category = dict(zip(catalog.ids, catalog.categories, strict=True))
    same = [
        category[other] == category[item]
        for item in catalog.ids[::10]
        for other, _ in index.similar(item, 10)
    ]
    assert np.mean(same) > 0.8, f"{np.mean(same):.2f} of similar items share the category"


def test_files_round_trip(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    ids, vectors = datasets["combined"]
    for kind in ("flat", "hnsw", "ivfpq"):
        folder = tmp_path / kind
        info = build_index(ids, vectors, folder, kind=kind)
        assert sorted(p.name for p in folder.iterdir()) == ["ids.json", "index.faiss", "index.json"]
        assert json.loads((folder / "ids.json").read_text()) == ids
        doc = json.loads((folder / "index.json").read_text())
        assert doc["kind"] == kind and doc["count"] == len(ids) and doc["dim"] == vectors.shape[1]
        assert doc["recall_at_10"] == info.recall_at_10 and doc["recall_queries"] > 0
        index = load_index(folder)
        assert index.info == info and index.ids == ids and index.folder == folder
        # The stored vectors are the normalised inputs (IVF-PQ keeps them for re-ranking).
        np.testing.assert_allclose(index.vector(ids[7]), unit(vectors[7]), atol=1e-6)
        # Search settings tuned at build come back with the index.
        native = index._index
        if kind == "hnsw":
            assert native.hnsw.efSearch == info.params["ef_search"]
        if kind == "ivfpq":
            import faiss

            assert faiss.extract_index_ivf(native).nprobe == info.params["nprobe"]
            assert native.k_factor == info.params["k_factor"]
        assert load_index(folder).search(vectors[3], 5) == index.search(vectors[3], 5)


def test_auto_kind_follows_the_catalog_size(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    ids, vectors = datasets["als"][0][:2000], datasets["als"][1][:2000]
    assert build_index(ids, vectors, tmp_path / "a").kind == "flat"  # 2k < 20k
    kind = build_index(ids, vectors, tmp_path / "b", exact_below=1000).kind
    assert kind == "hnsw"
    kind = build_index(ids, vectors, tmp_path / "c", exact_below=500, hnsw_below=1000).kind
    assert kind == "ivfpq"


def test_search_answers(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    ids, vectors = datasets["text"]
    build_index(ids[:50], vectors[:50], tmp_path, kind="hnsw")
    index = load_index(tmp_path)
    similar = index.similar(ids[0], 5, exclude=[ids[1], ids[2]])
    assert len(similar) == 5 and not {ids[0], ids[1], ids[2]} & {i for i, _ in similar}
    scores = [s for _, s in similar]
    assert scores == sorted(scores, reverse=True)
    # Scores are cosines, whatever distance FAISS ranks by inside (L2 for HNSW and IVF-PQ).
    position = {item: i for i, item in enumerate(ids)}
    cosines = [float(unit(vectors[0]) @ unit(vectors[position[item]])) for item, _ in similar]
    np.testing.assert_allclose(scores, cosines, atol=1e-5)
    assert len(index.similar(ids[0], 100)) == 49  # everything but itself
    assert index.search(vectors[0], 3, exclude={ids[0]})[0][0] != ids[0]
    assert index.search(vectors[0], 0) == []
    assert ids[0] in index and "nope" not in index and len(index) == 50
    with pytest.raises(UnknownItem):
        index.similar("nope")
    with pytest.raises(KeyError):  # UnknownItem is a KeyError for callers that expect one
        index.vector("nope")
    with pytest.raises(ValueError, match="-d"):
        index.search(vectors[0][:100], 3)
    with pytest.raises(ValueError, match="zero"):
        index.search(np.zeros(vectors.shape[1]), 3)


def test_bad_builds_and_folders_are_refused(datasets: dict[str, Dataset], tmp_path: Path) -> None:
    ids, vectors = datasets["text"]
    with pytest.raises(ValueError, match="duplicate"):
        build_index([ids[0], *ids[1:10], ids[0]], vectors[:11], tmp_path / "x")
    with pytest.raises(ValueError, match="ids but"):
        build_index(ids[:10], vectors[:11], tmp_path / "x")
    with_zero = vectors[:5].copy()
    with_zero[3] = 0.0
    with pytest.raises(ValueError, match=f"zero or not finite \\(e.g. {ids[3]}\\)"):
        build_index(ids[:5], with_zero, tmp_path / "x")
    with pytest.raises(ValueError, match="IVF-PQ needs"):
        build_index(ids[:100], vectors[:100], tmp_path / "x", kind="ivfpq")
    with pytest.raises(VectorIndexError, match="not a finished"):
        load_index(tmp_path / "empty")

    folder = tmp_path / "v1"
    build_index(ids[:100], vectors[:100], folder, kind="flat")
    (folder / "ids.json").write_text(json.dumps(ids[:99]))
    with pytest.raises(VectorIndexError, match="ids"):
        load_index(folder)
    (folder / "ids.json").write_text(json.dumps(ids[:100]))
    (folder / "index.faiss").write_bytes(b"garbage")
    with pytest.raises(VectorIndexError, match="cannot load"):
        load_index(folder)
    (folder / "index.json").unlink()  # a rebuild removes it first: unfinished, not loadable
    with pytest.raises(VectorIndexError, match="not a finished"):
        load_index(folder)


def test_slot_swaps_and_rolls_back_while_searches_keep_answering(
    datasets: dict[str, Dataset], tmp_path: Path
) -> None:
    ids, vectors = datasets["text"]
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    build_index(ids, vectors, v1, kind="hnsw")
    # The next model version: other vectors for the items, told apart by their ids.
    shifted = np.roll(vectors, 1, axis=0)
    build_index([f"{i}@v2" for i in ids], shifted, v2, kind="flat")

    slot = IndexSlot()
    with pytest.raises(VectorIndexError):
        slot.current  # noqa: B018 - the property raises
    slot.swap(v1)

    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        queries = vectors[:200]
        n = 0
        while not stop.is_set():
            try:
                hits = slot.search(queries[n % len(queries)], 10)
            except BaseException as exc:  # any failure fails the test
                errors.append(exc)
                return
            versions = {"v2" if item.endswith("@v2") else "v1" for item, _ in hits}
            if len(hits) != 10 or len(versions) != 1:
                errors.append(AssertionError(f"inconsistent answer {hits}"))
                return
            seen.append(versions.pop())
            n += 1

    def wait_for(version: str, after: int) -> None:
        deadline = time.monotonic() + 10
        while version not in seen[after:] and not errors and time.monotonic() < deadline:
            time.sleep(0.005)
        assert version in seen[after:], f"no answer from {version} after the swap"

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        wait_for("v1", 0)
        mark = len(seen)
        assert slot.swap(v2).folder == v2
        assert slot.current.folder == v2 and slot.previous is not None
        wait_for("v2", mark)
        mark = len(seen)
        assert slot.rollback().folder == v1
        wait_for("v1", mark)
        with pytest.raises(VectorIndexError, match="roll back"):
            slot.rollback()  # one step back only
        with pytest.raises(VectorIndexError):
            slot.swap(tmp_path / "unfinished")
        assert slot.current.folder == v1  # a failed swap leaves the live index alone
        assert slot.similar(ids[0], 3)[0][0] != ids[0]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not errors, errors
    assert seen.count("v2") > 0 and seen[-1] == "v1"
