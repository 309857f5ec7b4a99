"""Every notebook executed end to end (nbclient, the venv's python3 kernel) against a small
shop loaded by the loader's batch path and served by a running loader endpoint; each one's key
figures must equal the same metrics read through `souk analytics metrics --json`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from jobs.analytics import data_dir
from jobs.analytics.chdb_store import ChdbStore
from jobs.analytics.endpoint import QueryEndpoint, running_endpoint
from souk.demo_analytics import LoaderHandle, analytics_summary, stop_loader
from souk.settings import Settings
from tests.integration.notebooks import shop

pytestmark = pytest.mark.integration

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"
TAG = "SOUK_KEY_FIGURES "


def key_figures(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The JSON line a notebook printed with the tag (exactly one)."""
    found = [
        line[len(TAG) :]
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
        for line in output.get("text", "").splitlines()
        if line.startswith(TAG)
    ]
    assert len(found) == 1, f"expected one {TAG.strip()} line, got {len(found)}"
    figures: dict[str, Any] = json.loads(found[0])
    return figures


def execute(path: Path, env: dict[str, str], cwd: Path) -> nbformat.NotebookNode:
    """Run every cell of ``path`` in a fresh kernel (raises on the first failing cell)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    asyncio.run(client.async_execute(env=env))
    return nb


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, dict[str, str]]]:
    """The shop in a fresh store with a running loader endpoint, registry and labels."""
    home = tmp_path_factory.mktemp("notebooks-home")
    settings = Settings(_env_file=None, home=home, regions=["eu", "us"])  # type: ignore[call-arg]
    store = ChdbStore(data_dir(settings))
    shop.load(store, settings, shop.events())
    shop.register_models(settings)
    assert shop.record_fraud_labels(settings) == 3
    endpoint = QueryEndpoint(store, settings).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUK_")}
    env.update(SOUK_HOME=str(home), SOUK_REGIONS="eu,us")
    try:
        assert running_endpoint(settings) == endpoint.url
        yield settings, env
    finally:
        endpoint.stop()
        store.close()


@pytest.fixture(scope="module")
def executed(
    home: tuple[Settings, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, nbformat.NotebookNode]:
    """Every notebook, executed in parallel (one kernel each)."""
    _, env = home
    cwd = tmp_path_factory.mktemp("notebooks-cwd")
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    with ThreadPoolExecutor(len(paths)) as pool:
        runs = {p.stem: pool.submit(execute, p, env, cwd) for p in paths}
        return {name: run.result() for name, run in runs.items()}


@pytest.fixture(scope="module")
def cli(home: tuple[Settings, dict[str, str]]) -> dict[str, Any]:
    """`souk analytics metrics --json` against the same running endpoint."""
    _, env = home
    out = subprocess.run(
        [sys.executable, "-m", "souk", "analytics", "metrics", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    figures: dict[str, Any] = json.loads(out.stdout)
    return figures


def test_every_notebook_runs_and_prints_its_figures(
    executed: dict[str, nbformat.NotebookNode],
) -> None:
    assert sorted(executed) == [
        "01_sales_overview",
        "02_funnel",
        "03_cohorts",
        "04_recommendations",
        "05_fraud_review",
    ]
    for name, nb in executed.items():
        errors = [
            o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"
        ]
        assert not errors, name
        plots = [
            o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
        ]
        assert plots, f"{name} drew no plot"
        assert key_figures(nb)


def test_sales_overview_matches_the_cli(
    executed: dict[str, nbformat.NotebookNode], cli: dict[str, Any]
) -> None:
    got = key_figures(executed["01_sales_overview"])
    assert got["orders"] == cli["orders"]["placed"] == 4
    assert got["gmv_minor"] == {m["currency"]: m["amount_minor"] for m in cli["gmv"]}
    assert got["aov_minor"] == {m["currency"]: m["amount_minor"] for m in cli["aov"]}
    by_currency: dict[str, int] = {}
    for row in cli["details"]["aov"]:
        by_currency[row["currency"]] = row["orders"]
    assert got["orders_by_currency"] == by_currency
    by_region: dict[str, int] = {}
    for row in cli["details"]["gmv_by_day"]:
        key = f"{row['region']} {row['currency']}"
        by_region[key] = by_region.get(key, 0) + row["gmv_minor"]
    assert got["gmv_by_region_minor"] == by_region
    first: dict[str, str] = {}
    for row in cli["details"]["gmv_by_seller"]:  # ordered by currency, GMV descending
        first.setdefault(row["currency"], row["seller_id"])
    assert got["top_seller"] == first == {"EUR": "s1", "USD": "s1"}


def test_funnel_matches_the_cli(
    executed: dict[str, nbformat.NotebookNode], cli: dict[str, Any]
) -> None:
    got = key_figures(executed["02_funnel"])
    funnel = cli["funnel"]
    assert got["funnel"] == {k: funnel[k] for k in ("viewed", "carted", "checked_out", "paid")}
    assert got["conversion"] == pytest.approx(funnel["conversion"])
    assert got["cancellation_rate"] == pytest.approx(cli["cancellation_rate"])
    assert got["decline_rate"] == pytest.approx(cli["decline_rate"])
    regions: dict[str, list[int]] = {}
    for row in cli["details"]["funnel"]:
        viewed_paid = regions.setdefault(row["region"], [0, 0])
        viewed_paid[0] += row["viewed"]
        viewed_paid[1] += row["paid"]
    assert got["conversion_by_region"] == pytest.approx({r: p / v for r, (v, p) in regions.items()})
    assert got["conversion_by_channel"] == pytest.approx({"ios": 0.0, "web": 2 / 4})


def test_cohorts_match_the_cli(
    executed: dict[str, nbformat.NotebookNode], cli: dict[str, Any]
) -> None:
    got = key_figures(executed["03_cohorts"])
    assert got["customers"] == cli["customers"] == 4
    rows = cli["details"]["cohorts"]
    assert got["cohort_sizes"] == {r["cohort_week"]: r["cohort_size"] for r in rows}
    retention: dict[str, dict[str, float]] = {}
    for r in rows:
        retention.setdefault(r["cohort_week"], {})[str(r["week_offset"])] = r["retention"]
    assert got["retention"].keys() == retention.keys() == {"2026-11-30"}
    for week, offsets in retention.items():
        assert got["retention"][week] == pytest.approx(offsets)


def test_recommendations_match_the_cli_and_the_registry(
    executed: dict[str, nbformat.NotebookNode], cli: dict[str, Any]
) -> None:
    got = key_figures(executed["04_recommendations"])
    assert got["ctr"] == {
        f"{r['model']}/{r['model_version']}": {
            "served": r["served"],
            "clicked": r["clicked"],
            "ctr": pytest.approx(r["ctr"]),
        }
        for r in cli["details"]["recommendation_ctr"]
    }
    assert len(got["ctr"]) == 3
    assert got["offline_precision_at_10"] == {f"{k}/{v}": p for (k, v), p in shop.OFFLINE.items()}
    assert got["promoted"] == {"als": "v2"}
    assert got["latest_report_precision_at_10"] == {
        name: values["precision@10"] for name, values in shop.REPORT_MODELS.items()
    }


def test_fraud_review_matches_the_cli_and_the_labels(
    executed: dict[str, nbformat.NotebookNode], cli: dict[str, Any]
) -> None:
    got = key_figures(executed["05_fraud_review"])
    assert got["alerts"] == cli["fraud_alerts"] == 4
    assert got["alert_rate"] == pytest.approx(cli["fraud_alert_rate"])
    assert got["alerts_by_rule"] == {
        r["rule"]: r["alerts"] for r in cli["details"]["fraud_by_rule"]
    }
    # hand-computed in shop.py's docstring
    assert (got["accounts_alerted"], got["accounts_labelled"], got["accounts_caught"]) == (2, 2, 1)
    assert (got["precision"], got["recall"]) == (0.5, 0.5)
    assert got["precision_by_rule"] == {"velocity": 0.5, "bulk_quantity": 0.0}


def test_demo_summary_compares_the_simulated_orders_only(
    home: tuple[Settings, dict[str, str]],
) -> None:
    settings, _ = home
    handle = LoaderHandle(settings, started=False, status="running (test)")
    # o1 (2900 EUR) and o3 (4500 USD) as PostgreSQL saw them; o2, o4 are another run's
    ok = analytics_summary(handle, 2, {"EUR": 2900, "USD": 4500}, ["o1", "o3"], timeout_s=0)
    assert ok.failures == []
    text = "\n".join(ok.lines)
    assert "agrees with PostgreSQL on the 2 simulated orders" in text
    assert "orders placed 4, paid 4, cancelled 1" in text  # the headline: the whole store
    assert "make notebooks" in text
    wrong = analytics_summary(handle, 3, {"EUR": 2900, "USD": 4000}, ["o1", "o3"], timeout_s=0)
    assert wrong.failures == [
        "analytics disagrees with PostgreSQL on the 2 simulated orders: "
        "orders: analytics 2 vs PostgreSQL 3",
        "analytics disagrees with PostgreSQL on the 2 simulated orders: "
        "revenue USD: analytics 45.00 USD vs PostgreSQL 40.00 USD",
    ]
    # o2 was refunded in full: nothing left of its revenue
    assert analytics_summary(handle, 1, {}, ["o2"], timeout_s=0).failures == []
    assert stop_loader(handle, keep=False) is False  # not ours: never stopped
