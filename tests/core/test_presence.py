import itertools

from hubbub.core.presence import PresenceThrottle


def test_first_change_is_due_at_once_then_coalesced() -> None:
    throttle = PresenceThrottle(0.25)
    assert throttle.changed("r", 10.0) == 0.0
    assert throttle.changed("r", 10.0) is None
    throttle.due("r", 10.0)
    delay = throttle.changed("r", 10.1)
    assert delay is not None
    assert abs(delay - 0.15) < 1e-9
    throttle.due("r", 10.25)
    assert throttle.changed("r", 11.0) == 0.0


def test_at_most_one_broadcast_per_interval() -> None:
    throttle = PresenceThrottle(0.25)
    sent: list[float] = []
    now = 0.0
    due_at: float | None = None
    for step in range(1000):
        now = step * 0.001
        if due_at is not None and now >= due_at:
            throttle.due("r", now)
            sent.append(now)
            due_at = None
        delay = throttle.changed("r", now)
        if delay is not None:
            due_at = now + delay
    assert len(sent) <= 1 + 1.0 / 0.25
    assert all(later - earlier >= 0.25 - 1e-9 for earlier, later in itertools.pairwise(sent))


def test_rooms_are_independent_and_forgotten() -> None:
    throttle = PresenceThrottle(1.0)
    assert throttle.changed("a", 0.0) == 0.0
    assert throttle.changed("b", 0.0) == 0.0
    throttle.due("a", 0.0)
    throttle.forget("a")
    assert throttle.changed("a", 0.1) == 0.0
