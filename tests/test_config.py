"""Settings refuse values the server cannot run with, naming the setting."""

import socket

import pytest

from hubbub.config import ConfigError, Settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sqlite_synchronous", "off"),
        ("sqlite_synchronous", "FULL"),
        ("store", "redis"),
        ("store", "mysql://root@127.0.0.1/hubbub"),
    ],
)
def test_a_value_outside_the_choices_is_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(**{name: value})  # type: ignore[arg-type]
    assert refused.value.setting == name


@pytest.mark.parametrize(
    "store",
    ["sqlite", "memory", "postgresql://hubbub@db.internal:5432/chat", "postgres://u:p@h/d"],
)
def test_the_stores_that_exist_are_accepted(store: str) -> None:
    assert Settings(store=store).store == store


CLUSTER = {"redis_url": "redis://127.0.0.1:6379/0", "store": "postgresql://u@h:5432/d"}


def test_workers_that_can_share_the_port_and_the_store_are_accepted() -> None:
    assert Settings(workers=4, **CLUSTER).workers == 4  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"workers": 0}, "must be at least 1"),
        ({"workers": 2, "redis_url": ""}, "2 workers need --redis-url"),
        ({"workers": 2, "store": "sqlite"}, "2 workers cannot share --store sqlite"),
        ({"workers": 2, "store": "memory"}, "2 workers cannot share --store memory"),
        ({"workers": 2, "port": 0}, "2 workers cannot use --port 0"),
    ],
    ids=["zero", "no-redis", "sqlite", "memory", "port-0"],
)
def test_workers_without_what_they_need_are_refused_saying_why(
    overrides: dict[str, object], reason: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(**{**CLUSTER, **overrides})  # type: ignore[arg-type]
    assert refused.value.setting == "workers"
    assert reason in refused.value.rule


def test_workers_are_refused_where_the_platform_has_no_so_reuseport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    with pytest.raises(ConfigError) as refused:
        Settings(workers=2, **CLUSTER)  # type: ignore[arg-type]
    assert "SO_REUSEPORT" in refused.value.rule
    assert Settings(workers=1, **CLUSTER).workers == 1  # type: ignore[arg-type]


def test_an_empty_redis_prefix_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(redis_prefix=" ")
    assert refused.value.setting == "redis_prefix"


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_a_cluster_needs_a_store_its_nodes_share(store: str) -> None:
    with pytest.raises(ConfigError, match="needs a store the nodes share") as refused:
        Settings(redis_url="redis://127.0.0.1:6379/0", store=store)
    assert refused.value.setting == "redis_url"
    Settings(redis_url="redis://127.0.0.1:6379/0", store="postgresql://postgres@127.0.0.1/x")


def test_api_keys_are_validated_and_kept_out_of_the_repr() -> None:
    keys = ("first-key-0123456789", "second-key-0123456789")
    settings = Settings(api_key=keys)
    assert settings.api_key == keys
    assert not any(key[:10] in repr(settings) for key in keys)
    with pytest.raises(ConfigError) as refused:
        Settings(api_key=("first-key-0123456789", "short"))
    assert refused.value.setting == "api_key"


def test_a_room_takes_at_least_one_watcher() -> None:
    with pytest.raises(ConfigError, match="must be at least 1") as refused:
        Settings(max_room_watchers=0)
    assert refused.value.setting == "max_room_watchers"
