"""The Feast feature repository on the stack's real Redis: apply, push, read back, the CLI.

Everything runs in its own Redis database (FEATURES_DB) with fresh entity ids, and in its own
SOUK_HOME folders under the test home, so a rerun or a parallel worker never sees stale values.
Feast is slow to import and to set up: one FeatureStore serves the whole module.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow.parquet as pq
import pytest
import redis
from feast import FeatureStore
from rich.console import Console
from typer.testing import CliRunner

from features import store as feature_repo
from features.store import (
    Change,
    FeatureStoreError,
    apply,
    cached_feature_store,
    feature_store,
    get_signals,
    online_signals,
    push_signals,
    repo_dir,
)
from features.views import FRAUD_VIEWS, SIGNALS_TTL
from souk import features_cli
from souk.cli import app as souk_app
from souk.settings import Settings
from souk.stack.endpoints import Endpoints

pytestmark = pytest.mark.integration

FEATURES_DB = 11  # the other tests use the URL's database (0)

KEYS = {
    "customer_fraud_signals": "customer_id",
    "instrument_fraud_signals": "instrument_id",
    "device_fraud_signals": "device_id",
    "ip_fraud_signals": "client_ip",
}
# One row of each view, every value distinct; amount_mean_minor is pushed as an int.
VALUES: dict[str, dict[str, Any]] = {
    "customer_fraud_signals": {
        "orders_1m": 2,
        "orders_1h": 5,
        "orders_24h": 11,
        "amount_mean_minor": 5250,
        "amount_std_minor": 812.5,
        "amount_zscore": -1.25,
        "ship_region_mismatch": 1,
        "ip_region_mismatch": 0,
        "max_line_quantity": 12,
        "new_account_high_value": 1,
        "account_age_s": 5400,
    },
    "instrument_fraud_signals": {"orders_1h": 3, "orders_24h": 8, "distinct_customers_24h": 4},
    "device_fraud_signals": {
        "orders_1h": 6,
        "orders_24h": 13,
        "distinct_instruments_24h": 7,
        "distinct_customers_24h": 9,
    },
    "ip_fraud_signals": {"orders_1h": 14, "orders_24h": 21, "distinct_customers_24h": 17},
}
FLOATS = {"amount_mean_minor", "amount_std_minor", "amount_zscore"}


def expected(view: str) -> dict[str, Any]:
    """The values read back: the pushed ones, floats as floats."""
    return {k: float(v) if k in FLOATS else v for k, v in VALUES[view].items()}


def new_id(view: str) -> str:
    """A fresh entity id for ``view`` (no earlier run or worker has written it)."""
    if view == "ip_fraud_signals":
        return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
    return f"{KEYS[view].split('_')[0][:3]}_{secrets.token_hex(6)}"


def row(view: str, entity_id: str, at: datetime, **changes: Any) -> dict[str, Any]:
    return {KEYS[view]: entity_id, **VALUES[view], **changes, "event_timestamp": at}


@pytest.fixture(scope="module")
def redis_url(endpoints: Endpoints) -> str:
    """The stack's Redis, database FEATURES_DB."""
    parts = urlsplit(endpoints.redis_url)
    return urlunsplit(parts._replace(path=f"/{FEATURES_DB}"))


@pytest.fixture(scope="module")
def settings(souk_settings: Settings) -> Settings:
    """The test settings with SOUK_HOME in a folder of its own."""
    return souk_settings.model_copy(update={"home": souk_settings.state_dir / "features-api"})


@pytest.fixture(scope="module")
def applied(settings: Settings, redis_url: str) -> tuple[FeatureStore, list[Change]]:
    """The module's one FeatureStore, applied once, and what that first apply changed."""
    store = feature_store(settings, redis_url)
    return store, apply(store)


@pytest.fixture
def store(applied: tuple[FeatureStore, list[Change]]) -> FeatureStore:
    return applied[0]


def test_first_apply_creates_everything_and_the_offline_files(
    applied: tuple[FeatureStore, list[Change]], settings: Settings
) -> None:
    store, changes = applied
    assert len(changes) == len(set(changes))
    assert Change("project", "souk", "created") in changes
    for name in ("customer", "payment_instrument", "device", "ip", "product", "seller"):
        assert Change("entity", name, "created") in changes
    for view in KEYS:
        assert Change("feature view", view, "created") in changes
        assert Change("data source", f"{view}_push", "created") in changes
        assert Change("data source", f"{view}_offline", "created") in changes
    assert len(changes) == 1 + 6 + 3 * 4
    registered = {fv.name: fv for fv in store.list_feature_views()}
    assert set(registered) == set(KEYS)
    for view, join_key in KEYS.items():
        assert registered[view].join_keys == [join_key]
        assert [f.name for f in registered[view].features] == list(VALUES[view])
        assert list(VALUES[view]) == [f.name for f in FRAUD_VIEWS[view].features]
        offline = repo_dir(settings) / "offline" / f"{view}.parquet"
        schema = pq.read_schema(offline)
        assert schema.names == [join_key, *VALUES[view], "event_timestamp"]
    assert (repo_dir(settings) / "registry.db").is_file()


def test_apply_again_changes_nothing(store: FeatureStore, settings: Settings) -> None:
    assert apply(store) == []
    assert {fv.name for fv in store.list_feature_views()} == set(KEYS)


@pytest.mark.parametrize("view", list(KEYS))
def test_pushed_signals_read_back_exactly(store: FeatureStore, view: str) -> None:
    entity_id = new_id(view)
    push_signals(store, view, [row(view, entity_id, datetime.now(UTC))])

    references = [f"{view}:{feature}" for feature in VALUES[view]]
    feast_read = store.get_online_features(
        features=references, entity_rows=[{KEYS[view]: entity_id}]
    ).to_dict()
    assert feast_read == {KEYS[view]: [entity_id]} | {k: [v] for k, v in expected(view).items()}
    for feature in FLOATS & set(VALUES[view]):
        assert type(feast_read[feature][0]) is float

    ours = online_signals(store, [{KEYS[view]: entity_id}])
    assert ours == {KEYS[view]: [entity_id]} | {
        f"{view}__{k}": [v] for k, v in expected(view).items()
    }
    assert list(ours)[1:] == [f"{view}__{k}" for k in VALUES[view]]  # declaration order
    one_view = online_signals(store, [{KEYS[view]: entity_id}], view=view)
    assert one_view == {KEYS[view]: [entity_id]} | {k: [v] for k, v in expected(view).items()}


def test_one_read_covers_every_view_the_keys_select(store: FeatureStore) -> None:
    now = datetime.now(UTC)
    ids = {view: new_id(view) for view in KEYS}
    for view, entity_id in ids.items():
        push_signals(store, view, [row(view, entity_id, now)])
    unknown = {KEYS[view]: new_id(view) for view in KEYS}
    result = online_signals(store, [{KEYS[v]: i for v, i in ids.items()}, unknown])
    for view in KEYS:
        assert result[KEYS[view]] == [ids[view], unknown[KEYS[view]]]
        for feature, value in expected(view).items():
            assert result[f"{view}__{feature}"] == [value, None]
    # Only the views whose keys are given.
    device_only = online_signals(store, [{"device_id": ids["device_fraud_signals"]}])
    assert set(device_only) == {"device_id"} | {
        f"device_fraud_signals__{f}" for f in VALUES["device_fraud_signals"]
    }


def test_several_rows_in_one_push_and_older_events_never_win(store: FeatureStore) -> None:
    view = "ip_fraud_signals"
    first, second = new_id(view), new_id(view)
    now = datetime.now(UTC)
    push_signals(
        store,
        view,
        [row(view, first, now, orders_1h=1), row(view, second, now, orders_1h=2)],
    )
    push_signals(store, view, [row(view, first, now - timedelta(seconds=5), orders_1h=99)])
    push_signals(store, view, [row(view, second, now + timedelta(seconds=1), orders_1h=3)])
    read = online_signals(store, [{"client_ip": first}, {"client_ip": second}], view=view)
    assert read["orders_1h"] == [1, 3]


def test_redis_keys_expire_with_the_view_ttl(store: FeatureStore, redis_url: str) -> None:
    view = "customer_fraud_signals"
    entity_id = new_id(view)
    push_signals(store, view, [row(view, entity_id, datetime.now(UTC))])
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{entity_id}*"))
        assert len(keys) == 1
        assert 0 < client.ttl(keys[0]) <= SIGNALS_TTL.total_seconds()
        other_db = redis.Redis.from_url(urlunsplit(urlsplit(redis_url)._replace(path="/0")))
        assert not list(other_db.scan_iter(match=f"*{entity_id}*"))  # isolated database
        other_db.close()
    finally:
        client.close()


def test_get_signals_reads_through_one_cached_store(settings: Settings, redis_url: str) -> None:
    view = "instrument_fraud_signals"
    entity_id = new_id(view)
    cached = cached_feature_store(settings, redis_url)
    assert cached_feature_store(settings, redis_url) is cached
    push_signals(cached, view, [row(view, entity_id, datetime.now(UTC))])
    signals = get_signals(settings, redis_url, [{"instrument_id": entity_id}])
    assert signals == {"instrument_id": [entity_id]} | {
        f"{view}__{k}": [v] for k, v in expected(view).items()
    }
    assert get_signals(settings, redis_url, [{"instrument_id": entity_id}], view=view) == {
        "instrument_id": [entity_id]
    } | {k: [v] for k, v in expected(view).items()}
    assert feature_repo._stores[(repo_dir(settings), redis_url)] is cached


def test_unknown_view_and_bad_rows_are_feature_store_errors(store: FeatureStore) -> None:
    now = datetime.now(UTC)
    good = row("customer_fraud_signals", new_id("customer_fraud_signals"), now)
    with pytest.raises(FeatureStoreError, match=r"unknown feature view 'nope'.*ip_fraud_signals"):
        push_signals(store, "nope", [good])
    with pytest.raises(FeatureStoreError, match="unknown feature view 'nope'"):
        online_signals(store, [{"customer_id": "cus_1"}], view="nope")
    lacking = {k: v for k, v in good.items() if k != "orders_1h"}
    with pytest.raises(FeatureStoreError, match="lacks orders_1h"):
        push_signals(store, "customer_fraud_signals", [lacking])
    naive = {**good, "event_timestamp": now.replace(tzinfo=None)}
    with pytest.raises(FeatureStoreError, match="aware datetime"):
        push_signals(store, "customer_fraud_signals", [naive])
    with pytest.raises(FeatureStoreError, match="orders_1h"):
        push_signals(store, "customer_fraud_signals", [{**good, "orders_1h": "many"}])
    with pytest.raises(FeatureStoreError, match="customer_id must be a string"):
        push_signals(store, "customer_fraud_signals", [{**good, "customer_id": 7}])
    with pytest.raises(FeatureStoreError, match="keyed by order_id"):
        online_signals(store, [{"order_id": "ord_1"}])
    with pytest.raises(FeatureStoreError, match="same keys"):
        online_signals(store, [{"customer_id": "a"}, {"device_id": "b"}])
    with pytest.raises(FeatureStoreError, match="no entity rows"):
        online_signals(store, [])


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(
    souk_settings: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """`souk features …` on a fresh SOUK_HOME and the test Redis (SOUK_REDIS_URL)."""
    settings = souk_settings.model_copy(
        update={
            "home": souk_settings.state_dir / f"features-cli-{secrets.token_hex(3)}",
            "redis_url": redis_url,
        }
    )
    monkeypatch.setattr(features_cli, "get_settings", lambda: settings)
    monkeypatch.setattr(features_cli, "console", Console(width=200))
    yield settings


def souk(*args: str) -> Any:
    return CliRunner().invoke(souk_app, ["features", *args])


def test_cli_apply_list_get(cli: Settings, store: FeatureStore) -> None:
    first = souk("apply")
    assert first.exit_code == 0, first.output
    assert "applied 25 changes" in first.output  # 19 fraud + 6 batch (views, sources)
    for view in KEYS:
        assert f"│ feature view │ {view}" in first.output
    assert (repo_dir(cli) / "registry.db").is_file()
    again = souk("apply")
    assert again.exit_code == 0, again.output
    assert "up to date: nothing to apply" in again.output

    listed = souk("list")
    assert listed.exit_code == 0, listed.output
    assert "│ payment_instrument │ instrument_id" in listed.output
    for view, join_key in KEYS.items():
        assert f"│ {view}" in listed.output and join_key in listed.output
    assert "distinct_instruments_24h: Int64" in listed.output
    assert "amount_zscore: Float64" in listed.output and "│  2d │" in listed.output

    customer, device = new_id("customer_fraud_signals"), new_id("device_fraud_signals")
    now = datetime.now(UTC)
    push_signals(store, "customer_fraud_signals", [row("customer_fraud_signals", customer, now)])
    push_signals(store, "device_fraud_signals", [row("device_fraud_signals", device, now)])

    as_json = souk("get", f"customer_id={customer}", f"device_id={device}", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output) == {"customer_id": customer, "device_id": device} | {
        f"{view}__{k}": v
        for view in ("customer_fraud_signals", "device_fraud_signals")
        for k, v in expected(view).items()
    }

    table = souk("get", f"customer_id={customer}", "client_ip=192.0.2.1")
    assert table.exit_code == 0, table.output
    assert "│ customer_fraud_signals │ amount_std_minor" in table.output
    assert "812.5" in table.output and "5250.0" in table.output
    assert "│ ip_fraud_signals       │ orders_24h" in table.output
    assert "3 features have no value stored" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["get", "customer_id"], "expected KEY=VALUE"),
        (["get", "customer_id=a", "customer_id=b"], "customer_id given twice"),
        (["get", "order_id=ord_1"], "no feature view is registered: run `souk features apply`"),
    ],
)
def test_cli_bad_input_is_a_one_line_error(cli: Settings, args: list[str], message: str) -> None:
    result = souk(*args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and message in lines[0]


def test_cli_get_against_a_dead_redis_is_a_one_line_error(
    cli: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = cli.model_copy(update={"redis_url": "redis://:hunter2@127.0.0.1:9/0"})
    monkeypatch.setattr(features_cli, "get_settings", lambda: dead)
    assert souk("apply").exit_code == 0  # registering needs no Redis
    result = souk("get", "customer_id=cus_1")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "cannot read the online store at redis://:***@127.0.0.1:9/0" in lines[0]
    assert "hunter2" not in result.output
