"""The committed notebooks carry no outputs and are what notebooks/build.py writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[3] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_five_notebooks_are_there() -> None:
    assert [p.name for p in PATHS] == [
        "01_sales_overview.ipynb",
        "02_funnel.ipynb",
        "03_cohorts.ipynb",
        "04_recommendations.ipynb",
        "05_fraud_review.ipynb",
    ]


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_no_outputs_and_connects_first(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] for cell in code)
    assert all(cell.execution_count is None for cell in code)
    assert nb.metadata.kernelspec.name == "python3"
    assert any(cell.cell_type == "markdown" for cell in nb.cells)  # prose
    # the first code cell connects through the project's API, nothing hard-coded
    assert "from jobs.analytics import connect" in code[0].source
    assert "db = connect()" in code[0].source
    assert all(token not in cell.source for cell in code for token in ("127.0.0.1", ".souk/"))


def test_build_script_is_in_sync() -> None:
    out = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "build.py"), "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
