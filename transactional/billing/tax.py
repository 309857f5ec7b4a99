"""Tax rules, pure: which rate a line pays where it ships, and how much tax that is.

The rules come from a data file (``tax_rules.toml`` beside this module, or
``SOUK_TAX_RULES``): EU VAT by country with reduced rates per category, US sales tax by state,
India GST slabs by category. A region says whether its prices include the tax (extracted
from the price) or exclude it (added on top). Amounts are integer minor units; each line's
tax is rounded half up once, on the line's total, so the lines add up to the order's tax.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_RULES_PATH = Path(__file__).with_name("tax_rules.toml")
STANDARD = "standard"
_HUNDRED = Decimal(100)
_MAX_RATE = Decimal(100)


class TaxRulesInvalid(ValueError):
    """The tax rules file is malformed (raised at start-up, never on a request)."""


@dataclass(frozen=True)
class Slab:
    """A category's rate for units priced at most ``up_to_unit_minor`` (e.g. cheap apparel)."""

    category: str
    up_to_unit_minor: int
    rate: Decimal


@dataclass(frozen=True)
class Rule:
    """The rates of one country or subdivision: a standard rate, per-category rates, slabs."""

    standard: Decimal | None
    categories: Mapping[str, Decimal] = field(default_factory=dict)
    slabs: tuple[Slab, ...] = ()

    def rate(self, category: str, unit_price_minor: int) -> Decimal | None:
        """The rate this rule gives a category at a unit price; None if it has no opinion."""
        for slab in self.slabs:
            if slab.category == category and unit_price_minor <= slab.up_to_unit_minor:
                return slab.rate
        return self.categories.get(category)


@dataclass(frozen=True)
class CountryRules:
    """A country's tax (its name on documents), its rule and its subdivisions' rules."""

    tax: str
    rule: Rule
    subdivisions: Mapping[str, Rule] = field(default_factory=dict)


@dataclass(frozen=True)
class TaxRate:
    """The rate a line pays: percent, the tax's name, its category and whether the price
    includes it."""

    rate: Decimal
    tax: str
    category: str
    included: bool

    @property
    def label(self) -> str:
        """How documents name the rate, e.g. ``VAT 19%``."""
        return f"{self.tax} {format_rate(self.rate)}%"


@dataclass(frozen=True)
class LineTax:
    """One line's money split: net + tax = gross, in minor units."""

    net_minor: int
    tax_minor: int
    gross_minor: int


NO_TAX = "No tax"


@dataclass(frozen=True)
class TaxRules:
    """Every region's price mode, every country's rules and the category mapping."""

    inclusive: Mapping[str, bool]
    countries: Mapping[str, CountryRules]
    categories: Mapping[str, str]

    def prices_include_tax(self, region: str) -> bool:
        """Whether catalog prices of ``region`` include the tax (unknown regions: no)."""
        return self.inclusive.get(region, False)

    def tax_category(self, category_id: str | None) -> str:
        """The tax category of a catalog category id: its longest listed prefix's, else
        ``standard``."""
        if not category_id:
            return STANDARD
        best, found = -1, STANDARD
        for prefix, category in self.categories.items():
            if (category_id == prefix or category_id.startswith(prefix + "_")) and len(
                prefix
            ) > best:
                best, found = len(prefix), category
        return found

    def rate(
        self,
        region: str,
        country: str,
        subdivision: str | None,
        category_id: str | None,
        unit_price_minor: int,
    ) -> TaxRate:
        """The rate of a line shipped to ``country``/``subdivision`` in ``region``."""
        category = self.tax_category(category_id)
        included = self.prices_include_tax(region)
        rules = self.countries.get(country)
        if rules is None:
            return TaxRate(Decimal(0), NO_TAX, category, included)
        local = rules.subdivisions.get(subdivision.upper()) if subdivision else None
        found: Decimal | None = None
        if local is not None:
            found = local.rate(category, unit_price_minor)
        if found is None:
            found = rules.rule.rate(category, unit_price_minor)
        if found is None:
            found = local.standard if local is not None else None
        if found is None:
            found = rules.rule.standard if rules.rule.standard is not None else Decimal(0)
        return TaxRate(found, rules.tax, category, included)


def format_rate(rate: Decimal) -> str:
    """A rate without trailing zeros: ``19``, ``5.5``, ``6.625``."""
    text = format(rate.normalize(), "f")
    return text


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def split(amount_minor: int, rate: Decimal, included: bool) -> LineTax:
    """Split a line's amount: tax extracted from a gross amount (``included``), or added on
    top of a net one; rounded half up to the minor unit."""
    if amount_minor < 0:
        raise ValueError("a line amount is never negative")
    if included:
        tax = _round(Decimal(amount_minor) * rate / (_HUNDRED + rate))
        return LineTax(amount_minor - tax, tax, amount_minor)
    tax = _round(Decimal(amount_minor) * rate / _HUNDRED)
    return LineTax(amount_minor, tax, amount_minor + tax)


# -- the data file ---------------------------------------------------------------------------


def _rate(value: object, where: str) -> Decimal:
    if not isinstance(value, str | int):
        raise TaxRulesInvalid(f'{where}: a rate is a decimal string like "19" or "5.5"')
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise TaxRulesInvalid(f"{where}: {value!r} is not a number") from None
    if not rate.is_finite() or rate < 0 or rate >= _MAX_RATE:
        raise TaxRulesInvalid(f"{where}: {value!r} is not a rate between 0 and 100")
    return rate


def _rule(raw: Mapping[str, Any], where: str, *, standard_required: bool) -> Rule:
    unknown = set(raw) - {"tax", "standard", "categories", "slabs", "subdivisions"}
    if unknown:
        raise TaxRulesInvalid(f"{where}: unknown keys {sorted(unknown)}")
    if standard_required and "standard" not in raw:
        raise TaxRulesInvalid(f"{where}: a country needs a standard rate")
    standard = _rate(raw["standard"], f"{where}.standard") if "standard" in raw else None
    categories = {
        str(name): _rate(value, f"{where}.categories.{name}")
        for name, value in dict(raw.get("categories", {})).items()
    }
    slabs = []
    for index, slab in enumerate(raw.get("slabs", [])):
        at = f"{where}.slabs[{index}]"
        if not isinstance(slab, dict) or set(slab) != {"category", "up_to_unit_minor", "rate"}:
            raise TaxRulesInvalid(f"{at}: needs category, up_to_unit_minor and rate")
        ceiling = slab["up_to_unit_minor"]
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling < 0:
            raise TaxRulesInvalid(f"{at}: up_to_unit_minor is a non-negative integer")
        slabs.append(Slab(str(slab["category"]), ceiling, _rate(slab["rate"], at)))
    return Rule(standard, categories, tuple(slabs))


def parse_rules(data: Mapping[str, Any]) -> TaxRules:
    """The rules of a parsed data file; TaxRulesInvalid with where it is wrong."""
    inclusive: dict[str, bool] = {}
    for region, raw in dict(data.get("regions", {})).items():
        flag = raw.get("prices_include_tax") if isinstance(raw, dict) else None
        if not isinstance(flag, bool):
            raise TaxRulesInvalid(f"regions.{region}: prices_include_tax must be true or false")
        inclusive[str(region)] = flag
    countries: dict[str, CountryRules] = {}
    for country, raw in dict(data.get("countries", {})).items():
        where = f"countries.{country}"
        if len(country) != 2 or not country.isupper() or not isinstance(raw, dict):
            raise TaxRulesInvalid(f"{where}: countries are ISO codes like DE, with a table")
        subdivisions = {
            str(code).upper(): _rule(sub, f"{where}.subdivisions.{code}", standard_required=False)
            for code, sub in dict(raw.get("subdivisions", {})).items()
        }
        countries[country] = CountryRules(
            tax=str(raw.get("tax", "Tax")),
            rule=_rule(raw, where, standard_required=True),
            subdivisions=subdivisions,
        )
    categories = {str(k): str(v) for k, v in dict(data.get("categories", {})).items()}
    return TaxRules(inclusive, countries, categories)


@lru_cache(maxsize=8)
def load_rules(path: str | Path = DEFAULT_RULES_PATH) -> TaxRules:
    """The rules of a TOML file, read and checked once per process and path."""
    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise TaxRulesInvalid(f"cannot read the tax rules {path}: {error}") from error
    return parse_rules(data)
