"""The feature jobs: snapshot the gold tables and load the batch views into the online store.

``materialize`` is the ``feature_materialize`` job (target ``features.jobs:materialize``,
hourly after gold). Each run appends one snapshot per gold table (``features.batch``), applies
the repository, then loads the views into Redis.

Feast's ``materialize_incremental`` starts a view's first run at now - ttl and every later run
at the previous run's end: a snapshot stamped before that start is silently skipped. So a view
never loaded before (or whose recorded end is after the new snapshot, a clock step) is loaded
with an explicit start at the snapshot's own time; the others go incrementally.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time

import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore

from features.batch import BATCH_TTL, BATCH_VIEWS, snapshot_gold, snapshot_table
from features.store import apply, feature_store
from features.views import TIMESTAMP_FIELD
from jobs.lake import TableStore, table_store
from jobs.result import JobResult
from souk.settings import Settings
from souk.stack.endpoints import resolve_url

__all__ = ["load_online", "materialize"]


def materialize(
    settings: Settings, *, full: bool = False, since: date | datetime | None = None
) -> JobResult:
    """Snapshot the gold tables, apply the repository and load the batch views into Redis.

    Default: each view from where its last load ended (its first load from the new snapshot).
    ``full``: every value still servable (snapshots of the last ``BATCH_TTL``), e.g. after a
    Redis flush. ``since`` (a date: midnight UTC): every snapshot from then on.
    """
    as_of = datetime.now(UTC)
    snapshot = snapshot_gold(settings, as_of)
    store = feature_store(settings, resolve_url(settings, "redis"))
    apply(store, settings)
    lake = table_store(settings)
    views = [name for name in BATCH_VIEWS if lake.exists(snapshot_table(name))]
    end = datetime.now(UTC)
    start: datetime | None = None
    if since is not None:
        start = _as_utc(since)
    elif full:
        start = end - BATCH_TTL
    loaded = load_online(store, views, as_of=as_of, end=end, start=start, lake=lake)
    rows_out = snapshot.rows_out | {f"online/{view}": count for view, count in loaded.items()}
    return JobResult(name="feature_materialize", rows_in=snapshot.rows_in, rows_out=rows_out)


def load_online(
    store: FeatureStore,
    views: Sequence[str],
    *,
    as_of: datetime,
    end: datetime,
    start: datetime | None = None,
    lake: TableStore | None = None,
) -> dict[str, int]:
    """Load batch ``views`` into the online store up to ``end``; return entities per view.

    With ``start``, every snapshot in [start, end]. Without, incrementally, except that a view
    with no earlier load, or one recorded past ``as_of``, starts at ``as_of`` (the snapshot
    just written) rather than at Feast's now - ttl. The counts (distinct keys with a snapshot
    in each view's window: what Feast writes) need ``lake``; without it they are -1.
    """
    if not views:
        return {}
    registered = {fv.name: fv for fv in store.list_feature_views(allow_cache=False)}
    missing = [view for view in views if view not in registered]
    if missing:
        raise ValueError(f"not registered (apply first): {', '.join(missing)}")
    windows: dict[str, datetime] = {}
    if start is not None:
        windows = dict.fromkeys(views, start)
        store.materialize(start_date=start, end_date=end, feature_views=list(views))
    else:
        fresh: list[str] = []
        incremental: list[str] = []
        for view in views:
            last = registered[view].most_recent_end_time
            if last is None or _as_utc(last) > as_of:
                fresh.append(view)
                windows[view] = as_of
            else:
                incremental.append(view)
                windows[view] = _as_utc(last)
        if fresh:
            store.materialize(start_date=as_of, end_date=end, feature_views=fresh)
        if incremental:
            store.materialize_incremental(end_date=end, feature_views=incremental)
    if lake is None:
        return dict.fromkeys(views, -1)
    return {view: _keys_between(lake, view, windows[view], end) for view in views}


def _keys_between(lake: TableStore, view: str, start: datetime, end: datetime) -> int:
    """Distinct keys of a view's snapshots stamped in [start, end] (Feast's window, inclusive)."""
    key = BATCH_VIEWS[view].join_key
    table = lake.read(snapshot_table(view), columns=[key, TIMESTAMP_FIELD])
    stamps = table.column(TIMESTAMP_FIELD)
    kind = pa.timestamp("us", tz="UTC")
    inside = pc.and_(
        pc.greater_equal(stamps, pa.scalar(start, kind)),
        pc.less_equal(stamps, pa.scalar(end, kind)),
    )
    keys = table.filter(inside).column(key)
    return int(pc.count_distinct(keys).as_py())


def _as_utc(moment: date | datetime) -> datetime:
    """An aware UTC datetime; a date is its midnight UTC, a naive datetime is taken as UTC."""
    if not isinstance(moment, datetime):
        return datetime.combine(moment, time(), tzinfo=UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
