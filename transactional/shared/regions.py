"""Souk's geography: which currencies and countries each region serves, and how far apart they are.

Used to validate registrations and prices, to pick the warehouse nearest to a shipping address,
and by the shopper simulation. Regions outside this table are served with no local currency.
"""

from __future__ import annotations

REGION_CURRENCY: dict[str, str] = {"eu": "EUR", "us": "USD", "in": "INR"}
REGION_COUNTRIES: dict[str, frozenset[str]] = {
    "eu": frozenset({"DE", "FR", "ES", "IT", "NL", "BE", "AT", "IE", "PL", "PT", "SE", "GB"}),
    "us": frozenset({"US", "CA", "MX"}),
    "in": frozenset({"IN", "BD", "LK", "NP"}),
}
REGION_DEFAULT_COUNTRY: dict[str, str] = {"eu": "DE", "us": "US", "in": "IN"}
SUPPORTED_CURRENCIES: frozenset[str] = frozenset({*REGION_CURRENCY.values(), "GBP"})

# Rough shipping distance between regions (0 = same region); drives warehouse choice.
_DISTANCE: dict[frozenset[str], int] = {
    frozenset({"eu", "us"}): 2,
    frozenset({"eu", "in"}): 2,
    frozenset({"us", "in"}): 3,
}


def region_of_country(country: str) -> str | None:
    """The region that serves ``country``, if any."""
    for region, countries in REGION_COUNTRIES.items():
        if country in countries:
            return region
    return None


def region_distance(a: str, b: str) -> int:
    """How far apart two regions are for shipping (0 same, larger is farther, 9 unknown)."""
    if a == b:
        return 0
    return _DISTANCE.get(frozenset({a, b}), 9)
