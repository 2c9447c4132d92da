from hubbub.core.heartbeat import HeartbeatWheel, Verdict


def turn(
    wheel: HeartbeatWheel[str], start: float, turns: float = 1.0
) -> list[tuple[float, str, Verdict]]:
    """Visit every bucket for `turns` intervals from `start`; what happened, when."""
    happened = []
    steps = round(turns * wheel.slots)
    for step in range(1, steps + 1):
        now = start + step * wheel.tick
        happened += [(now, member, verdict) for member, verdict in wheel.visit(now)]
    return happened


def test_a_silent_member_is_pinged_then_declared_dead_within_two_intervals() -> None:
    wheel: HeartbeatWheel[str] = HeartbeatWheel(interval=10.0, slots=10)
    wheel.add("quiet", 0.0)
    events = turn(wheel, 0.0, turns=3)
    pings = [when for when, _, verdict in events if verdict is Verdict.PING]
    deaths = [when for when, _, verdict in events if verdict is Verdict.DEAD]
    assert len(pings) == 1
    assert 10.0 <= pings[0] <= 20.0
    assert len(deaths) == 1
    assert pings[0] + 10.0 <= deaths[0] <= 20.0 + 10.0 + wheel.tick
    assert turn(wheel, 30.0) == []


def test_an_answer_keeps_the_member_alive() -> None:
    wheel: HeartbeatWheel[str] = HeartbeatWheel(interval=10.0, slots=10)
    wheel.add("chatty", 0.0)
    now = 0.0
    for _ in range(50):
        for member, verdict in wheel.visit(now):
            assert verdict is Verdict.PING
            wheel.seen(member, now + 0.1)
        now += wheel.tick
    assert not any(verdict is Verdict.DEAD for _, _, verdict in turn(wheel, now, 0.5))


def test_pings_are_spread_over_the_interval() -> None:
    wheel: HeartbeatWheel[int] = HeartbeatWheel(interval=20.0, slots=64)
    for member in range(6400):
        wheel.add(member, 0.0)
    per_visit = [len(wheel.visit(20.0 + step * wheel.tick)) for step in range(64)]
    assert max(per_visit) == 100
    assert sum(per_visit) == 6400


def test_removed_members_are_forgotten() -> None:
    wheel: HeartbeatWheel[str] = HeartbeatWheel(interval=1.0, slots=4)
    wheel.add("gone", 0.0)
    wheel.remove("gone")
    wheel.seen("gone", 0.5)
    assert turn(wheel, 0.0, turns=3) == []
