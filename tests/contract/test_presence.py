"""One contract for every `Presence`: the guarantees written on the interface.

Nodes are several `Presence` objects sharing one state: a `Roster` in memory, or
one Redis under a key prefix of the test's own (removed afterwards). Death is
made by a short time to live and not beating again.
"""

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from hubbub.presence.base import Liveness, Presence, Purged, Report, Resync, Totals
from hubbub.presence.memory import MemoryPresence, Roster
from hubbub.presence.redis import RedisPresence
from tests.services import shared_redis_url

TTL = 0.3
StartNode = Callable[..., Awaitable[Presence]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cluster(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[StartNode, Callable[[], Awaitable[None]]]]:
    """(start a node, let every node that did not beat since die)."""
    clock = Clock()
    roster = Roster(clock)
    prefix = f"hubbub-test-{secrets.token_hex(4)}:"
    url = shared_redis_url() if request.param == "redis" else ""
    started: list[Presence] = []

    async def start(node_id: str, ttl: float = TTL) -> Presence:
        presence: Presence = MemoryPresence(roster) if not url else RedisPresence(url, prefix)
        await presence.start(node_id, ttl)
        started.append(presence)
        return presence

    async def expire() -> None:
        if url:
            await asyncio.sleep(TTL + 0.05)  # Redis's own clock decides; there is no other
        else:
            clock.now += TTL + 0.05

    yield start, expire
    for presence in started:
        await presence.close()
    if url:
        redis = Redis.from_url(url)
        keys = [key async for key in redis.scan_iter(f"{prefix}*")]
        assert keys == [], "nodes that closed left keys behind"
        await redis.aclose()


Cluster = tuple[StartNode, Callable[[], Awaitable[None]]]


async def test_first_arrival_and_last_departure_are_counted_over_every_node(
    cluster: Cluster,
) -> None:
    start, _ = cluster
    a, b = await start("a"), await start("b")
    first = await a.enter("r", "ann", 100)
    assert first is not None
    assert (first.first, first.members) == (True, 1)
    second = await b.enter("r", "ann", 100)
    assert second is not None
    assert (second.first, second.members) == (False, 2)
    assert await b.users("r") == ["ann"]
    assert await a.exit("r", "ann") is False
    assert await b.exit("r", "ann") is True
    assert await a.users("r") == []
    assert await a.rooms() == {}


async def test_the_room_limit_holds_over_every_node(cluster: Cluster) -> None:
    start, _ = cluster
    a, b = await start("a"), await start("b")
    results = await asyncio.gather(
        *(node.enter("r", f"user{n}-{i}", 5) for n in range(12) for i, node in enumerate((a, b)))
    )
    assert sum(arrival is not None for arrival in results) == 5
    assert len(await a.users("r")) == 5
    assert await b.enter("r", "late", 5) is None


async def test_users_rooms_and_totals(cluster: Cluster) -> None:
    start, _ = cluster
    a, b = await start("a"), await start("b")
    await a.enter("r", "zed", 100)
    await b.enter("r", "ann", 100)
    await b.enter("s", "ann", 100)
    await a.report(Report(1, 10, 0.5))
    await b.report(Report(2, 5, 1.0))
    assert await a.users("r") == ["ann", "zed"]
    assert await b.rooms() == {"r": 2, "s": 1}
    assert await a.totals() == Totals(rooms=2, users=2, nodes=Report(3, 15, 1.5))


async def test_a_dead_nodes_users_leave_once_and_only_where_nobody_is_left(
    cluster: Cluster,
) -> None:
    start, expire = cluster
    dead = await start("dead")
    survivors = [await start("s1", 30.0), await start("s2", 30.0)]
    await dead.enter("r", "ann", 100)
    await dead.enter("r", "bob", 100)
    await dead.enter("r", "bob", 100)
    await survivors[0].enter("r", "bob", 100)
    await dead.report(Report(3, 7, 0.0))
    await expire()
    purged = await asyncio.gather(*(node.purge_dead() for node in survivors))
    assert sorted(purged, key=lambda p: p.nodes) == [Purged(), Purged(1, [("r", "ann")])]
    assert await survivors[1].users("r") == ["bob"]
    assert (await survivors[1].totals()).nodes == Report()
    assert await survivors[0].purge_dead() == Purged()


async def test_a_node_that_beats_is_not_purged(cluster: Cluster) -> None:
    start, expire = cluster
    a, b = await start("a"), await start("b", 30.0)
    await a.enter("r", "ann", 100)
    assert await a.beat() is Liveness.KNOWN
    assert await b.purge_dead() == Purged()
    assert await b.users("r") == ["ann"]
    await expire()
    assert await b.purge_dead() == Purged(1, [("r", "ann")])


async def test_a_purged_node_learns_it_from_its_beat(cluster: Cluster) -> None:
    start, expire = cluster
    a, b = await start("a"), await start("b", 30.0)
    await a.enter("r", "ann", 100)
    await expire()
    await b.purge_dead()
    assert await a.beat() is Liveness.PURGED
    assert await a.exit("r", "ann") is False
    assert await b.users("r") == []
    again = await a.enter("r", "ann", 100)
    assert again is not None
    assert again.first


async def test_replace_makes_presence_hold_exactly_the_nodes_connections(
    cluster: Cluster,
) -> None:
    start, _ = cluster
    a, b = await start("a"), await start("b")
    await a.enter("r", "ann", 100)
    await a.enter("r", "ann", 100)
    await a.enter("r", "bob", 100)
    await b.enter("r", "bob", 100)
    # ann's connections left while presence was unreachable; cid arrived meanwhile.
    resync = await a.replace({("r", "bob"): 1, ("s", "cid"): 2})
    assert resync == Resync(arrived=[("s", "cid")], left=[("r", "ann")])
    assert await b.users("r") == ["bob"]
    assert await b.users("s") == ["cid"]
    assert await a.exit("s", "cid") is False
    assert await a.exit("s", "cid") is True
    assert await a.exit("r", "bob") is False, "bob is still on b"
    assert await a.rooms() == {"r": 1}


async def test_replace_after_a_purge_enters_the_node_again(cluster: Cluster) -> None:
    start, expire = cluster
    a, b = await start("a"), await start("b", 30.0)
    await a.enter("r", "ann", 100)
    await expire()
    assert await b.purge_dead() == Purged(1, [("r", "ann")])
    assert await a.beat() is Liveness.PURGED
    assert await a.replace({("r", "ann"): 1}) == Resync(arrived=[("r", "ann")])
    assert await b.users("r") == ["ann"]


async def test_hundreds_of_changes_at_once_are_all_counted(cluster: Cluster) -> None:
    """A thousand clients leaving together must queue for presence, not fail."""
    start, _ = cluster
    a = await start("a")
    names = [f"user{n}" for n in range(300)]
    await asyncio.gather(*(a.enter("r", name, 1000) for name in names))
    assert len(await a.users("r")) == 300
    left = await asyncio.gather(*(a.exit("r", name) for name in names))
    assert all(left)
    assert await a.users("r") == []
