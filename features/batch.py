"""Batch feature views on the lake's gold tables, and the snapshots that are their history.

A gold table holds only the current statistics; a point-in-time join needs what they were at
each moment. :func:`snapshot_gold` therefore appends every gold row, stamped
``event_timestamp = as_of``, to the lake table ``features/<view>`` (Delta, through the
table-store port): the history of snapshots is each view's offline source, read by Feast as a
``FileSource`` in ``DeltaFormat``.

Feast 0.67's file offline store (Dask) reads a Delta source as the plain parquet files in its
folder (the ``_delta_log`` is ignored). That is exact for these tables because they are only
ever appended to: a compaction leaves identical rows (same key, same timestamp) that Feast's
de-duplication removes, but an overwrite or a DELETE would bring removed rows back, so no code
may do either to ``features/*``.

Gold column names may differ slightly between jobs: each feature lists the columns (or
derivations) it is read from, first found wins. :func:`historical_features` is the
point-in-time join training sets use (Feast's, with its file-store gaps filled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.data_format import DeltaFormat
from feast.types import FeastType, Float64, Int64, String

from features.entities import customer, product, seller
from features.views import SIGNALS_TTL, TIMESTAMP_FIELD
from jobs.lake import LakeError, TableStore, table_store
from jobs.result import JobResult
from souk.settings import Settings

__all__ = [
    "BATCH_TTL",
    "BATCH_VIEWS",
    "SNAPSHOT_DIR",
    "BatchFeature",
    "BatchView",
    "batch_views",
    "gold_snapshot",
    "historical_features",
    "snapshot_gold",
    "snapshot_table",
    "source_keys",
]

logger = logging.getLogger(__name__)

#: How old a snapshot may be and still be served or joined: the online store's key TTL (the
#: store's ``key_ttl_seconds``), so a model trains on what serving would have had.
#: Materialisation runs hourly, far inside it.
BATCH_TTL = SIGNALS_TTL
#: Lake folder of the snapshot histories: ``features/<view>``.
SNAPSHOT_DIR = "features"

_ARROW_TYPES: dict[FeastType, pa.DataType] = {
    Int64: pa.int64(),
    Float64: pa.float64(),
    String: pa.string(),
}

Column: TypeAlias = pa.Array | pa.ChunkedArray
#: Computes a feature at snapshot time from the gold columns and the features resolved before
#: it (by the view's names); None if its inputs are missing.
Derivation = Callable[[Mapping[str, Column], datetime], Column | None]

#: How the rows of one key in several currencies combine: counts add up, recency is the most
#: recent, money (never summed across currencies) is the primary currency's.
Across = Literal["sum", "min", "primary"]
_AGGREGATIONS: dict[str, str] = {"sum": "sum", "min": "min", "primary": "first"}


@dataclass(frozen=True)
class BatchFeature:
    """One feature of a batch view and where in its gold table it comes from."""

    name: str
    dtype: FeastType
    description: str
    #: Gold column names or derivations, tried in order.
    sources: tuple[str | Derivation, ...]
    across: Across = "sum"


@dataclass(frozen=True)
class BatchView:
    """A batch feature view: one entity, its gold table, its features.

    A gold table may hold one row per key and ``split_by`` value (gold keeps money per
    currency): a snapshot folds them into one row per key, whose primary row (for the
    ``primary`` features) is the one with the most ``rank_by``, then the lowest ``split_by``.
    """

    name: str
    entity: Entity
    gold_table: str
    description: str
    features: tuple[BatchFeature, ...]
    split_by: str | None = None
    rank_by: str = "orders"

    @property
    def join_key(self) -> str:
        """The entity's join key column (e.g. ``customer_id``)."""
        return self.entity.join_key


def _days_since_last_order(columns: Mapping[str, Column], as_of: datetime) -> Column | None:
    """Days from ``last_order_at`` to the snapshot time: recency as it was at ``as_of``."""
    if "last_order_at" not in columns:
        return None
    last = columns["last_order_at"].cast(pa.timestamp("us", tz="UTC"))
    now = pa.scalar(as_of.astimezone(UTC), pa.timestamp("us", tz="UTC"))
    micros = pc.microseconds_between(last, now)
    return pc.divide(micros.cast(pa.float64()), 86_400e6)


def _conversion(columns: Mapping[str, Column], as_of: datetime) -> Column | None:
    """Purchases per view, for a gold table that lacks the ratio (null without views)."""
    if "purchases" not in columns or "views" not in columns:
        return None
    views = columns["views"].cast(pa.float64())
    safe = pc.if_else(pc.greater(views, 0), views, None)
    return pc.divide(columns["purchases"].cast(pa.float64()), safe)


customer_purchase_stats = BatchView(
    name="customer_purchase_stats",
    entity=customer,
    gold_table="gold/customer_stats",
    description="Per-customer paid orders, spend and days since the last order.",
    features=(
        BatchFeature("orders", Int64, "Paid orders so far.", ("orders", "order_count")),
        BatchFeature(
            "spend",
            Int64,
            "Spend in the main currency (minor units).",
            ("spend", "spend_minor", "total_spend"),
            "primary",
        ),
        BatchFeature("currency", String, "The customer's main currency.", ("currency",), "primary"),
        BatchFeature(
            "recency_days",
            Float64,
            "Days since the last order, at the snapshot's time.",
            (_days_since_last_order, "recency_days"),
            "min",
        ),
    ),
    split_by="currency",
)
product_popularity = BatchView(
    name="product_popularity",
    entity=product,
    gold_table="gold/item_stats",
    description="Per-product funnel counts and view-to-purchase conversion.",
    features=(
        BatchFeature("views", Int64, "Product page views.", ("views", "view_count")),
        BatchFeature("cart_adds", Int64, "Adds to cart.", ("cart_adds", "add_to_carts")),
        BatchFeature(
            "purchases", Int64, "Orders containing the product.", ("purchases", "purchase_count")
        ),
        BatchFeature("conversion", Float64, "Purchases per view.", ("conversion", _conversion)),
    ),
)
seller_stats = BatchView(
    name="seller_stats",
    entity=seller,
    gold_table="gold/seller_stats",
    description="Per-seller paid orders, units and revenue.",
    features=(
        BatchFeature("orders", Int64, "Paid orders with the seller's items.", ("orders",)),
        BatchFeature("units", Int64, "Units sold.", ("units", "units_sold", "quantity")),
        BatchFeature(
            "revenue",
            Int64,
            "Revenue in the main currency (minor units).",
            ("revenue", "revenue_minor", "gmv"),
            "primary",
        ),
        BatchFeature("currency", String, "The seller's main currency.", ("currency",), "primary"),
    ),
    split_by="currency",
)

#: The batch views, by name.
BATCH_VIEWS: dict[str, BatchView] = {
    view.name: view for view in (customer_purchase_stats, product_popularity, seller_stats)
}


def snapshot_table(view: str) -> str:
    """The lake table of a view's snapshot history: ``features/<view>``."""
    return f"{SNAPSHOT_DIR}/{view}"


def _source_path(store: TableStore, view: str) -> str:
    """Where Feast reads a view's history: absolute, since Feast resolves Delta paths as given."""
    uri = store.uri(snapshot_table(view))
    return uri if "://" in uri else str(Path(uri).resolve())


def batch_views(settings: Settings) -> list[FeatureView]:
    """Fresh Feast views of :data:`BATCH_VIEWS`, sourced from this lake's snapshot tables."""
    store = table_store(settings)
    views: list[FeatureView] = []
    for spec in BATCH_VIEWS.values():
        source = FileSource(
            name=f"{spec.name}_snapshots",
            path=_source_path(store, spec.name),
            file_format=DeltaFormat(),
            timestamp_field=TIMESTAMP_FIELD,
            description=f"Snapshot history of {spec.gold_table} (lake Delta table).",
        )
        schema = [Field(name=spec.join_key, dtype=String)] + [
            Field(name=f.name, dtype=f.dtype, description=f.description) for f in spec.features
        ]
        views.append(
            FeatureView(
                name=spec.name,
                entities=[spec.entity],
                ttl=BATCH_TTL,
                schema=schema,
                source=source,
                online=True,
                description=spec.description,
                tags={"domain": "batch", "gold_table": spec.gold_table},
            )
        )
    return views


def gold_snapshot(spec: BatchView, gold: pa.Table, as_of: datetime) -> pa.Table:
    """One snapshot of a gold table: one row per key with the view's features, at ``as_of``.

    LakeError if a feature has none of its source columns, a key is null, or a key repeats
    without ``split_by`` to tell its rows apart (Feast would pick one of them at random).
    """
    key = spec.join_key
    if key not in gold.column_names:
        raise LakeError(f"{spec.gold_table} has no {key} column: {gold.column_names}")
    keys = gold.column(key).cast(pa.string())
    if keys.null_count:
        raise LakeError(f"{spec.gold_table} has {keys.null_count} rows without {key}")
    columns: dict[str, Column] = {key: keys}
    # Derivations see gold's columns and, by the view's names, the features resolved so far.
    available: dict[str, Column] = {name: gold.column(name) for name in gold.column_names}
    for feature in spec.features:
        column = _feature_column(feature, available, as_of)
        if column is None:
            tried = [s if isinstance(s, str) else s.__name__ for s in feature.sources]
            raise LakeError(
                f"{spec.gold_table} has no column for feature {spec.name}.{feature.name} "
                f"(tried {', '.join(tried)}; columns: {', '.join(gold.column_names)})"
            )
        columns[feature.name] = available[feature.name] = column.cast(_ARROW_TYPES[feature.dtype])
    table = pa.table(columns)
    if pc.count_distinct(keys).as_py() != len(keys):
        table = _fold(spec, table, gold)
    stamps = pa.array([as_of.astimezone(UTC)] * table.num_rows, pa.timestamp("us", tz="UTC"))
    return table.append_column(TIMESTAMP_FIELD, stamps)


def _fold(spec: BatchView, table: pa.Table, gold: pa.Table) -> pa.Table:
    """One row per key out of one row per key and ``split_by`` value (see BatchView)."""
    key, split = spec.join_key, "__split"
    if spec.split_by is None or spec.split_by not in gold.column_names:
        raise LakeError(f"{spec.gold_table} repeats {key} values: one row per key expected")
    table = table.append_column(split, gold.column(spec.split_by).cast(pa.string()))
    if table.group_by([key, split]).aggregate([]).num_rows != table.num_rows:
        raise LakeError(f"{spec.gold_table} repeats ({key}, {spec.split_by}) pairs")
    # Primary row first in each key's group: "first" then takes its values (ordered grouping).
    ordered = table.sort_by(
        [(key, "ascending"), (spec.rank_by, "descending"), (split, "ascending")]
    )
    folded = ordered.group_by(key, use_threads=False).aggregate(
        [(f.name, _AGGREGATIONS[f.across]) for f in spec.features]
    )
    names = [f"{f.name}_{_AGGREGATIONS[f.across]}" for f in spec.features]
    return folded.select([key, *names]).rename_columns([key, *(f.name for f in spec.features)])


def _feature_column(
    feature: BatchFeature, available: Mapping[str, Column], as_of: datetime
) -> Column | None:
    """The first of a feature's sources the gold table can give."""
    for source in feature.sources:
        if isinstance(source, str):
            if source in available:
                return available[source]
        else:
            derived = source(available, as_of)
            if derived is not None:
                return derived
    return None


def snapshot_gold(
    settings: Settings,
    as_of: datetime,
    views: Mapping[str, BatchView] | None = None,
    *,
    store: TableStore | None = None,
) -> JobResult:
    """Append each gold table's rows, one per key, stamped ``as_of``, to ``features/<view>``.

    Returns the gold rows read and the rows written per snapshot table. A gold table that
    does not exist yet is skipped (logged); an empty one writes nothing. ``as_of`` must be
    timezone-aware.
    """
    if as_of.utcoffset() is None:
        raise ValueError(f"as_of must be timezone-aware: {as_of!r}")
    lake = store if store is not None else table_store(settings)
    read = 0
    written: dict[str, int] = {}
    for spec in (views if views is not None else BATCH_VIEWS).values():
        if not lake.exists(spec.gold_table):
            logger.warning("no %s yet: %s not snapshotted", spec.gold_table, spec.name)
            continue
        gold = lake.read(spec.gold_table)
        read += gold.num_rows
        snapshot = gold_snapshot(spec, gold, as_of)
        if snapshot.num_rows:
            lake.append(snapshot_table(spec.name), snapshot)
        written[snapshot_table(spec.name)] = snapshot.num_rows
    return JobResult(name="snapshot_gold", rows_in=read, rows_out=written)


def historical_features(
    store: FeatureStore, entity_df: pd.DataFrame, features: Sequence[str]
) -> pd.DataFrame:
    """Feast's point-in-time join, made total: ``entity_df`` with one column per feature.

    ``entity_df`` holds the join keys and ``event_timestamp`` (aware); ``features`` are
    ``view:feature`` references, added as ``<view>__<feature>``: each row's latest value
    stamped at or before its time and within the view's ttl, null where there is none. Rows
    and their order are kept. Feast 0.67's file store drops the rows of a known key that have
    no such value, fails on unknown keys once a source has several files, and merges rows of
    one key and time; so each view is asked only for the distinct (key, time) pairs of keys
    its source holds, and the answers are joined back.
    """
    frame = entity_df.reset_index(drop=True).copy()
    frame[TIMESTAMP_FIELD] = _utc_ns(frame[TIMESTAMP_FIELD])
    by_view: dict[str, list[str]] = {}
    for ref in features:
        view, sep, feature = ref.partition(":")
        if not sep or not view or not feature:
            raise ValueError(f"feature references are view:feature, not {ref!r}")
        by_view.setdefault(view, []).append(feature)
    for view, names in by_view.items():
        feature_view = store.get_feature_view(view)
        keys = list(feature_view.join_keys)
        columns = [f"{view}__{name}" for name in names]
        missing = [key for key in keys if key not in frame.columns]
        if missing:
            raise ValueError(f"{view} needs entity columns {', '.join(missing)}")
        pairs = frame[[*keys, TIMESTAMP_FIELD]].drop_duplicates()
        ask = pairs.merge(source_keys(store, feature_view), on=keys)
        if ask.empty:
            found = pd.DataFrame(columns=[*keys, TIMESTAMP_FIELD, *columns])
            found[TIMESTAMP_FIELD] = _utc_ns(found[TIMESTAMP_FIELD])
        else:
            found = store.get_historical_features(
                entity_df=ask,
                features=[f"{view}:{name}" for name in names],
                full_feature_names=True,
            ).to_df()[[*keys, TIMESTAMP_FIELD, *columns]]
            found[TIMESTAMP_FIELD] = _utc_ns(found[TIMESTAMP_FIELD])
        frame = frame.merge(found, on=[*keys, TIMESTAMP_FIELD], how="left")
    return frame


def source_keys(store: FeatureStore, view: FeatureView) -> pd.DataFrame:
    """The distinct join keys in a view's offline source (as Feast reads it: its parquet files)."""
    keys = list(view.join_keys)
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise ValueError(f"{view.name}: only file sources are supported, not {type(source)}")
    path = FileSource.get_uri_for_file_path(store.config.repo_path, source.path)
    if "://" not in path and not Path(path).exists():
        return pd.DataFrame(columns=keys)
    # Like Dask's read: every parquet file, the _delta_log and hidden files left out.
    table = ds.dataset(path, format="parquet").to_table(columns=keys)
    return table.group_by(keys).aggregate([]).to_pandas()


def _utc_ns(column: pd.Series) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]``: Feast hands back other units than it was given."""
    return pd.to_datetime(column, utc=True).astype("datetime64[ns, UTC]")
