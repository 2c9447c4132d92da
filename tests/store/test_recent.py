"""The writer's memory of recent retry keys: window, order and bound."""

from hubbub.store.recent import RecentRetries

T0 = 1_795_674_063_000


def test_a_key_is_found_within_the_window_only() -> None:
    recent = RecentRetries(window_ms=1000)
    recent.remember({("r", "ann", "s:1"): (7, T0)})
    assert recent.first(("r", "ann", "s:1"), T0 + 999) == (7, T0)
    assert recent.first(("r", "ann", "s:1"), T0 + 1000) is None
    assert recent.first(("r", "bob", "s:1"), T0) is None


def test_expired_keys_are_forgotten_as_newer_ones_arrive() -> None:
    recent = RecentRetries(window_ms=1000)
    recent.remember({("r", "ann", "s:1"): (1, T0)})
    recent.remember({("r", "ann", "s:2"): (2, T0 + 500)})
    recent.remember({("r", "ann", "s:3"): (3, T0 + 1200)})
    assert len(recent) == 2
    assert recent.first(("r", "ann", "s:2"), T0 + 1200) == (2, T0 + 500)


def test_the_oldest_keys_give_way_beyond_capacity() -> None:
    recent = RecentRetries(window_ms=10**9, capacity=3)
    for n in range(5):
        recent.remember({("r", "ann", f"s:{n}"): (n + 1, T0 + n)})
    assert len(recent) == 3
    assert recent.first(("r", "ann", "s:1"), T0 + 5) is None
    assert recent.first(("r", "ann", "s:2"), T0 + 5) == (3, T0 + 2)


def test_remembering_a_key_again_makes_it_the_newest() -> None:
    recent = RecentRetries(window_ms=10**9, capacity=2)
    recent.remember({("r", "ann", "s:a"): (1, T0)})
    recent.remember({("r", "ann", "s:b"): (2, T0 + 1)})
    recent.remember({("r", "ann", "s:a"): (3, T0 + 2)})
    recent.remember({("r", "ann", "s:c"): (4, T0 + 3)})
    assert recent.first(("r", "ann", "s:a"), T0 + 3) == (3, T0 + 2)
    assert recent.first(("r", "ann", "s:b"), T0 + 3) is None
