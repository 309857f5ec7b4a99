"""`souk simulate` (the typer command) against the live app: seeds, shops, labels, fails loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from souk import simulate_cli
from souk.services import Services
from souk.simulation import FRAUD_KINDS


@pytest.fixture
def cli(services: Services, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    # The admin token for seeding is signed with the served app's secret.
    monkeypatch.setattr(simulate_cli, "get_settings", lambda: services.settings)
    app = typer.Typer()
    app.command()(simulate_cli.simulate)
    return app


def test_simulate_seeds_shops_prints_the_summary_and_writes_labels(
    cli: typer.Typer, live_url: str, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "--base-url",
            live_url,
            "--users",
            "5",
            "--rate",
            "4",
            "--duration",
            "2",
            "--products",
            "5",
            "--fraud-share",
            "0.3",
            "--seed",
            "21",
            "--labels",
            str(labels),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "seeding 5 products" in result.output
    assert "Simulated shoppers (seed 21" in result.output
    assert "POST /v1/checkout" in result.output or "GET /v1/products/{product_id}" in result.output
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    for row in rows:
        assert set(row) == {"session", "customer_id", "kinds", "order_ids"}
        assert row["kinds"] and set(row["kinds"]) <= set(FRAUD_KINDS)


def test_simulate_against_nothing_is_a_one_line_error(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["--base-url", "http://127.0.0.1:9", "--duration", "1"])
    assert result.exit_code == 1
    assert "cannot reach http://127.0.0.1:9" in result.output
