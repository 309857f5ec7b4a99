"""Pure catalog rules: shard ids, the category tree, product validation, repricing."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from schemas.ids import uuid7
from transactional.catalog.model import (
    Category,
    DuplicateSku,
    Product,
    Variant,
    build_tree,
    category_path,
    check_images,
    check_variants,
    default_currency,
    descendants,
    is_product_id,
    new_category,
    product_id_for,
    reprice,
    shard_for,
    shard_of,
    slugify,
)
from transactional.shared.errors import InvalidRequest

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


# -- shard ids -------------------------------------------------------------------------------


def test_product_ids_carry_their_shard_in_the_prefix() -> None:
    value = uuid7()
    product_id = product_id_for(value, 16)
    assert re.fullmatch(r"prd_[0-9a-f]{2}_[0-9a-f]{32}", product_id)
    assert product_id.endswith(value.hex)
    assert shard_of(product_id) == shard_for(value, 16) < 16
    assert is_product_id(product_id)


def test_the_shard_hash_is_stable_across_processes() -> None:
    # Pinned values: Python's randomised hash(), or a changed hash, would misroute stored ids.
    value = uuid.UUID("01938a2e-7c00-7000-8000-000000000000")
    assert [shard_for(value, n) for n in (1, 2, 16, 256)] == [0, 1, 11, 203]
    assert product_id_for(value, 16) == "prd_0b_01938a2e7c0070008000000000000000"


def test_shards_spread_evenly_enough() -> None:
    counts = Counter(shard_of(product_id_for(uuid7(), 8)) for _ in range(4000))
    assert set(counts) == set(range(8))
    assert min(counts.values()) > 350  # 500 expected each, sd about 21


@pytest.mark.parametrize("bad", ["prd_7_abc", "prd_zz_" + "0" * 32, "cus_01ABC", "", "prd_07_"])
def test_shard_of_rejects_what_is_not_a_product_id(bad: str) -> None:
    assert not is_product_id(bad)
    with pytest.raises(ValueError):
        shard_of(bad)


def test_shard_count_is_bounded_by_the_two_hex_digits() -> None:
    with pytest.raises(ValueError):
        shard_for(uuid7(), 257)
    with pytest.raises(ValueError):
        shard_for(uuid7(), 0)


# -- categories ------------------------------------------------------------------------------

TAXONOMY = [
    Category("cat_electronics", "Electronics", "electronics"),
    Category("cat_electronics_phones", "Phones", "phones", "cat_electronics"),
    Category("cat_electronics_audio", "Audio", "audio", "cat_electronics"),
    Category(
        "cat_electronics_audio_headphones", "Headphones", "headphones", "cat_electronics_audio"
    ),
    Category("cat_books", "Books", "books"),
]


def test_build_tree_nests_children_sorted_by_name() -> None:
    tree = build_tree(reversed(TAXONOMY))
    assert [n.category.name for n in tree] == ["Books", "Electronics"]
    electronics = tree[1]
    assert [n.category.name for n in electronics.children] == ["Audio", "Phones"]
    assert [n.category.name for n in electronics.children[0].children] == ["Headphones"]
    assert tree[0].children == []


def test_orphans_become_roots_rather_than_vanishing() -> None:
    tree = build_tree([Category("cat_x_y", "Y", "y", "cat_x")])
    assert [n.category.category_id for n in tree] == ["cat_x_y"]


def test_category_path_and_descendants() -> None:
    by_id = {c.category_id: c for c in TAXONOMY}
    path = category_path("cat_electronics_audio_headphones", by_id)
    assert [c.name for c in path] == ["Electronics", "Audio", "Headphones"]
    assert category_path("cat_unknown", by_id) == []
    assert descendants("cat_electronics", TAXONOMY) == {
        "cat_electronics",
        "cat_electronics_phones",
        "cat_electronics_audio",
        "cat_electronics_audio_headphones",
    }
    assert descendants("cat_books", TAXONOMY) == {"cat_books"}


def test_new_category_ids_extend_the_parent() -> None:
    audio = TAXONOMY[2]
    child = new_category("  Studio   Monitors ", audio)
    assert child == Category(
        "cat_electronics_audio_studio_monitors",
        "Studio Monitors",
        "studio-monitors",
        audio.category_id,
    )
    assert new_category("Pet Supplies", None).category_id == "cat_pet_supplies"
    assert slugify("Home & Kitchen") == "home-kitchen"
    for bad in ["   ", "&&&", "x" * 81]:
        with pytest.raises(InvalidRequest):
            new_category(bad, None)


# -- products --------------------------------------------------------------------------------


def test_valid_variants_pass_cleaned() -> None:
    variants = check_variants(
        [
            Variant("TSHIRT-M", {"EUR": 1999, "USD": 2199}, {" size ": "M"}),
            Variant("TSHIRT-L", {"USD": 2199, "EUR": 1999}, {"size": "L"}),
        ]
    )
    assert variants[0].attributes == {"size": "M"}
    assert default_currency(variants, "USD") == "USD"
    assert default_currency(variants, "INR") == "EUR"  # the first listed
    assert default_currency(variants, None) == "EUR"


@pytest.mark.parametrize(
    ("variants", "code"),
    [
        ([], "variants_required"),
        ([Variant("A", {})], "price_required"),
        ([Variant("A", {"EUR": 0})], "invalid_price"),
        ([Variant("A", {"EUR": -5})], "invalid_price"),
        ([Variant("A", {"EUR": 10**13})], "invalid_price"),
        ([Variant("A", {"EUR": True})], "invalid_price"),  # type: ignore[dict-item]
        ([Variant("A", {"XYZ": 100})], "unsupported_currency"),
        ([Variant("A", {"eur": 100})], "unsupported_currency"),
        ([Variant("has space", {"EUR": 100})], "invalid_sku"),
        ([Variant("", {"EUR": 100})], "invalid_sku"),
        ([Variant("A", {"EUR": 1}), Variant("B", {"USD": 1})], "inconsistent_currencies"),
        ([Variant("A", {"EUR": 1}, {"": "x"})], "invalid_attributes"),
        ([Variant(f"S{i}", {"EUR": 1}) for i in range(101)], "too_many_variants"),
    ],
)
def test_invalid_variants_are_refused(variants: list[Variant], code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_variants(variants)
    assert refused.value.code == code


def test_a_sku_twice_in_one_product_is_a_duplicate() -> None:
    with pytest.raises(DuplicateSku) as duplicate:
        check_variants([Variant("A", {"EUR": 1}), Variant("A", {"EUR": 2})])
    assert duplicate.value.extra == {"skus": ["A"]}


def test_images_must_be_absolute_http_urls() -> None:
    assert check_images(["https://cdn.example.com/a.jpg"]) == ["https://cdn.example.com/a.jpg"]
    for bad in (["ftp://x/a.jpg"], ["/relative.jpg"], ["javascript:alert(1)"], ["https://x/"] * 21):
        with pytest.raises(InvalidRequest):
            check_images(bad)


def _product() -> Product:
    return Product(
        product_id="prd_00_" + "0" * 32,
        shard=0,
        seller_id="sel_1",
        title="T",
        description="",
        brand=None,
        category_id="cat_books",
        attributes={},
        variants=[Variant("A", {"EUR": 100, "USD": 120}), Variant("B", {"EUR": 200, "USD": 240})],
        images=[],
        currency="EUR",
        status="active",
        version=1,
        created_at=NOW,
        updated_at=NOW,
    )


def test_reprice_reports_only_real_changes() -> None:
    product = _product()
    changes = reprice(product, {"A": {"EUR": 100, "USD": 99}, "B": {"EUR": 150}})
    assert [(c.sku, c.currency, c.old, c.new) for c in changes] == [
        ("A", "USD", 120, 99),
        ("B", "EUR", 200, 150),
    ]
    assert product.variant("B").prices == {"EUR": 150, "USD": 240}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("prices", "code"),
    [
        ({"NOPE": {"EUR": 1}}, "unknown_sku"),
        ({"A": {"EUR": 0}}, "invalid_price"),
        ({"A": {"GBP": 100}}, "inconsistent_currencies"),
    ],
)
def test_reprice_refuses_bad_prices(prices: dict[str, dict[str, int]], code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        reprice(_product(), prices)
    assert refused.value.code == code
