"""Settings refuse values the server cannot run with, naming the setting."""

import pytest

from hubbub.config import ConfigError, Settings


@pytest.mark.parametrize(
    ("name", "value"),
    [("sqlite_synchronous", "off"), ("sqlite_synchronous", "FULL"), ("store", "redis")],
)
def test_a_value_outside_the_choices_is_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings(**{name: value})  # type: ignore[arg-type]
    assert refused.value.setting == name
