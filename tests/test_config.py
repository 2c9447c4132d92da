"""Settings refuse values the server cannot run with, naming the setting."""

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


def test_an_empty_redis_prefix_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(redis_prefix=" ")
    assert refused.value.setting == "redis_prefix"
