"""The feature store's configuration: Redis URL → Feast connection string, RepoConfig, contents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from feast import FeatureView
from feast.data_source import PushSource
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.online_stores.redis import RedisOnlineStore

from features.store import PROJECT, redis_connection_string, repo_config, repo_contents
from features.views import FRAUD_VIEWS, SIGNALS_TTL
from souk.settings import Settings


def parsed(connection_string: str) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """What Feast's own parser makes of a connection string: (nodes, Redis kwargs)."""
    nodes, params = RedisOnlineStore._parse_connection_string(connection_string)
    return nodes, params


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/0", "127.0.0.1:6380,db=0"),
        ("redis://cache.internal", "cache.internal:6379,db=0"),
        ("redis://h:1/7", "h:1,db=7"),
        ("redis://h:1?db=4", "h:1,db=4"),
        ("redis://h:1/", "h:1,db=0"),
        ("rediss://h:6390/2", "h:6390,db=2,ssl=true"),
        ("redis://user:secret@h:1/0", "h:1,db=0,username=user,password=secret"),
        ("redis://:secret@h:1/0", "h:1,db=0,password=secret"),
    ],
)
def test_connection_string_of_a_url(url: str, expected: str) -> None:
    assert redis_connection_string(url) == expected


def test_timeouts_become_socket_and_connect_timeouts() -> None:
    text = redis_connection_string("redis://h:1/3", timeout_s=2.5)
    assert text == "h:1,db=3,socket_timeout=2.5,socket_connect_timeout=2.5"
    assert parsed(text) == (
        [{"host": "h", "port": "1"}],
        {"db": 3, "socket_timeout": 2.5, "socket_connect_timeout": 2.5},
    )


@pytest.mark.parametrize(
    "password",
    ["123", "true", "null", '"quoted"', "a,b", "a=b,c", "[1,2]", "p@ss:w/rd", "ünï", 'x"y', "-1"],
)
def test_feast_parses_back_the_exact_password(password: str) -> None:
    from urllib.parse import quote

    url = f"redis://{quote('us,er', safe='')}:{quote(password, safe='')}@h:6379/1"
    nodes, params = parsed(redis_connection_string(url))
    assert nodes == [{"host": "h", "port": "6379"}]
    assert params == {"db": 1, "username": "us,er", "password": password}


def test_ssl_parses_to_a_boolean() -> None:
    assert parsed(redis_connection_string("rediss://h:1/0"))[1] == {"db": 0, "ssl": True}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:1/0", "not a redis:// or rediss:// URL"),
        ("h:6379", "not a redis:// or rediss:// URL"),
        ("redis:///0", "names no host"),
        ("redis://[::1]:6379/0", "IPv6"),
        ("redis://h:99999/0", "bad port"),
        ("redis://h:1/zero", "must be a number"),
        ("redis://h:1/0/1", "must be a number"),
        ("redis://h:1/0?protocol=3", "unsupported Redis URL parameters: protocol"),
    ],
)
def test_urls_feast_cannot_take_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        redis_connection_string(url)


def test_repo_config_puts_everything_under_souk_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, _env_file=None, redis_timeout_s=1.5)  # type: ignore[call-arg]
    config = repo_config(settings, "redis://127.0.0.1:6380/4")
    assert config.project == PROJECT
    assert config.repo_path == tmp_path.resolve() / "features"
    assert config.registry.registry_type == "file"
    assert config.registry.path == str(tmp_path.resolve() / "features" / "registry.db")
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == (
        "127.0.0.1:6380,db=4,socket_timeout=1.5,socket_connect_timeout=1.5"
    )
    assert config.online_store.key_ttl_seconds == int(SIGNALS_TTL.total_seconds())
    assert config.offline_store.type == "file"
    assert config.entity_key_serialization_version == 3


def test_repo_config_refuses_a_bad_url(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="not a redis"):
        repo_config(settings, "postgresql://h/db")


KEYS = {
    "customer_fraud_signals": "customer_id",
    "instrument_fraud_signals": "instrument_id",
    "device_fraud_signals": "device_id",
    "ip_fraud_signals": "client_ip",
}


def test_repo_contents_holds_the_project_entities_views_and_their_sources() -> None:
    contents = repo_contents()
    assert [project.name for project in contents.projects] == [PROJECT]
    assert [entity.name for entity in contents.entities] == [
        "customer",
        "payment_instrument",
        "device",
        "ip",
        "product",
        "seller",
    ]
    views = {view.name: view for view in contents.feature_views}
    assert list(views) == list(KEYS)
    sources = {source.name: source for source in contents.data_sources}
    assert set(sources) == {f"{v}_push" for v in KEYS} | {f"{v}_offline" for v in KEYS}
    for name, join_key in KEYS.items():
        view = views[name]
        assert isinstance(view, FeatureView)
        assert view.ttl == SIGNALS_TTL and view.online
        assert view.join_keys == [join_key]
        assert [(c.name, str(c.dtype)) for c in view.entity_columns] == [(join_key, "String")]
        assert [field.name for field in view.features] == [
            field.name for field in FRAUD_VIEWS[name].features
        ]
        push = view.stream_source
        assert isinstance(push, PushSource) and push.name == f"{name}_push"
        assert sources[push.name] is push
        batch = push.batch_source
        assert isinstance(batch, FileSource)
        assert batch.path == f"offline/{name}.parquet"
        assert batch.timestamp_field == "event_timestamp"
        assert sources[f"{name}_offline"] is batch


def test_repo_contents_are_fresh_copies_each_time() -> None:
    first, second = repo_contents(), repo_contents()
    for view in first.feature_views:
        assert view is not FRAUD_VIEWS[view.name]
    assert {id(v) for v in first.feature_views}.isdisjoint(id(v) for v in second.feature_views)
    first.feature_views[0].features.clear()  # what Feast's apply may do to what it is given
    assert repo_contents().feature_views[0].features
    assert FRAUD_VIEWS["customer_fraud_signals"].features
