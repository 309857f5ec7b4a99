"""Souk's geography: which currencies and countries each region serves, how far apart they are,
and which region a client's IP address is in.

Used to validate registrations and prices, to pick the warehouse nearest to a shipping address,
to tell where a checkout comes from, and by the shopper simulation. Regions outside this table
are served with no local currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

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


# -- client networks: which region an IP address is in -----------------------------------------

IpNetwork = IPv4Network | IPv6Network
# (network, region) pairs, most specific network first: the first match is the longest prefix.
IpRegionTable = tuple[tuple[IpNetwork, str], ...]


def ip_region_table(regions: Mapping[str, Iterable[str]]) -> IpRegionTable:
    """The lookup table of a region → CIDRs mapping (``SOUK_IP_REGIONS``); ValueError for a
    malformed CIDR."""
    pairs = [
        (ip_network(cidr.strip(), strict=False), region)
        for region, cidrs in regions.items()
        for cidr in cidrs
    ]
    pairs.sort(key=lambda pair: pair[0].prefixlen, reverse=True)
    return tuple(pairs)


def parse_ip(value: str) -> IPv4Address | IPv6Address | None:
    """An IP address (an IPv4-mapped IPv6 one as IPv4), or None if ``value`` is not one."""
    try:
        address = ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def region_of_ip(ip: str, table: IpRegionTable | Mapping[str, Iterable[str]]) -> str | None:
    """The region whose CIDR holds ``ip`` (the longest prefix wins), None if none does or
    ``ip`` is not an address. ``table`` is an :func:`ip_region_table` or a region → CIDRs
    mapping (compiled on each call: build the table once for a hot path)."""
    address = parse_ip(ip)
    if address is None:
        return None
    pairs = table if isinstance(table, tuple) else ip_region_table(table)
    for network, region in pairs:
        if address.version == network.version and address in network:
            return region
    return None
