"""Tax rules: the shipped data file's rates (EU reduced, US state, India GST slab), rounding of
inclusive extraction and exclusive addition, and a malformed file refused with its place."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from transactional.billing.tax import (
    DEFAULT_RULES_PATH,
    TaxRules,
    TaxRulesInvalid,
    format_rate,
    load_rules,
    parse_rules,
    split,
)


@pytest.fixture(scope="module")
def rules() -> TaxRules:
    return load_rules(DEFAULT_RULES_PATH)


def test_rules_are_loaded_once_per_path() -> None:
    assert load_rules(DEFAULT_RULES_PATH) is load_rules(DEFAULT_RULES_PATH)


def test_eu_vat_standard_and_reduced_by_category(rules: TaxRules) -> None:
    phone = rules.rate("eu", "DE", None, "cat_electronics_phones", 49_900)
    book = rules.rate("eu", "DE", None, "cat_books_fiction", 1_500)
    french_book = rules.rate("eu", "FR", None, "cat_books", 1_500)
    assert (phone.rate, phone.category, phone.included) == (Decimal(19), "electronics", True)
    assert (book.rate, book.category) == (Decimal(7), "books")
    assert french_book.rate == Decimal("5.5")
    assert phone.label == "VAT 19%" and french_book.label == "VAT 5.5%"


def test_longest_category_prefix_wins(rules: TaxRules) -> None:
    assert rules.tax_category("cat_grocery_beverages") == "beverages"
    assert rules.tax_category("cat_grocery_snacks") == "food"
    assert rules.tax_category("cat_bookshelves") == "standard"  # a prefix, not a parent
    assert rules.tax_category(None) == "standard"


def test_us_sales_tax_by_state_added_on_top(rules: TaxRules) -> None:
    california = rules.rate("us", "US", "CA", "cat_electronics", 10_000)
    new_jersey = rules.rate("us", "US", "nj", "cat_toys", 10_000)
    oregon = rules.rate("us", "US", "OR", "cat_electronics", 10_000)
    assert (california.rate, california.included, california.tax) == (
        Decimal("7.25"),
        False,
        "Sales tax",
    )
    assert new_jersey.rate == Decimal("6.625")  # subdivision codes are case-insensitive
    assert oregon.rate == 0
    assert rules.rate("us", "US", "CA", "cat_grocery_snacks", 500).rate == 0  # groceries exempt
    assert rules.rate("us", "US", None, "cat_electronics", 10_000).rate == 0  # no state known


def test_us_state_clothing_exemption_has_a_price_ceiling(rules: TaxRules) -> None:
    assert rules.rate("us", "US", "NY", "cat_fashion_men", 10_999).rate == 0
    assert rules.rate("us", "US", "NY", "cat_fashion_men", 11_000).rate == Decimal(4)


def test_india_gst_slabs_by_category_and_price(rules: TaxRules) -> None:
    book = rules.rate("in", "IN", "KA", "cat_books", 50_000)
    laptop = rules.rate("in", "IN", "KA", "cat_electronics_laptops", 5_000_000)
    cheap_shirt = rules.rate("in", "IN", None, "cat_fashion_men", 99_900)
    dear_shirt = rules.rate("in", "IN", None, "cat_fashion_men", 100_001)
    assert (book.rate, laptop.rate) == (Decimal(0), Decimal(18))
    assert (cheap_shirt.rate, dear_shirt.rate) == (Decimal(5), Decimal(12))
    assert laptop.included and laptop.label == "GST 18%"


def test_unlisted_country_is_not_taxed(rules: TaxRules) -> None:
    rate = rules.rate("eu", "JP", None, "cat_books", 1_000)
    assert rate.rate == 0 and rate.tax == "No tax"


@pytest.mark.parametrize(
    ("gross", "rate", "tax"),
    [
        (1999, "19", 319),  # 319.17
        (1190, "19", 190),  # exact
        (1000, "5.5", 52),  # 52.13
        (1, "19", 0),  # 0.16
        (4, "19", 1),  # 0.64
        (1125, "12.5", 125),  # exact
        (99_900, "5", 4757),  # 4757.14 (INR: a Rs 999 shirt at 5% GST)
    ],
)
def test_inclusive_extraction_keeps_the_gross_and_rounds_the_tax(
    gross: int, rate: str, tax: int
) -> None:
    parts = split(gross, Decimal(rate), included=True)
    assert (parts.tax_minor, parts.net_minor, parts.gross_minor) == (tax, gross - tax, gross)


def test_inclusive_extraction_rounds_a_half_up_not_to_even() -> None:
    # Tax of exactly x.5 minor units: 15 at 20% holds 2.5, 27 holds 4.5, 45 holds 7.5.
    assert split(15, Decimal(20), included=True).tax_minor == 3  # banker's rounding: 2
    assert split(27, Decimal(20), included=True).tax_minor == 5  # banker's rounding: 4
    assert split(45, Decimal(20), included=True).tax_minor == 8


def test_exclusive_tax_is_added_on_top_rounded_half_up() -> None:
    parts = split(1000, Decimal("7.25"), included=False)
    assert (parts.net_minor, parts.tax_minor, parts.gross_minor) == (1000, 73, 1073)  # 72.5 → 73
    assert split(999, Decimal("6.625"), included=False).tax_minor == 66  # 66.18
    assert split(0, Decimal(19), included=False).tax_minor == 0


def test_rates_print_without_trailing_zeros() -> None:
    assert [format_rate(Decimal(x)) for x in ("19.0000", "5.5000", "6.625", "0.0000")] == [
        "19",
        "5.5",
        "6.625",
        "0",
    ]


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"regions": {"eu": {"prices_include_tax": "yes"}}}, "regions.eu"),
        ({"countries": {"DE": {"categories": {}}}}, "countries.DE: a country needs"),
        ({"countries": {"DE": {"standard": "nineteen"}}}, "countries.DE.standard"),
        ({"countries": {"DE": {"standard": "150"}}}, "countries.DE.standard"),
        ({"countries": {"DE": {"standard": 19.5}}}, "countries.DE.standard"),
        ({"countries": {"de": {"standard": "19"}}}, "countries.de"),
        (
            {"countries": {"IN": {"standard": "18", "slabs": [{"category": "apparel"}]}}},
            "countries.IN.slabs[0]",
        ),
        ({"countries": {"US": {"standard": "0", "rate": "5"}}}, "unknown keys"),
    ],
)
def test_a_malformed_rules_file_names_the_place(data: dict[str, object], where: str) -> None:
    with pytest.raises(TaxRulesInvalid, match=where.replace("[", r"\[").replace("]", r"\]")):
        parse_rules(data)


def test_an_unreadable_rules_file_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "rules.toml"
    broken.write_text("[countries.DE\nstandard = 19", encoding="utf-8")
    with pytest.raises(TaxRulesInvalid, match="cannot read the tax rules"):
        load_rules(broken)
