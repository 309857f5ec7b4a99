"""SOUK_FX_RATES: JSON or CURRENCY=RATE pairs, and the form child processes are given."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipelines.control import settings_env
from souk.settings import Settings


def _settings(monkeypatch: pytest.MonkeyPatch, value: str) -> Settings:
    monkeypatch.setenv("SOUK_FX_RATES", value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ['{"EUR": 1, "USD": 0.9}', "EUR=1, usd=0.9"])
def test_rates_read_as_json_or_pairs(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    assert _settings(monkeypatch, value).fx_rates == {"EUR": 1.0, "USD": 0.9}


def test_a_child_process_reads_back_the_rates_it_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = _settings(monkeypatch, '{"EUR": 1, "INR": 0.011}')
    child = _settings(monkeypatch, settings_env(parent)["SOUK_FX_RATES"])
    assert child.fx_rates == parent.fx_rates


def test_a_malformed_pair_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="CURRENCY=RATE"):
        _settings(monkeypatch, "EUR")
