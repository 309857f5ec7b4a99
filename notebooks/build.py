"""Write the analysts' notebooks (``python notebooks/build.py``): prose, SQL, pandas, plots.

The notebooks are authored here, in code, so a review reads plain Python and the committed
``.ipynb`` files carry no outputs (``--check`` fails when a committed file differs from what
this script writes). Every notebook:

- connects in its first code cell through ``jobs.analytics.connect()`` (``SOUK_ANALYTICS_URL``,
  else the running loader's loopback endpoint, else the local folder: no path or port here);
- copes with an empty store (it says so instead of failing);
- ends by printing its key figures as one line, ``SOUK_KEY_FIGURES {json}``, which the test
  suite compares with the same metrics read through ``souk analytics``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

HERE = Path(__file__).resolve().parent
TAG = "SOUK_KEY_FIGURES"

KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

CONNECT = """\
import json
from decimal import Decimal

import matplotlib.pyplot as plt
import pandas as pd

from jobs.analytics import connect
from jobs.analytics.rates import display as money, to_major

# SOUK_ANALYTICS_URL → that ClickHouse; else the running loader's endpoint; else the folder.
db = connect()
print(f"connected through {type(db.source).__name__}")"""

FIGURES = f"""\
def show(figures: dict) -> None:
    \"\"\"Print the key figures as one tagged JSON line (the test suite reads it).\"\"\"
    print("{TAG} " + json.dumps(figures, sort_keys=True, default=str))"""


def md(text: str) -> NotebookNode:
    """A markdown cell."""
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str) -> NotebookNode:
    """A code cell (no outputs, no execution count)."""
    return nbformat.v4.new_code_cell(text.strip())


def notebook(cells: list[NotebookNode]) -> NotebookNode:
    """A notebook for the venv's python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = KERNEL
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = cells
    return nb


def _setup(title: str, intro: str) -> list[NotebookNode]:
    return [
        md(f"# {title}\n\n{intro.strip()}"),
        md(
            "The first cell connects through the project's own API: `connect()` reads "
            "`SOUK_ANALYTICS_URL` (a ClickHouse server), else finds the analytics loader that "
            "`souk up` / `make demo ARGS=--keep` runs for this `SOUK_HOME` and queries it over "
            "its loopback endpoint, else opens the local store itself."
        ),
        code(CONNECT + "\n\n\n" + FIGURES),
    ]


SALES = notebook(
    [
        *_setup(
            "Sales overview",
            """
GMV and orders over time by region, average order value and the top sellers, read from the
analytics store (ClickHouse tables the loader fills from the event bus).

Money stays in integer **minor units per currency** in SQL; the cells convert it with the
currency's exponent for display and never add two currencies together (a cross-currency
total needs the rate table: `db.headline()` or the `currency_rates` table).
""",
        ),
        md(
            """
## GMV and orders per day, region and currency

`db.metric("gmv_by_day")` runs the documented query of `jobs/analytics/metrics.py`: the grand
total (items - discount + shipping + tax) of the orders placed, per day (UTC), region and
currency.
"""
        ),
        code(
            """
gmv = db.metric("gmv_by_day")
if not gmv.empty:
    gmv["gmv"] = [float(to_major(m, c)) for m, c in zip(gmv["gmv_minor"], gmv["currency"])]
gmv.tail(20)
"""
        ),
        code(
            """
if gmv.empty:
    print("no orders yet: run `make demo ARGS=--keep` (or `souk simulate`) first")
else:
    currencies = sorted(gmv["currency"].unique())
    fig, axes = plt.subplots(
        len(currencies), 2, figsize=(12, 3.5 * len(currencies)), squeeze=False
    )
    for row, currency in zip(axes, currencies):
        part = gmv[gmv["currency"] == currency]
        amounts = part.pivot_table(index="day", columns="region", values="gmv", aggfunc="sum")
        amounts.fillna(0).plot(ax=row[0], marker="o", title=f"GMV per day ({currency})")
        row[0].set_ylabel(currency)
        orders = part.pivot_table(index="day", columns="region", values="orders", aggfunc="sum")
        orders.fillna(0).plot(
            ax=row[1], kind="bar", stacked=True, title=f"orders per day ({currency})"
        )
    fig.tight_layout()
    plt.show()
"""
        ),
        md(
            """
## Totals and average order value

Per currency, from the daily rows above (pandas): GMV, orders and AOV = GMV / orders, rounded
to the minor unit. The documented `aov` metric gives the same from SQL.
"""
        ),
        code(
            """
if gmv.empty:
    totals = pd.DataFrame(columns=["currency", "orders", "gmv_minor", "aov_minor"])
else:
    totals = gmv.groupby("currency", as_index=False)[["orders", "gmv_minor"]].sum()
    totals["aov_minor"] = [
        int((Decimal(int(g)) / int(n)).to_integral_value())
        for g, n in zip(totals["gmv_minor"], totals["orders"])
    ]
    totals["GMV"] = [money(g, c) for g, c in zip(totals["gmv_minor"], totals["currency"])]
    totals["AOV"] = [money(a, c) for a, c in zip(totals["aov_minor"], totals["currency"])]
by_region = (
    gmv.groupby(["region", "currency"], as_index=False)[["orders", "gmv_minor"]].sum()
    if not gmv.empty
    else pd.DataFrame(columns=["region", "currency", "orders", "gmv_minor"])
)
display_totals = totals.drop(columns=["gmv_minor", "aov_minor"], errors="ignore")
print(display_totals.to_string(index=False))
db.metric("aov")
"""
        ),
        md(
            """
## Top sellers

A seller's GMV is the sum of its order lines (quantity x unit price - line discount):
shipping and tax belong to the order, not to one seller. Five per currency (`LIMIT 5 BY`).
"""
        ),
        code(
            """
sellers = db.df(
    \"\"\"
    SELECT seller_id, currency, uniqExact(order_id) AS orders, sum(quantity) AS units,
           sum(line_total_minor) AS gmv_minor
    FROM order_lines
    GROUP BY seller_id, currency
    ORDER BY currency, gmv_minor DESC, seller_id
    LIMIT 5 BY currency
    \"\"\"
)
if sellers.empty:
    print("no order lines yet")
else:
    sellers["gmv"] = [
        float(to_major(g, c)) for g, c in zip(sellers["gmv_minor"], sellers["currency"])
    ]
    currencies = sorted(sellers["currency"].unique())
    fig, axes = plt.subplots(1, len(currencies), figsize=(6 * len(currencies), 3), squeeze=False)
    for ax, currency in zip(axes[0], currencies):
        part = sellers[sellers["currency"] == currency].iloc[::-1]
        ax.barh(part["seller_id"], part["gmv"])
        ax.set_title(f"top sellers by GMV ({currency})")
        ax.set_xlabel(currency)
    fig.tight_layout()
    plt.show()
sellers
"""
        ),
        md("## Key figures"),
        code(
            """
show(
    {
        "orders": int(totals["orders"].sum()) if not totals.empty else 0,
        "orders_by_currency": {r.currency: int(r.orders) for r in totals.itertuples()},
        "gmv_minor": {r.currency: int(r.gmv_minor) for r in totals.itertuples()},
        "aov_minor": {r.currency: int(r.aov_minor) for r in totals.itertuples()},
        "gmv_by_region_minor": {
            f"{r.region} {r.currency}": int(r.gmv_minor) for r in by_region.itertuples()
        },
        "top_seller": {
            c: part.iloc[0]["seller_id"] for c, part in sellers.groupby("currency")
        }
        if not sellers.empty
        else {},
    }
)
"""
        ),
    ]
)

FUNNEL = notebook(
    [
        *_setup(
            "Funnel and conversion",
            """
The conversion funnel of storefront sessions, by region and channel (the region and channel
of the session's first event): **viewed** a product → also **added to a cart** → also
**started a checkout** of one of its carts → that checkout **paid** (`checkout.completed`).
Each step counts the sessions that reached every earlier step. Then the cancellation and
payment decline rates.
""",
        ),
        code(
            """
funnel = db.metric("funnel")
steps = ["viewed", "carted", "checked_out", "paid"]
if not funnel.empty:
    funnel["conversion"] = [p / v if v else 0.0 for p, v in zip(funnel["paid"], funnel["viewed"])]
funnel
"""
        ),
        md("## The whole funnel, and step-to-step rates"),
        code(
            """
total = {s: int(funnel[s].sum()) if not funnel.empty else 0 for s in steps}
rates = {
    f"{a} → {b}": (total[b] / total[a] if total[a] else 0.0) for a, b in zip(steps, steps[1:])
}
conversion = total["paid"] / total["viewed"] if total["viewed"] else 0.0
print("sessions:", total)
print("step rates:", {k: f"{v:.1%}" for k, v in rates.items()})
print(f"conversion (paid / viewed): {conversion:.1%}")
fig, ax = plt.subplots(figsize=(7, 3))
ax.bar(steps, [total[s] for s in steps], color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"])
ax.set_title("sessions at each step")
plt.show()
"""
        ),
        md("## Conversion by region and by channel"),
        code(
            """
def conversion_by(column: str) -> dict:
    if funnel.empty:
        return {}
    grouped = funnel.groupby(column)[steps].sum()
    return {
        str(key): (row["paid"] / row["viewed"] if row["viewed"] else 0.0)
        for key, row in grouped.iterrows()
    }


by_region = conversion_by("region")
by_channel = conversion_by("channel")
if funnel.empty:
    print("no sessions yet")
else:
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.5))
    funnel.set_index(["region", "channel"])[steps].plot(
        ax=axes[0], kind="bar", title="sessions per step, region x channel"
    )
    axes[1].bar(list(by_region), [100 * v for v in by_region.values()])
    axes[1].set_title("conversion by region (%)")
    axes[2].bar(list(by_channel), [100 * v for v in by_channel.values()])
    axes[2].set_title("conversion by channel (%)")
    fig.tight_layout()
    plt.show()
"""
        ),
        md(
            """
## Cancellations and declines

**Cancellation rate**: orders cancelled as a whole / orders placed. **Decline rate**: failed
authorisations / authorisation attempts (a failed capture is not a decline).
"""
        ),
        code(
            """
cancels = db.metric("cancellations")
declines = db.metric("declines")


def ratio(frame: pd.DataFrame, part: str, whole: str) -> float:
    if frame.empty or not frame[whole].sum():
        return 0.0
    return float(frame[part].sum() / frame[whole].sum())


cancellation_rate = ratio(cancels, "cancelled", "orders")
decline_rate = ratio(declines, "declined", "attempts")
print(f"cancellation rate {cancellation_rate:.1%}, decline rate {decline_rate:.1%}")
if not cancels.empty or not declines.empty:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    if not cancels.empty:
        axes[0].bar(cancels["region"], 100 * cancels["rate"])
    axes[0].set_title("cancellation rate by region (%)")
    if not declines.empty:
        axes[1].bar(declines["region"], 100 * declines["rate"])
    axes[1].set_title("decline rate by region (%)")
    fig.tight_layout()
    plt.show()
"""
        ),
        md("## Key figures"),
        code(
            """
show(
    {
        "funnel": total,
        "conversion": conversion,
        "conversion_by_region": by_region,
        "conversion_by_channel": by_channel,
        "cancellation_rate": cancellation_rate,
        "decline_rate": decline_rate,
    }
)
"""
        ),
    ]
)

COHORTS = notebook(
    [
        *_setup(
            "Cohorts and retention",
            """
Customers grouped by **signup week** (Monday, UTC, of their `user.registered`); for each week
after it, the share of the cohort that placed an order in that week (week 0 = the signup
week). The documented `cohorts` metric returns one row per cohort and week offset with an
order.
""",
        ),
        code(
            """
cohorts = db.metric("cohorts")
cohorts
"""
        ),
        md("## Retention matrix"),
        code(
            """
if cohorts.empty:
    matrix = pd.DataFrame()
    print("no cohort has ordered yet")
else:
    cohorts["cohort_week"] = pd.to_datetime(cohorts["cohort_week"]).dt.date
    matrix = cohorts.pivot_table(
        index="cohort_week", columns="week_offset", values="retention", aggfunc="sum"
    ).fillna(0.0)
    fig, ax = plt.subplots(figsize=(1.2 * matrix.shape[1] + 4, 0.6 * matrix.shape[0] + 2))
    image = ax.imshow(matrix.values, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(matrix.shape[1]), [f"+{w}w" for w in matrix.columns])
    ax.set_yticks(range(matrix.shape[0]), [str(d) for d in matrix.index])
    for (i, j), value in pd.DataFrame(matrix.values).stack().items():
        ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=8)
    ax.set_title("share of each signup cohort ordering, by week since signup")
    fig.colorbar(image, ax=ax)
    plt.show()
matrix
"""
        ),
        md(
            """
## Cohort sizes and signups over time

Straight SQL on the `customers` table (one row per registration).
"""
        ),
        code(
            """
signups = db.df(
    \"\"\"
    SELECT toMonday(registered_at) AS week, region, count() AS customers
    FROM customers GROUP BY week, region ORDER BY week, region
    \"\"\"
)
customers = int(signups["customers"].sum()) if not signups.empty else 0
print(f"customers registered: {customers:,}")
if not signups.empty:
    signups.pivot_table(index="week", columns="region", values="customers").fillna(0).plot(
        kind="bar", stacked=True, figsize=(8, 3), title="signups per week and region"
    )
    plt.show()
"""
        ),
        md("## Key figures"),
        code(
            """
sizes = (
    {str(k): int(v) for k, v in cohorts.groupby("cohort_week")["cohort_size"].first().items()}
    if not cohorts.empty
    else {}
)
show(
    {
        "customers": customers,
        "cohort_sizes": sizes,
        "retention": {
            str(week): {str(int(w)): float(v) for w, v in row.items() if v}
            for week, row in matrix.iterrows()
        },
    }
)
"""
        ),
    ]
)

RECOMMENDATIONS = notebook(
    [
        *_setup(
            "Recommendations quality",
            """
**Offline**: the metrics each model version was registered with (`models/registry.py`, from
the time-split evaluation of `souk jobs run train_als`), and the evaluation reports (JSON
beside the HTML report under `SOUK_HOME/reports`). **Online**: click-through per model and
version, from `recommendation.served` and `recommendation.clicked` in the analytics store (a
list counts as clicked when at least one click carries its `recommendation_id`).
""",
        ),
        md("## Offline: registered versions"),
        code(
            """
from models.jobs import reports_dir
from models.registry import ModelRegistry

registry = ModelRegistry(settings=db.settings)
offline_rows = []
for kind in registry.kinds():
    promoted = registry.promoted(kind)
    for version in registry.list(kind):
        offline_rows.append(
            {
                "kind": kind,
                "version": version.id,
                "created_at": version.created_at,
                "promoted": promoted is not None and promoted.id == version.id,
                **{k: v for k, v in version.metrics.items() if isinstance(v, int | float)},
            }
        )
offline = pd.DataFrame(offline_rows)
offline
"""
        ),
        code(
            """
scored = offline.dropna(subset=["precision@10"]) if "precision@10" in offline else offline[:0]
if scored.empty:
    print("no evaluated model version yet: `souk jobs run train_als --with-deps`")
else:
    labels = [f"{k} {v}" for k, v in zip(scored["kind"], scored["version"])]
    columns = [c for c in ("precision@10", "recall@10", "ndcg@10", "map@10") if c in scored]
    ax = scored.set_index(pd.Index(labels))[columns].plot(
        kind="bar", figsize=(10, 3.5), title="offline metrics @10 per model version"
    )
    ax.tick_params(axis="x", labelrotation=30)
    plt.show()
"""
        ),
        md("## Offline: the latest evaluation report (models side by side, curves over k)"),
        code(
            """
reports = sorted(reports_dir(db.settings).glob("models-*.json"))
report = json.loads(reports[-1].read_text()) if reports else None
if report is None:
    report_models = pd.DataFrame()
    print("no evaluation report yet")
else:
    print(f"{reports[-1].name}: {report.get('dataset', '')}")
    report_models = pd.DataFrame(report["models"]).T
    curves = report.get("curves", {})
    if curves.get("models"):
        fig, ax = plt.subplots(figsize=(7, 3))
        for name, curve in curves["models"].items():
            ax.plot(curves["ks"], curve["precision"], marker="o", label=name)
        ax.set_xlabel("k")
        ax.set_title("precision@k")
        ax.legend()
        plt.show()
report_models
"""
        ),
        md("## Online: click-through per model version"),
        code(
            """
ctr = db.metric("recommendation_ctr")
if ctr.empty:
    print("no recommendation served yet")
else:
    ctr["label"] = [f"{m} {v or '-'}" for m, v in zip(ctr["model"], ctr["model_version"])]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.bar(ctr["label"], 100 * ctr["ctr"])
    ax.set_ylabel("% of lists clicked")
    ax.set_title("click-through per model version")
    ax.tick_params(axis="x", labelrotation=30)
    plt.show()
ctr
"""
        ),
        md("## Offline against online, per version"),
        code(
            """
if ctr.empty or offline.empty:
    joined = pd.DataFrame()
else:
    joined = ctr.merge(offline, left_on="model_version", right_on="version", how="left")
joined
"""
        ),
        md("## Key figures"),
        code(
            """
show(
    {
        "ctr": {
            f"{r.model}/{r.model_version}": {
                "served": int(r.served), "clicked": int(r.clicked), "ctr": float(r.ctr)
            }
            for r in ctr.itertuples()
        },
        "offline_precision_at_10": {
            f"{r['kind']}/{r['version']}": float(r["precision@10"])
            for _, r in scored.iterrows()
        },
        "promoted": {k: v.id for k in registry.kinds() if (v := registry.promoted(k))},
        "latest_report_precision_at_10": {
            name: float(values["precision@10"])
            for name, values in (report or {}).get("models", {}).items()
            if "precision@10" in values
        },
    }
)
"""
        ),
    ]
)

FRAUD = notebook(
    [
        *_setup(
            "Fraud review",
            """
The fraud alerts (`fraud.alert_raised`, from the streaming rules and the checkout's screen) by
rule and region, and their **precision against the simulator's labels**: the lake table
`labels/fraud` (one row per labelled account and order, written by
`models.fraud.training.record_labels`, e.g. by `make demo`).
""",
        ),
        code(
            """
by_rule = db.metric("fraud_by_rule")
by_region = db.metric("fraud_by_region")
alerts_total = int(by_region["alerts"].sum()) if not by_region.empty else 0
checkouts = int(by_region["checkouts"].sum()) if not by_region.empty else 0
alert_rate = alerts_total / checkouts if checkouts else 0.0
print(f"{alerts_total:,} alerts on {checkouts:,} checkouts started ({alert_rate:.1%})")
if not by_rule.empty:
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
    axes[0].barh(by_rule["rule"].iloc[::-1], by_rule["alerts"].iloc[::-1])
    axes[0].set_title("alerts per rule (an alert can name several)")
    axes[1].bar(by_region["region"], 100 * by_region["rate"])
    axes[1].set_title("alerts per checkout started, by region (%)")
    fig.tight_layout()
    plt.show()
by_rule
"""
        ),
        md(
            """
## The alerted accounts

An alert names its account (`customer_id`), or its order, whose account the `orders` table
knows. Alerts with neither are left out of the precision below.
"""
        ),
        code(
            """
alerts = db.df(
    \"\"\"
    SELECT a.alert_id AS alert_id, a.region AS region, a.rules AS rules, a.score AS score,
           if(ifNull(a.customer_id, '') != '', ifNull(a.customer_id, ''), o.customer_id)
               AS customer_id
    FROM fraud_alerts AS a
    LEFT JOIN (SELECT order_id, any(customer_id) AS customer_id FROM orders GROUP BY order_id)
        AS o ON o.order_id = ifNull(a.order_id, '')
    \"\"\"
)
accounts = alerts[alerts["customer_id"] != ""] if not alerts.empty else alerts
alerts.head(20)
"""
        ),
        md(
            """
## Precision against the simulator's labels

Per account: of the accounts the alerts named, the share labelled fraud-like (precision), and
of the labelled accounts, the share alerted (recall); then the same precision per rule.
"""
        ),
        code(
            """
from jobs.lake import table_store

LABELS = "labels/fraud"  # models.fraud.training.LABELS_TABLE (not imported: it loads Feast)
lake = table_store(db.settings)
labels = (
    lake.read(LABELS, columns=["customer_id", "order_id"]).to_pandas()
    if lake.exists(LABELS)
    else pd.DataFrame(columns=["customer_id", "order_id"])
)
labelled = set(labels["customer_id"])
alerted = set(accounts["customer_id"]) if not accounts.empty else set()
caught = alerted & labelled
precision = len(caught) / len(alerted) if alerted else 0.0
recall = len(caught) / len(labelled) if labelled else 0.0
print(
    f"{len(alerted)} accounts alerted, {len(labelled)} labelled, {len(caught)} both: "
    f"precision {precision:.1%}, recall {recall:.1%}"
)
rule_rows = []
if not accounts.empty:
    for rule, part in accounts.explode("rules").dropna(subset=["rules"]).groupby("rules"):
        named = set(part["customer_id"])
        rule_rows.append(
            {
                "rule": rule,
                "accounts": len(named),
                "labelled": len(named & labelled),
                "precision": len(named & labelled) / len(named),
            }
        )
per_rule = pd.DataFrame(rule_rows, columns=["rule", "accounts", "labelled", "precision"])
if not per_rule.empty:
    ax = per_rule.set_index("rule")[["labelled", "accounts"]].plot(
        kind="barh", figsize=(8, 3), title="accounts alerted per rule, and how many labelled"
    )
    plt.show()
per_rule
"""
        ),
        md("## Key figures"),
        code(
            """
show(
    {
        "alerts": alerts_total,
        "alert_rate": alert_rate,
        "alerts_by_rule": {r.rule: int(r.alerts) for r in by_rule.itertuples()},
        "accounts_alerted": len(alerted),
        "accounts_labelled": len(labelled),
        "accounts_caught": len(caught),
        "precision": precision,
        "recall": recall,
        "precision_by_rule": {r.rule: float(r.precision) for r in per_rule.itertuples()},
    }
)
"""
        ),
    ]
)

NOTEBOOKS: dict[str, NotebookNode] = {
    "01_sales_overview.ipynb": SALES,
    "02_funnel.ipynb": FUNNEL,
    "03_cohorts.ipynb": COHORTS,
    "04_recommendations.ipynb": RECOMMENDATIONS,
    "05_fraud_review.ipynb": FRAUD,
}


def text_of(nb: NotebookNode) -> str:
    """The file content of a notebook (stable cell ids, so a rebuild changes nothing)."""
    for i, cell in enumerate(nb.cells):
        cell["id"] = str(i)  # what nbstripout writes: stripping changes nothing
    return nbformat.writes(nb) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write every notebook next to this script (``--check``: compare only)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Fail if a file is out of date.")
    args = parser.parse_args(argv)
    stale = []
    for name, nb in NOTEBOOKS.items():
        nbformat.validate(nb)
        path = HERE / name
        content = text_of(nb)
        if args.check:
            if not path.exists() or path.read_text() != content:
                stale.append(name)
        else:
            path.write_text(content)
    if stale:
        print(f"out of date (run python notebooks/build.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
