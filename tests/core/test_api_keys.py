"""API keys, without a server: verdicts, rotation, and nothing of a key in a repr."""

import pytest

from hubbub.core.api_keys import MIN_KEY_LENGTH, ApiKeys, Verdict, key_problem

KEY = "0123456789abcdef-key-one"
OTHER = "fedcba9876543210-key-two"


def test_no_keys_means_disabled() -> None:
    assert not ApiKeys(()).enabled
    assert ApiKeys((KEY,)).enabled


@pytest.mark.parametrize(
    ("header", "verdict"),
    [
        (None, Verdict.MISSING),
        ("", Verdict.MISSING),
        ("Bearer", Verdict.MISSING),
        ("Bearer    ", Verdict.MISSING),
        (f"Basic {KEY}", Verdict.MISSING),
        (KEY, Verdict.MISSING),
        (f"Bearer {KEY}", Verdict.GRANTED),
        (f"bearer {KEY}", Verdict.GRANTED),
        (f"  Bearer   {KEY}  ", Verdict.GRANTED),
        (f"Bearer {OTHER}", Verdict.GRANTED),
        (f"Bearer {KEY[:-1]}", Verdict.WRONG),
        (f"Bearer {KEY}x", Verdict.WRONG),
        (f"Bearer {KEY.upper()}", Verdict.WRONG),
        ("Bearer \udcff\u00e9", Verdict.WRONG),
    ],
)
def test_verdicts(header: str | None, verdict: Verdict) -> None:
    assert ApiKeys((KEY, OTHER)).check(header) is verdict


def test_the_repr_says_how_many_keys_and_nothing_of_them() -> None:
    keys = ApiKeys((KEY, OTHER))
    assert repr(keys) == "ApiKeys(2 keys)"
    assert len(keys) == 2
    assert not any(part in repr(keys) for part in (KEY[:8], OTHER[:8]))


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("x" * MIN_KEY_LENGTH, None),
        ("Ab0-._~+/=" * 2, None),
        ("x" * (MIN_KEY_LENGTH - 1), "at least"),
        ("with a space here!", "bearer token"),
        ("comma,separated,keys", "bearer token"),
        ("ünïcödé-key-0123456", "bearer token"),
    ],
)
def test_what_may_be_a_key(key: str, problem: str | None) -> None:
    found = key_problem(key)
    assert (found is None) if problem is None else (found is not None and problem in found)
