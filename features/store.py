"""Souk's Feast store: its ``RepoConfig`` built from the settings, apply, push and read.

No ``feature_store.yaml``: the configuration is built here from Souk's settings, so the code
path is the same for the embedded Valkey and a real Redis. The repository folder is
``SOUK_HOME/features``: the registry is ``registry.db`` there and the offline store is parquet
files under ``offline/`` (the ``FileSource`` paths of ``features.views`` are relative to it).

The helpers stay thin on purpose: the fraud job and the fraud service get Feast's own API
(``FeatureStore``, ``write_to_online_store``, ``get_online_features``) with Souk's names filled
in. Who calls what:

* the fraud job: ``store = feature_store(settings, redis_url)`` once, then
  ``push_signals(store, view, rows)`` per event;
* the fraud service: ``get_signals(settings, redis_url, entity_rows)``, which reads through
  one ``FeatureStore`` per (SOUK_HOME, Redis URL) kept for the life of the process
  (``cached_feature_store``); ``online_signals(store, entity_rows)`` is the same read on a
  store of your own;
* ``souk features apply`` (or :func:`apply`) registers the repository first.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import Entity, FeatureStore, FeatureView, Project, RepoConfig
from feast.data_format import DeltaFormat
from feast.data_source import DataSource, PushSource
from feast.diff.property_diff import TransitionType
from feast.infra.offline_stores.file_source import FileSource
from feast.repo_contents import RepoContents
from feast.types import FeastType, Float64, Int64, String

from features.entities import ENTITIES
from features.views import FRAUD_VIEWS, SIGNALS_TTL, TIMESTAMP_FIELD
from souk.settings import Settings

__all__ = [
    "PROJECT",
    "Change",
    "FeatureStoreError",
    "apply",
    "cached_feature_store",
    "feature_store",
    "get_signals",
    "online_signals",
    "push_signals",
    "redis_connection_string",
    "repo_config",
    "repo_contents",
    "repo_dir",
]

#: The Feast project of every Souk feature.
PROJECT = "souk"
#: Feast's current entity-key serialization in the online store (pinned: changing it makes
#: every stored key unreadable).
ENTITY_KEY_SERIALIZATION_VERSION = 3

_ARROW_TYPES: dict[FeastType, pa.DataType] = {
    String: pa.string(),
    Int64: pa.int64(),
    Float64: pa.float64(),
}
_PANDAS_DTYPES: dict[FeastType, str] = {String: "object", Int64: "int64", Float64: "float64"}


class FeatureStoreError(ValueError):
    """A request the feature repository cannot serve (unknown view or key, bad rows)."""


# --- configuration ------------------------------------------------------------------------


def redis_connection_string(url: str, *, timeout_s: float | None = None) -> str:
    """Feast's Redis connection string (``host:port,db=N[,password=…]``) of a ``redis://`` URL.

    ``rediss://`` adds ``ssl=true``; ``timeout_s`` sets the socket and connect timeouts.
    Feast JSON-decodes each value, so a password that would decode to something else (``123``,
    ``true``) or that holds a comma is written as a JSON string.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// or rediss:// URL: {parts.scheme or url!r}")
    host = parts.hostname
    if not host:
        raise ValueError("the Redis URL names no host")
    if ":" in host:
        raise ValueError("Feast's Redis connection string cannot hold an IPv6 address")
    try:
        port = parts.port or 6379
    except ValueError as exc:
        raise ValueError(f"bad port in the Redis URL: {exc}") from None
    query = dict(parse_qsl(parts.query))
    db_text = parts.path.lstrip("/") or query.pop("db", "0")
    query.pop("db", None)
    if query:
        raise ValueError(f"unsupported Redis URL parameters: {', '.join(sorted(query))}")
    if not db_text.isdigit():
        raise ValueError(f"the Redis database must be a number, not {db_text!r}")
    fields = [f"{host}:{port}", f"db={int(db_text)}"]
    if parts.username:
        fields.append(f"username={_connection_value(unquote(parts.username))}")
    if parts.password is not None:
        fields.append(f"password={_connection_value(unquote(parts.password))}")
    if parts.scheme == "rediss":
        fields.append("ssl=true")
    if timeout_s is not None:
        fields += [f"socket_timeout={timeout_s}", f"socket_connect_timeout={timeout_s}"]
    return ",".join(fields)


def _connection_value(text: str) -> str:
    """``text`` as Feast's connection-string parser gives it back (it JSON-decodes values)."""
    try:
        json.loads(text)
    except ValueError:
        if "," not in text:
            return text  # decodes to nothing else: left as it is
    # A JSON string; commas escaped too (the parser splits on them before decoding).
    return json.dumps(text).replace(",", "\\u002c")


def repo_dir(settings: Settings) -> Path:
    """The repository folder: ``SOUK_HOME/features`` (registry, offline parquet files)."""
    return settings.state_dir / "features"


def repo_config(settings: Settings, redis_url: str) -> RepoConfig:
    """The Feast configuration: online store Redis at ``redis_url``, files under SOUK_HOME."""
    home = repo_dir(settings)
    return RepoConfig(
        project=PROJECT,
        provider="local",
        registry={"registry_type": "file", "path": str(home / "registry.db")},
        online_store={
            "type": "redis",
            "connection_string": redis_connection_string(
                redis_url, timeout_s=settings.redis_timeout_s
            ),
            # Feast 0.67 does not check a view's TTL on online reads: the key's own TTL is
            # what stops a value being served (and every IP or device ever seen piling up in
            # the Valkey the carts share) once nothing was pushed for it for SIGNALS_TTL.
            "key_ttl_seconds": int(SIGNALS_TTL.total_seconds()),
        },
        offline_store={"type": "file"},
        entity_key_serialization_version=ENTITY_KEY_SERIALIZATION_VERSION,
        repo_path=home,
    )


def feature_store(settings: Settings, redis_url: str) -> FeatureStore:
    """A new ``FeatureStore`` on :func:`repo_config` (creates the repository folder)."""
    config = repo_config(settings, redis_url)
    (repo_dir(settings) / "offline").mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=config, repo_path=str(repo_dir(settings)))


_stores: dict[tuple[Path, str], FeatureStore] = {}
_stores_lock = threading.Lock()


def cached_feature_store(settings: Settings, redis_url: str) -> FeatureStore:
    """The process's ``FeatureStore`` for (SOUK_HOME, ``redis_url``), built on first use.

    It keeps its registry cache (re-read when ``registry.db`` changes) and Redis connection
    pool, so repeated reads pay neither again. Thread-safe.
    """
    key = (repo_dir(settings), redis_url)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = feature_store(settings, redis_url)
        return store


# --- registration -------------------------------------------------------------------------


def repo_contents(settings: Settings | None = None) -> RepoContents:
    """Every object of the repository (fresh copies: Feast's apply mutates what it gets).

    With ``settings``, the batch views of ``features.batch`` too: their sources are in the
    lake, whose place only the settings know.
    """
    entities: list[Entity] = copy.deepcopy(list(ENTITIES))
    views: list[FeatureView] = copy.deepcopy(list(FRAUD_VIEWS.values()))
    sources: list[DataSource] = []
    for view in views:
        push = view.stream_source
        if isinstance(push, PushSource) and push.batch_source is not None:
            sources += [push, push.batch_source]
    if settings is not None:
        from features.batch import batch_views  # the lake's modules, only when asked for

        for view in batch_views(settings):
            views.append(view)
            if view.batch_source is not None:
                sources.append(view.batch_source)
    return RepoContents(
        projects=[Project(name=PROJECT)],
        data_sources=sources,
        feature_views=views,
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=entities,
        feature_services=[],
        permissions=[],
    )


class Change(NamedTuple):
    """One registry change of :func:`apply`, e.g. ``("feature view", "ip_signals", "created")``."""

    kind: str
    name: str
    action: str  # "created" or "updated"


_ACTIONS = {TransitionType.CREATE: "created", TransitionType.UPDATE: "updated"}


def apply(store: FeatureStore, settings: Settings | None = None) -> list[Change]:
    """Register every object of the repository; return what changed (empty: already applied).

    Objects are only added or updated, never deleted; ``settings`` adds the batch views (see
    :func:`repo_contents`). Each offline parquet file is created empty (with its view's
    columns) if missing, so offline pushes and reads work from the start.
    """
    contents = repo_contents(settings)
    registry_diff, _, _ = store.plan(contents)
    changes = sorted(
        Change(diff.feast_object_type.value, diff.name, _ACTIONS[diff.transition_type])
        for diff in registry_diff.feast_object_diffs
        if diff.transition_type in _ACTIONS
    )
    if changes:
        store.apply(
            [
                *contents.projects,
                *contents.entities,
                *contents.data_sources,
                *contents.feature_views,
            ]
        )
    for view in contents.feature_views:
        _create_offline_file(store, view)
    return changes


def _create_offline_file(store: FeatureStore, view: FeatureView) -> None:
    """An empty parquet file with the view's columns at its batch source, unless it exists."""
    source = view.batch_source
    if not isinstance(source, FileSource) or store.config.repo_path is None:
        return
    if isinstance(source.file_format, DeltaFormat):
        return  # a lake table, written by its snapshots (features.batch)
    path = Path(FileSource.get_uri_for_file_path(store.config.repo_path, source.path))
    if path.exists():
        return
    columns = [*view.entity_columns, *view.features]
    schema = pa.schema(
        [pa.field(field.name, _ARROW_TYPES[field.dtype]) for field in columns]
        + [pa.field(TIMESTAMP_FIELD, pa.timestamp("us", tz="UTC"))]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(schema.empty_table(), path)


# --- online push and read -----------------------------------------------------------------


def _registered(store: FeatureStore) -> dict[str, FeatureView]:
    """The registered feature views by name, from the registry cache (re-read on change)."""
    return {fv.name: fv for fv in store.list_feature_views(allow_cache=True)}


def _view(store: FeatureStore, view: str) -> FeatureView:
    """The registered feature view ``view``, or FeatureStoreError naming the known ones."""
    views = _registered(store)
    if view not in views:
        known = ", ".join(sorted(views)) or "none: run `souk features apply`"
        raise FeatureStoreError(f"unknown feature view {view!r} (known: {known})")
    return views[view]


def push_signals(store: FeatureStore, view: str, rows: list[dict[str, Any]]) -> None:
    """Write rows to the view's online store (what pushing to ``<view>_push`` online does).

    Each row holds the view's entity key, every feature of the view and ``event_timestamp``
    (an aware datetime). Values are cast to the view's types (an ``int`` mean becomes float);
    a row older than the stored one for its key is skipped (Feast's rule). Feast's own
    ``FeatureStore.push`` is not used: in 0.67 it re-reads ``registry.db`` on every call (for
    feature-service precomputation, which Souk has none of), doubling the latency of a push.
    """
    if not rows:
        return
    feature_view = _view(store, view)
    columns = [*feature_view.entity_columns, *feature_view.features]
    expected = {field.name for field in columns} | {TIMESTAMP_FIELD}
    for row in rows:
        missing = expected - row.keys()
        if missing:
            raise FeatureStoreError(f"{view} row lacks {', '.join(sorted(missing))}")
        stamp = row[TIMESTAMP_FIELD]
        if not isinstance(stamp, datetime) or stamp.utcoffset() is None:
            raise FeatureStoreError(f"{TIMESTAMP_FIELD} must be an aware datetime: {stamp!r}")
    data: dict[str, Any] = {}
    for field in columns:
        values = [row[field.name] for row in rows]
        if field.dtype == String and not all(isinstance(value, str) for value in values):
            raise FeatureStoreError(f"{view}.{field.name} must be a string: {values!r}")
        try:
            data[field.name] = pd.Series(values, dtype=_PANDAS_DTYPES[field.dtype])
        except (TypeError, ValueError) as exc:
            raise FeatureStoreError(f"{view}.{field.name}: {values!r} ({exc})") from None
    data[TIMESTAMP_FIELD] = pd.to_datetime([row[TIMESTAMP_FIELD] for row in rows], utc=True)
    store.write_to_online_store(view, pd.DataFrame(data), allow_registry_cache=True)


def online_signals(
    store: FeatureStore, entity_rows: list[dict[str, Any]], view: str | None = None
) -> dict[str, list[Any]]:
    """The online values of one view's features, or of every fraud view the rows have keys for.

    Feast's ``get_online_features(...).to_dict()``: the entity columns, then one list per
    feature (``None`` where nothing is stored). With ``view`` the features keep their names
    (``orders_1h``); without it they are ``<view>__<feature>``, since views share names.
    """
    if not entity_rows:
        raise FeatureStoreError("no entity rows to read")
    keys = set(entity_rows[0])
    if any(set(row) != keys for row in entity_rows):
        raise FeatureStoreError("every entity row must name the same keys")
    views = [_view(store, view)] if view is not None else views_for_keys(store, keys)
    if not views:
        registered = _registered(store)
        if not registered:
            raise FeatureStoreError("no feature view is registered: run `souk features apply`")
        known = sorted({key for fv in registered.values() for key in fv.join_keys})
        raise FeatureStoreError(
            f"no fraud feature view is keyed by {', '.join(sorted(keys))} "
            f"(keys: {', '.join(known)})"
        )
    for feature_view in views:
        missing = set(feature_view.join_keys) - keys
        if missing:
            raise FeatureStoreError(f"{feature_view.name} needs {', '.join(sorted(missing))}")
    references = [f"{fv.name}:{field.name}" for fv in views for field in fv.features]
    full_names = view is None
    response = store.get_online_features(
        features=references, entity_rows=entity_rows, full_feature_names=full_names
    ).to_dict()
    # Entity columns first, then the features in declaration order (Feast's order is not).
    names = [name for name in entity_rows[0] if name in response]
    names += [ref.replace(":", "__") if full_names else ref.split(":")[1] for ref in references]
    return {name: response[name] for name in names}


def get_signals(
    settings: Settings,
    redis_url: str,
    entity_rows: list[dict[str, Any]],
    view: str | None = None,
) -> dict[str, list[Any]]:
    """What the fraud service calls: :func:`online_signals` on :func:`cached_feature_store`.

    ``get_signals(settings, url, [{"customer_id": "cus_1", "device_id": "dev_9"}])`` gives
    ``{"customer_id": [...], "device_id": [...], "customer_fraud_signals__orders_1h": [...],
    …}``: one list entry per entity row, ``None`` where nothing was pushed within SIGNALS_TTL.
    """
    return online_signals(cached_feature_store(settings, redis_url), entity_rows, view)


def views_for_keys(store: FeatureStore, keys: Sequence[str] | set[str]) -> list[FeatureView]:
    """The registered fraud views whose join keys are all among ``keys`` (declaration order)."""
    registered = _registered(store)
    return [
        registered[name]
        for name in FRAUD_VIEWS
        if name in registered and set(registered[name].join_keys) <= set(keys)
    ]
