"""Side-by-side offline evaluation: train models on one split, score them, write a report.

``train_and_evaluate`` gives a JSON-able summary (metrics at k, curves over k, timings,
optional published reference figures); ``write_html_report`` renders it as one self-contained
HTML file with matplotlib plots embedded as base64 PNGs (Agg canvas: no display, no pyplot
global state, safe in threads and servers).
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from models.evaluation.metrics import METRICS, ranking_metrics
from models.evaluation.split import Split
from models.recommenders.artifact import Recommender

#: Cut-offs of the curves (the headline k is always added).
CURVE_KS = (1, 2, 3, 5, 10, 15, 20)

Trainer = Callable[[pd.DataFrame], Recommender]


def default_trainers(
    als_params: Mapping[str, Any] | None = None,
    knn_params: Mapping[str, Any] | None = None,
) -> dict[str, Trainer]:
    """ALS (implicit), item-kNN and popularity trainers: the usual comparison."""
    from models.recommenders.als import train_implicit
    from models.recommenders.item_knn import train_item_knn
    from models.recommenders.popularity import train_popularity

    als = dict(als_params or {})
    knn = dict(knn_params or {})
    return {
        "als": lambda train: train_implicit(train, **als),
        "item_knn": lambda train: train_item_knn(train, **knn),
        "popularity": lambda train: train_popularity(train),
    }


def train_and_evaluate(
    trainers: Mapping[str, Trainer],
    split: Split,
    *,
    k: int = 10,
    dataset: str = "",
    reference: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Train every model on ``split.train`` and evaluate it on ``split.test`` (timed)."""
    models: dict[str, Recommender] = {}
    train_s: dict[str, float] = {}
    for name, trainer in trainers.items():
        started = time.perf_counter()
        models[name] = trainer(split.train)
        train_s[name] = time.perf_counter() - started
    summary = evaluate_models(models, split, k=k, dataset=dataset, reference=reference)
    for name, seconds in train_s.items():
        summary["models"][name]["train_s"] = round(seconds, 3)
    return summary


def evaluate_models(
    models: Mapping[str, Recommender],
    split: Split,
    *,
    k: int = 10,
    dataset: str = "",
    reference: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Score trained models on ``split``: metrics at ``k``, curves over k, timings."""
    relevant = split.relevant()
    seen = split.seen()
    users = sorted(relevant)
    catalog = len(split.catalog())
    ks = sorted({*CURVE_KS, k})
    deepest = max(ks)
    results: dict[str, dict[str, float]] = {}
    curves: dict[str, dict[str, list[float]]] = {}
    for name, model in models.items():
        started = time.perf_counter()
        # One top-max(k) list per user serves every cut-off: a prefix of a ranking is a ranking.
        recommendations = model.recommend_many(users, deepest, seen)
        elapsed = time.perf_counter() - started
        at_k = ranking_metrics(recommendations, relevant, k, catalog_size=catalog)
        results[name] = {key: round(value, 6) for key, value in at_k.items()}
        results[name]["recommend_s"] = round(elapsed, 3)
        curve: dict[str, list[float]] = {metric: [] for metric in (*METRICS, "coverage")}
        for cut in ks:
            scores = ranking_metrics(recommendations, relevant, cut, catalog_size=catalog)
            for metric in curve:
                curve[metric].append(round(scores[f"{metric}@{cut}"], 6))
        curves[name] = curve
    return {
        "dataset": dataset,
        "k": k,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "split": split.describe(),
        "models": results,
        "curves": {"ks": ks, "models": curves},
        "reference": {name: dict(values) for name, values in (reference or {}).items()},
    }


def write_html_report(summary: Mapping[str, Any], path: Path, *, title: str = "") -> Path:
    """Render ``summary`` as a self-contained HTML report at ``path``; return the path."""
    k = int(summary["k"])
    title = title or f"Recommender evaluation {summary.get('dataset', '')}".strip()
    models: Mapping[str, Mapping[str, float]] = summary["models"]
    reference: Mapping[str, Mapping[str, float]] = summary.get("reference") or {}
    headline = [f"{metric}@{k}" for metric in (*METRICS, "coverage")]
    rows = []
    for name, values in models.items():
        cells = "".join(f"<td>{values.get(key, float('nan')):.4f}</td>" for key in headline)
        timing = f"{values.get('train_s', float('nan')):.2f} / {values.get('recommend_s', 0):.2f}"
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}<td>{timing}</td></tr>")
    for name, values in reference.items():
        cells = "".join(
            f"<td>{values[key]:.4f}</td>" if key in values else "<td>-</td>" for key in headline
        )
        rows.append(
            f"<tr class='ref'><th>{html.escape(name)} (published)</th>{cells}<td></td></tr>"
        )
    header = "".join(f"<th>{html.escape(key)}</th>" for key in headline)
    split = summary.get("split", {})
    facts = ", ".join(f"{html.escape(str(key))}: {value}" for key, value in split.items())
    images = "".join(
        f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'></figure>"
        for alt, data in (
            (f"metrics at {k}", _png(_bar_chart(models, reference, k))),
            ("metrics over k", _png(_curve_chart(summary["curves"]))),
        )
    )
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: right; }}
tr.ref {{ color: #777; font-style: italic; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Created {html.escape(str(summary.get("created_at", "")))}. Split: {facts}.</p>
<table><thead><tr><th>model</th>{header}<th>train / recommend s</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{images}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


def _bar_chart(
    models: Mapping[str, Mapping[str, float]],
    reference: Mapping[str, Mapping[str, float]],
    k: int,
) -> Any:
    """Grouped bars: each metric at k for each model (published figures hatched)."""
    from matplotlib.figure import Figure

    metrics = [f"{metric}@{k}" for metric in (*METRICS, "coverage")]
    series = [(name, values, False) for name, values in models.items()]
    series += [(f"{name} (published)", values, True) for name, values in reference.items()]
    figure = Figure(figsize=(9, 4.5), layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(series))
    for index, (name, values, published) in enumerate(series):
        positions = [m + index * width for m in range(len(metrics))]
        heights = [float(values.get(metric, 0.0)) for metric in metrics]
        axes.bar(positions, heights, width, label=name, hatch="//" if published else None)
    axes.set_xticks([m + width * (len(series) - 1) / 2 for m in range(len(metrics))], metrics)
    axes.set_ylabel("score")
    axes.set_title(f"Top-{k} metrics")
    axes.legend(fontsize="small")
    return figure


def _curve_chart(curves: Mapping[str, Any]) -> Any:
    """Precision, recall and nDCG as functions of k, one line per model."""
    from matplotlib.figure import Figure

    ks: Sequence[int] = curves["ks"]
    figure = Figure(figsize=(12, 3.8), layout="constrained")
    for index, metric in enumerate(("precision", "recall", "ndcg")):
        axes = figure.add_subplot(1, 3, index + 1)
        for name, values in curves["models"].items():
            axes.plot(ks, values[metric], marker="o", label=name)
        axes.set_xlabel("k")
        axes.set_title(f"{metric}@k")
        axes.grid(alpha=0.3)
    figure.axes[0].legend(fontsize="small")
    return figure


def _png(figure: Any) -> str:
    """A figure rendered by the Agg canvas as base64 PNG text."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # attaches the Agg canvas: savefig renders through it
    figure.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
