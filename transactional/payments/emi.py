"""EMI plans: a card payment repaid in 3, 6 or 12 monthly instalments of a bank's plan.

Rates come from a TOML data file (``emi_rates.toml`` beside this module by default), an annual
percentage per region, bank and term. The instalment is the standard annuity
``P·r·(1+r)^n / ((1+r)^n - 1)`` with ``r`` the monthly rate, rounded half-up to a minor unit;
the total is ``n`` instalments, the interest what it adds to the principal. A 0 % plan splits
the principal evenly (the first instalments take the remainder). Pure, apart from reading the
file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

from transactional.payments.instruments import EMI_MONTHS
from transactional.shared.errors import InvalidRequest

DEFAULT_EMI_RATES_FILE = Path(__file__).with_name("emi_rates.toml")


class UnknownEmiPlan(InvalidRequest):
    """The bank offers no EMI plan of that term in the region (422)."""

    code = "unknown_emi_plan"


class InvalidEmiRates(ValueError):
    """The EMI rates file is missing, not TOML, or holds a bad term or rate."""


@dataclass(frozen=True)
class EmiPlan:
    """One plan for an amount: what the shopper repays each month and in all."""

    bank: str
    months: int
    annual_rate: Decimal  # percent
    principal_minor: int
    monthly_instalment_minor: int
    total_interest_minor: int
    total_minor: int

    @property
    def rate_bp(self) -> int:
        """The annual rate in basis points (as stored with the payment)."""
        return int(self.annual_rate * 100)


def instalment_plan(bank: str, months: int, annual_rate: Decimal, principal_minor: int) -> EmiPlan:
    """The plan of ``principal_minor`` over ``months`` at ``annual_rate`` percent a year."""
    if principal_minor <= 0:
        raise InvalidRequest("an EMI plan needs a positive amount", code="invalid_amount")
    if annual_rate == 0:
        monthly = -(-principal_minor // months)  # ceiling: no instalment is short
        return EmiPlan(bank, months, annual_rate, principal_minor, monthly, 0, principal_minor)
    rate = annual_rate / Decimal(1200)
    growth = (1 + rate) ** months
    exact = Decimal(principal_minor) * rate * growth / (growth - 1)
    monthly = int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    total = monthly * months
    return EmiPlan(
        bank, months, annual_rate, principal_minor, monthly, total - principal_minor, total
    )


@dataclass(frozen=True)
class EmiRates:
    """Annual rates (percent) per region, bank and term."""

    rates: Mapping[str, Mapping[str, Mapping[int, Decimal]]]

    def banks(self, region: str) -> list[str]:
        """The banks offering EMI in a region."""
        return sorted(self.rates.get(region, {}))

    def plans(self, region: str, bank: str, principal_minor: int) -> list[EmiPlan]:
        """Every plan the bank offers in the region for this amount, shortest first."""
        terms = self._terms(region, bank)
        return [
            instalment_plan(bank, months, terms[months], principal_minor)
            for months in sorted(terms)
        ]

    def plan(self, region: str, bank: str, months: int, principal_minor: int) -> EmiPlan:
        """One plan; UnknownEmiPlan if the bank does not offer that term in the region."""
        terms = self._terms(region, bank)
        if months not in terms:
            raise UnknownEmiPlan(
                f"{bank} offers EMI over {', '.join(map(str, sorted(terms)))} months in "
                f"{region}, not {months}",
                bank=bank,
                months=sorted(terms),
            )
        return instalment_plan(bank, months, terms[months], principal_minor)

    def _terms(self, region: str, bank: str) -> Mapping[int, Decimal]:
        terms = self.rates.get(region, {}).get(bank.lower())
        if not terms:
            raise UnknownEmiPlan(
                f"no EMI plans of bank {bank!r} in region {region!r}; "
                f"banks: {', '.join(self.banks(region)) or 'none'}",
                bank=bank,
                banks=self.banks(region),
            )
        return terms


def parse_emi_rates(data: Mapping[str, object], where: str = "emi rates") -> EmiRates:
    """EMI rates from the parsed TOML tables ``[<region>.<bank>] <months> = "<percent>"``."""
    rates: dict[str, dict[str, dict[int, Decimal]]] = {}
    for region, banks in data.items():
        if not isinstance(banks, Mapping):
            raise InvalidEmiRates(f"{where}: [{region}] must hold bank tables")
        for bank, terms in banks.items():
            if not isinstance(terms, Mapping):
                raise InvalidEmiRates(f"{where}: [{region}.{bank}] must map months to rates")
            table: dict[int, Decimal] = {}
            for months, rate in terms.items():
                if not str(months).isdigit() or int(months) not in EMI_MONTHS:
                    raise InvalidEmiRates(f"{where}: {region}.{bank}: term {months!r} months")
                try:
                    value = Decimal(str(rate))
                except InvalidOperation:
                    raise InvalidEmiRates(f"{where}: {region}.{bank}: rate {rate!r}") from None
                if not value.is_finite() or not Decimal(0) <= value <= Decimal(60):
                    raise InvalidEmiRates(f"{where}: {region}.{bank}: rate {rate!r} not 0-60 %")
                table[int(months)] = value
            rates.setdefault(region.lower(), {})[bank.lower()] = table
    return EmiRates(rates)


@lru_cache(maxsize=4)
def load_emi_rates(path: Path | None = None) -> EmiRates:
    """EMI rates from a TOML file (the packaged one if None); read once per path."""
    file = path or DEFAULT_EMI_RATES_FILE
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidEmiRates(f"EMI rates file {file} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise InvalidEmiRates(f"EMI rates file {file} is not valid TOML: {error}") from None
    return parse_emi_rates(data, str(file))


_current: list[EmiRates] = []


def use_emi_rates(rates: EmiRates) -> None:
    """Make ``rates`` the process's EMI table (wiring: SOUK_EMI_RATES_FILE)."""
    _current[:] = [rates]


def current_emi_rates() -> EmiRates:
    """The process's EMI table (the packaged file unless wiring chose another)."""
    return _current[0] if _current else load_emi_rates()
