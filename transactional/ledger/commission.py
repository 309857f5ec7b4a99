"""Commission rates: what share of a sold line's net amount the platform keeps.

Rates come from a TOML data file (``commission.toml`` beside this module by default)::

    default = "0.10"
    [category]
    cat_electronics = "0.08"    # also cat_electronics_phones, ...
    [seller]
    sel_42 = "0.05"             # a seller's rate beats its lines' categories
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

from transactional.shared.errors import InvalidRequest

DEFAULT_COMMISSION_FILE = Path(__file__).with_name("commission.toml")


class InvalidCommissionFile(InvalidRequest):
    """The commission data file is missing, not TOML, or holds a rate outside [0, 1]."""

    code = "invalid_commission_file"


def _rate(value: object, where: str) -> Decimal:
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise InvalidCommissionFile(f"{where}: rate {value!r} is not a number") from None
    if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
        raise InvalidCommissionFile(f"{where}: rate {value!r} must be between 0 and 1")
    return rate


@dataclass(frozen=True)
class CommissionRates:
    """The platform's rate per seller, per category (and its subcategories), and by default."""

    default: Decimal = Decimal("0.10")
    by_category: Mapping[str, Decimal] = field(default_factory=dict)
    by_seller: Mapping[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _rate(self.default, "default")
        for key, value in {**self.by_category, **self.by_seller}.items():
            _rate(value, key)

    def rate(self, seller_id: str, category: str | None) -> Decimal:
        """The rate for a line: the seller's, else its category's (longest prefix), else default."""
        if seller_id in self.by_seller:
            return self.by_seller[seller_id]
        if category:
            best: str | None = None
            for key in self.by_category:
                if (category == key or category.startswith(key + "_")) and (
                    best is None or len(key) > len(best)
                ):
                    best = key
            if best is not None:
                return self.by_category[best]
        return self.default

    def commission(self, net_minor: int, seller_id: str, category: str | None) -> int:
        """The platform's commission on a net amount, rounded half-even to a minor unit."""
        exact = Decimal(net_minor) * self.rate(seller_id, category)
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def parse_commission(data: Mapping[str, object], where: str = "commission") -> CommissionRates:
    """Commission rates from the parsed TOML table."""
    unknown = set(data) - {"default", "category", "seller"}
    if unknown:
        raise InvalidCommissionFile(f"{where}: unknown keys {sorted(unknown)}")
    tables: dict[str, dict[str, Decimal]] = {}
    for name in ("category", "seller"):
        table = data.get(name, {})
        if not isinstance(table, Mapping):
            raise InvalidCommissionFile(f"{where}: [{name}] must be a table of rates")
        tables[name] = {str(k): _rate(v, f"{where} [{name}] {k}") for k, v in table.items()}
    return CommissionRates(
        default=_rate(data.get("default", "0.10"), f"{where} default"),
        by_category=tables["category"],
        by_seller=tables["seller"],
    )


_current: list[CommissionRates] = []


def current_rates() -> CommissionRates:
    """The rates this process books with: set by :func:`use_rates`, else the packaged file."""
    if not _current:
        _current.append(load_commission())
    return _current[0]


def use_rates(rates: CommissionRates) -> None:
    """Book with these rates from now on (the wiring sets them from the settings)."""
    _current[:] = [rates]


def load_commission(path: Path | str | None = None) -> CommissionRates:
    """Commission rates from a TOML file (the packaged default file if None)."""
    file = Path(path) if path is not None else DEFAULT_COMMISSION_FILE
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidCommissionFile(f"commission file {file} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidCommissionFile(f"commission file {file} is not valid TOML: {error}") from None
    return parse_commission(data, str(file))
