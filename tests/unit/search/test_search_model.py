"""Search's pure rules: validation, currencies, snapshots and stock ordering, query words."""

from __future__ import annotations

import pytest

from serving.search.model import (
    FxTable,
    ProductDoc,
    SearchRequest,
    apply_snapshot,
    highlight_title,
    rank_weight,
    set_stock,
)
from serving.search.text import SYNONYMS_FILE, Speller, Synonyms, edit_distance, understand
from transactional.shared.errors import InvalidRequest

FX = FxTable({"EUR": 1.0, "USD": 0.92, "INR": 0.011})
REGIONS = ["eu", "us"]


def doc(version: int = 1, **overrides: object) -> ProductDoc:
    fields: dict[str, object] = {
        "product_id": "prd_01_a",
        "region": "eu",
        "seller_id": "sel_1",
        "version": version,
        "title": "Sonyx Wireless Headphones",
        "category_id": "cat_electronics_audio",
        "currency": "EUR",
        "price_minor": 9999,
        "skus": ["A-1"],
    }
    fields.update(overrides)
    return ProductDoc(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (SearchRequest(page_size=0), "invalid_page_size"),
        (SearchRequest(page_size=101), "invalid_page_size"),
        (SearchRequest(page=0), "invalid_page"),
        (SearchRequest(sort="cheapest"), "invalid_sort"),
        (SearchRequest(currency="XYZ"), "unsupported_currency"),
        (SearchRequest(price_min=500, price_max=100), "invalid_price_range"),
        (SearchRequest(price_min=-1), "invalid_price"),
        (SearchRequest(region="mars"), "unknown_region"),
        (SearchRequest(q="x" * 201), "invalid_query"),
    ],
)
def test_bad_parameters_are_refused_with_their_code(request_: SearchRequest, code: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        request_.validate(regions=REGIONS, fx=FX, max_page_size=100)
    assert refused.value.code == code


def test_good_parameters_pass() -> None:
    SearchRequest(q="x", price_min=100, price_max=100, region="all", currency="USD").validate(
        regions=REGIONS, fx=FX, max_page_size=100
    )


def test_prices_convert_through_the_base_and_stay_exact_in_their_own_currency() -> None:
    assert FX.convert(9999, "EUR", "EUR") == 9999
    assert FX.convert(10000, "EUR", "USD") == round(10000 / 0.92)
    assert FX.convert(FX.convert(10000, "EUR", "USD"), "USD", "EUR") == pytest.approx(10000, abs=1)
    # Range edges are readable numbers in each currency.
    assert FX.price_edges("EUR") == (25, 50, 100, 250, 500, 1000)
    assert all(edge % 500 == 0 for edge in FX.price_edges("INR"))


def test_older_snapshots_are_dropped_and_stock_and_popularity_carried_over() -> None:
    current = doc(version=3, popularity=7.0, created_us=5)
    set_stock(current, "A-1", "wh_eu_1", 4, stamp_us=10)
    assert apply_snapshot(current, doc(version=3, title="replayed")) is None
    assert apply_snapshot(current, doc(version=2, title="older")) is None
    newer = apply_snapshot(current, doc(version=4, title="Renamed", created_us=99))
    assert newer is not None
    assert (newer.title, newer.popularity, newer.created_us, newer.available) == (
        "Renamed",
        7.0,
        5,
        4,
    )


def test_a_stock_movement_older_than_the_held_one_is_ignored() -> None:
    held = doc()
    assert set_stock(held, "A-1", "wh_eu_1", 0, stamp_us=20)
    assert not set_stock(held, "A-1", "wh_eu_1", 9, stamp_us=10)  # redelivered, older
    assert not held.in_stock
    assert set_stock(held, "A-1", "wh_us_1", 2, stamp_us=5)  # another warehouse counts
    assert held.in_stock and held.available == 2


def test_availability_and_popularity_weigh_the_rank() -> None:
    stocked = doc()
    set_stock(stocked, "A-1", "wh", 1, 1)
    assert rank_weight(doc()) < rank_weight(stocked)
    assert rank_weight(stocked) < rank_weight(doc(popularity=100.0, stock=stocked.stock))


def test_category_ids_include_the_ancestors() -> None:
    assert doc().category_ids == ["cat_electronics", "cat_electronics_audio"]


VOCABULARY = {
    "wireless": 40,
    "headphones": 35,
    "sunglasses": 12,
    "running": 20,
    "shoes": 25,
    "wired": 3,
}


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("wireles", "wireless"),
        ("hedphones", "headphones"),
        ("headphnoes", "headphones"),  # transposition
        ("sunglas", "sunglasses"),  # unfinished: completed
        ("runing", "running"),
        ("headphones", "headphones"),
        ("zzzzzz", None),
    ],
)
def test_the_speller_corrects_from_the_vocabulary(typed: str, meant: str | None) -> None:
    assert Speller(VOCABULARY).correct(typed) == meant


def test_edit_distance_counts_transpositions_as_one() -> None:
    assert edit_distance("headphnoes", "headphones") == 1
    assert edit_distance("sunglas", "sunglasses") == 3


def test_synonyms_come_from_the_file_and_expand_a_query_word() -> None:
    synonyms = Synonyms.from_file(SYNONYMS_FILE)
    assert "earphones" in synonyms.of("headphones")
    assert "headphones" in synonyms.of("earphones")
    understood = understand(
        "wireles hedphones", Speller(VOCABULARY), VOCABULARY.__contains__, synonyms
    )
    assert understood.text == "wireless headphones" and understood.corrected
    assert understood.groups[1].terms[0] == "headphones"
    assert "earphones" in understood.groups[1].terms
    assert understood.groups[1].fuzzy == "hedphones"


def test_unknown_words_are_optional_and_known_ones_exact() -> None:
    understood = understand(
        "wireless qqqqq", Speller(VOCABULARY), VOCABULARY.__contains__, Synonyms([])
    )
    assert not understood.corrected
    assert understood.groups[0].required and understood.groups[0].fuzzy is None
    assert not understood.groups[1].required and understood.groups[1].prefix


def test_highlight_marks_matched_words_escaped() -> None:
    assert highlight_title("Sonyx <Pro> Wireless Headphones", ["headphone", "wireles"]) == (
        "Sonyx &lt;Pro&gt; <b>Wireless</b> <b>Headphones</b>"
    )
    assert highlight_title("Kettle", ["desk"]) is None
