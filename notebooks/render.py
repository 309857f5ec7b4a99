"""`make notebooks`: run every notebook against the running stack, write HTML under SOUK_HOME.

Each notebook runs in a fresh kernel (the venv's ``python3``, nbclient) with this process's
environment, so it reads the same ``SOUK_HOME`` / ``SOUK_ANALYTICS_URL``; the executed copy
goes to ``SOUK_HOME/notebooks/<name>.html`` (nbconvert's HTMLExporter; the committed
``.ipynb`` files are left untouched, without outputs). Needs the analytics loader running
(`souk up` or `make demo ARGS=--keep`) or ``SOUK_ANALYTICS_URL``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

from jobs.analytics.endpoint import running_endpoint
from souk.settings import get_settings

HERE = Path(__file__).resolve().parent


def render(path: Path, out_dir: Path, timeout_s: int) -> tuple[Path, str | None]:
    """Execute ``path`` and write its HTML; return the HTML path and an error, if any."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(out_dir)}}
    )
    error = None
    try:
        client.execute()
    except CellExecutionError as failed:  # the HTML still shows the cells up to the failure
        error = str(failed).strip().splitlines()[-1]
    html, _ = HTMLExporter().from_notebook_node(nb)
    target = out_dir / f"{path.stem}.html"
    target.write_text(html)
    return target, error


def main(argv: list[str] | None = None) -> int:
    """Render the notebooks (all, or those named) to SOUK_HOME/notebooks/*.html."""
    parser = argparse.ArgumentParser(prog="make notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="Notebooks to run (default: all), e.g. 02_funnel")
    parser.add_argument("--timeout", type=int, default=600, help="Seconds per cell at most.")
    args = parser.parse_args(argv)
    settings = get_settings()
    if not settings.analytics_url and running_endpoint(settings) is None:
        print(
            f"error: no analytics loader runs for SOUK_HOME={settings.state_dir}: start the "
            "stack with `souk up` (or `make demo ARGS=--keep`), or set SOUK_ANALYTICS_URL",
            file=sys.stderr,
        )
        return 1
    paths = sorted(HERE.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names or p.name in args.names]
        if not paths:
            print(f"error: no notebook named {', '.join(args.names)}", file=sys.stderr)
            return 1
    out_dir = settings.state_dir / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in paths:
        started = time.perf_counter()
        target, error = render(path, out_dir, args.timeout)
        took = time.perf_counter() - started
        if error is None:
            print(f"{path.name}: {target} ({took:.1f} s)")
        else:
            failed += 1
            print(f"{path.name}: FAILED ({error}); partial output in {target}", file=sys.stderr)
    print(f"{len(paths) - failed} of {len(paths)} notebooks rendered under {out_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
