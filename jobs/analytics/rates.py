"""Currencies: display exponents (ISO 4217) and the rate table for cross-currency totals.

Amounts travel as integer minor units; ``exponent`` turns them into major units for display.
Amounts of different currencies are only ever added after conversion through ``RateTable``
(the platform's ``SOUK_FX_RATES``, to EUR, or the JSON file ``SOUK_ANALYTICS_RATES_FILE`` of
rates to ``SOUK_ANALYTICS_BASE_CURRENCY``); a currency
without a rate makes a cross-currency total unavailable, never silently wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from souk.settings import Settings

#: ISO 4217 minor-unit exponents that are not 2 (2 is the default).
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"], 0),
    **dict.fromkeys(["RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}


def exponent(currency: str) -> int:
    """Digits after the decimal point of ``currency`` (ISO 4217; 2 unless listed)."""
    return _EXPONENTS.get(currency.upper(), 2)


def to_major(amount_minor: int, currency: str) -> Decimal:
    """Minor units as an exact decimal amount of major units (e.g. 12345 EUR → 123.45)."""
    return Decimal(int(amount_minor)).scaleb(-exponent(currency))


def display(amount_minor: int, currency: str) -> str:
    """Minor units for people: ``1,234.50 EUR`` (``1,234 JPY``)."""
    digits = exponent(currency)
    return f"{to_major(amount_minor, currency):,.{digits}f} {currency}"


@dataclass(frozen=True)
class RateTable:
    """Rates to one base currency: 1 unit of ``currency`` = ``rates[currency]`` base units."""

    base: str
    rates: Mapping[str, Decimal] = field(default_factory=dict)

    def missing(self, currencies: set[str]) -> list[str]:
        """The currencies without a rate."""
        return sorted(c for c in currencies if c not in self.rates and c != self.base)

    def convert(self, amount_minor: int, currency: str) -> Decimal:
        """Minor units of ``currency`` in major units of the base (KeyError: no rate)."""
        rate = Decimal(1) if currency == self.base else self.rates[currency]
        return to_major(amount_minor, currency) * rate

    def total(self, minor_by_currency: Mapping[str, int]) -> Decimal | None:
        """The sum in base major units (2 decimals), or None if a currency has no rate."""
        if self.missing(set(minor_by_currency)):
            return None
        total = sum((self.convert(v, c) for c, v in minor_by_currency.items()), start=Decimal(0))
        return total.quantize(Decimal("0.01"))


def rate_table(settings: Settings) -> RateTable:
    """The rate table of the settings: the file if one is named, else ``fx_rates`` (to EUR)."""
    if settings.analytics_rates_file is not None:
        rates = read_rates_file(settings.analytics_rates_file)
        base = settings.analytics_base_currency
    else:
        rates, base = dict(settings.fx_rates), "EUR"
    return RateTable(base, {c.upper(): Decimal(str(r)) for c, r in rates.items()})


def read_rates_file(path: Path) -> dict[str, float]:
    """A JSON object ``{"USD": 0.92, ...}`` (rates to the base currency)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and v > 0 for k, v in data.items()
    ):
        raise ValueError(f"{path}: expected a JSON object of currency → positive rate")
    return {k.upper(): float(v) for k, v in data.items()}
