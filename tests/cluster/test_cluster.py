"""Cluster mode as users run it: `hubbub serve` processes on one Redis and one
PostgreSQL database, and the guarantees of PROTOCOL.md's "Cluster mode".

Each test has a `redis-server` of its own (so it may stop it, and no other run
hears its channels) and a PostgreSQL schema of its own (see conftest.py).
"""

import asyncio
import signal
import time

import asyncpg
import pytest

from hubbub.client import ChatClient, ServerError
from tests.cluster.conftest import TTL, StartNode, get, messages_in
from tests.conftest import ServerProcess, SpawnServer
from tests.netproxy import CuttableProxy
from tests.postgres import ADMIN_DSN
from tests.services import PrivateRedis

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


async def test_members_on_every_node_get_every_post_once_and_in_id_order(
    start_node: StartNode,
) -> None:
    nodes = [await start_node() for _ in range(3)]
    members = [await ChatClient.connect(node.ws_url) for node in nodes for _ in range(2)]
    try:
        for n, member in enumerate(members):
            await member.join("r", f"user{n}")
        per_member = 15

        async def post(member: ChatClient, n: int) -> list[int]:
            return [await member.say(f"{n}-{k}", room="r") for k in range(per_member)]

        acked = await asyncio.gather(*(post(m, n) for n, m in enumerate(members)))
        total = per_member * len(members)
        assert sorted(i for ids in acked for i in ids) == list(range(1, total + 1))
        for member in members:
            assert await messages_in(member, total) == list(range(1, total + 1))
            assert member.pending("message") == []
    finally:
        for member in members:
            await member.close()


async def test_join_with_since_on_another_node_replays_what_was_posted(
    start_node: StartNode,
) -> None:
    a, b = await start_node(), await start_node()
    async with await ChatClient.connect(a.ws_url) as ann:
        await ann.join("r", "ann")
        posted = [await ann.say(f"m{n}", room="r") for n in range(5)]
    async with await ChatClient.connect(b.ws_url) as bob:
        ack = await bob.join("r", "bob", since=posted[1])
        assert ack["replayed"] == 3
        assert await messages_in(bob, 3) == posted[2:]


async def test_presence_rooms_and_stats_count_every_node(start_node: StartNode) -> None:
    a, b = await start_node(), await start_node()
    async with (
        await ChatClient.connect(a.ws_url) as ann,
        await ChatClient.connect(b.ws_url) as bob,
        await ChatClient.connect(b.ws_url) as ann_too,
    ):
        await ann.join("r", "ann")
        await ann.expect("user_joined", username="ann")
        await bob.join("r", "bob")
        await ann.expect("user_joined", username="bob", timeout=5)
        await ann_too.join("r", "ann")
        async with asyncio.timeout(5):
            while (await ann.expect("online_users"))["users"] != ["ann", "bob"]:
                pass
        for node in (a, b):
            status, rooms = await get(f"{node.url}/rooms")
            assert (status, rooms) == (200, {"rooms": [{"name": "r", "count": 2}], "total": 1})
            status, stats = await get(f"{node.url}/stats")
            assert (stats["connections"], stats["rooms"], stats["users"]) == (3, 1, 2)
        assert ann.pending("user_joined") == [], "ann's second connection is not news"


async def test_a_killed_nodes_users_leave_within_the_ttl_once(start_node: StartNode) -> None:
    a, b = await start_node(), await start_node()
    async with (
        await ChatClient.connect(a.ws_url) as ann,
        await ChatClient.connect(a.ws_url) as dave_here,
    ):
        carl, dave_there = (
            await ChatClient.connect(b.ws_url),
            await ChatClient.connect(b.ws_url),
        )
        await ann.join("r", "ann")
        await dave_here.join("r", "dave")
        await carl.join("r", "carl")
        await dave_there.join("r", "dave")
        await ann.expect("user_joined", username="carl")
        b.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await ann.expect("user_left", username="carl", timeout=TTL + 2)
        assert time.monotonic() - killed <= TTL + 2
        async with asyncio.timeout(5):
            while (await ann.expect("online_users"))["users"] != ["ann", "dave"]:
                pass
        assert [e for e in ann.pending("user_left")] == []
        assert await ann.say("still here", room="r") > 0
        assert ann.pending("user_left") == [], "dave is still connected: no user_left"
        await carl.close()
        await dave_there.close()


async def test_a_redis_restart_under_traffic_loses_no_acked_message(
    start_node: StartNode, redis: PrivateRedis
) -> None:
    a, b = await start_node(), await start_node()
    async with (
        await ChatClient.connect(a.ws_url) as poster,
        await ChatClient.connect(b.ws_url) as reader,
    ):
        await poster.join("r", "poster")
        await reader.join("r", "reader")
        acked: list[int] = []
        refusals: list[str] = []
        enough = asyncio.Event()
        wanted = 5

        async def post_until(done: asyncio.Event) -> None:
            n = 0
            while not done.is_set():
                n += 1
                try:
                    acked.append(await poster.say(f"m{n}", room="r"))
                except ServerError as error:
                    refusals.append(error.code)
                if len(acked) >= wanted:
                    enough.set()
                await asyncio.sleep(0.02)  # a steady rate of posts, not a wait for an event

        done = asyncio.Event()
        posting = asyncio.create_task(post_until(done))
        await asyncio.wait_for(enough.wait(), 10)
        redis.stop()
        await health_becomes(b, 503, within=10)
        status, body = await get(f"{b.url}/healthz")
        assert (status, body["broker"]) == (503, "unavailable")
        enough.clear()
        wanted = len(acked) + 5
        await asyncio.wait_for(enough.wait(), 10)
        done.set()
        await posting
        redis.start()
        assert await health_becomes(b, 200, within=10) <= 5
        assert set(refusals) <= {"unavailable"}
        # Nothing is posted after the outage: what was missed comes from the catch-up.
        received = await messages_in(reader, len(acked), timeout=20)
        assert received == acked
        assert received == list(range(1, len(received) + 1))
        later = [await poster.say(f"later {n}", room="r") for n in range(3)]
        assert await messages_in(reader, 3) == later


async def test_a_node_cut_from_redis_says_so_and_recovers(
    start_node: StartNode, redis: PrivateRedis
) -> None:
    node = await start_node()
    assert (await get(f"{node.url}/healthz"))[0] == 200
    redis.stop()
    await health_becomes(node, 503, within=10)
    async with await ChatClient.connect(node.ws_url) as ann:
        with pytest.raises(ServerError) as refused:
            await ann.join("r", "ann")
        assert refused.value.code == "unavailable"
    redis.start()
    await health_becomes(node, 200, within=10)
    async with await ChatClient.connect(node.ws_url) as ann:
        await ann.join("r", "ann")


async def health_becomes(node: ServerProcess, status: int, within: float) -> float:
    """Seconds until /healthz answers `status`, polled as a load balancer would."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        while (await get(f"{node.url}/healthz"))[0] != status:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_postgresql_connections_killed_refuse_then_recover(
    start_node: StartNode, postgres_database: str
) -> None:
    a, b = await start_node(), await start_node()
    async with (
        await ChatClient.connect(a.ws_url) as ann,
        await ChatClient.connect(b.ws_url) as bob,
    ):
        await ann.join("r", "ann")
        await bob.join("r", "bob")
        before = await ann.say("before", room="r")
        database = postgres_database.rsplit("/", 1)[1]
        connection = await asyncpg.connect(ADMIN_DSN, timeout=5)
        try:
            killed = await connection.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
        finally:
            await connection.close()
        assert killed >= 2, "both nodes had connections"
        outcomes: list[int | str] = []
        for n in range(20):
            try:
                outcomes.append(await ann.say(f"after {n}", room="r"))
            except ServerError as error:
                outcomes.append(error.code)
        assert set(o for o in outcomes if isinstance(o, str)) <= {"unavailable"}
        acked = [o for o in outcomes if isinstance(o, int)]
        assert acked, "the store recovered by itself"
        assert outcomes[-1] == acked[-1]
        received = await messages_in(bob, 1 + len(acked))
        assert received == [before, *acked]
        assert (await get(f"{a.url}/healthz"))[0] == 200


async def test_a_departure_while_redis_is_down_is_announced_once_it_is_back(
    start_node: StartNode, redis: PrivateRedis
) -> None:
    a, b = await start_node(), await start_node()
    async with await ChatClient.connect(a.ws_url) as ann:
        await ann.join("r", "ann")
        async with await ChatClient.connect(b.ws_url) as bob:
            await bob.join("r", "bob")
            await ann.expect("user_joined", username="bob")
            redis.stop()
            await health_becomes(b, 503, within=10)
        redis.start()
        await health_becomes(b, 200, within=10)
        await ann.expect("user_left", username="bob", timeout=TTL + 5)
        async with asyncio.timeout(5):
            while (await ann.expect("online_users"))["users"] != ["ann"]:
                pass
        assert await get(f"{b.url}/rooms") == (
            200,
            {"rooms": [{"name": "r", "count": 1}], "total": 1},
        )


async def test_an_ack_follows_the_senders_own_copy_of_its_message(
    start_node: StartNode,
) -> None:
    """Two nodes posting into one room at once: each node sequences the other's ids in
    with its own, and a sender's ack never overtakes its own copy of the message."""
    a, b = await start_node(), await start_node()
    senders = [await ChatClient.connect(a.ws_url), await ChatClient.connect(b.ws_url)]
    try:
        for n, sender in enumerate(senders):
            await sender.join("r", f"sender{n}")
        count = 30  # within the default burst of 40: no rate_limited
        for k in range(count):
            for n, sender in enumerate(senders):
                await sender.send({"type": "message", "room": "r", "content": f"{n}-{k}", "ref": k})
        for sender in senders:
            seen: set[int] = set()
            acks = 0
            async with asyncio.timeout(20):
                while acks < count:
                    event = await sender.receive(timeout=20)
                    assert event["type"] != "error", event
                    if event["type"] == "message":
                        seen.add(event["id"])
                    elif event["type"] == "ack" and "id" in event:
                        assert event["id"] in seen, f"ack {event['id']} before its message"
                        acks += 1
    finally:
        for sender in senders:
            await sender.close()


async def test_a_message_acked_on_a_node_cut_from_redis_reaches_the_others_when_it_is_back(
    spawn_server: SpawnServer, start_node: StartNode, redis: PrivateRedis, postgres_dsn: str
) -> None:
    """Nothing is posted after the link comes back: the message must not wait for a
    later one to show the others a gap."""
    async with CuttableProxy(redis.port) as link:
        cut_off = await spawn_server(
            "--store", postgres_dsn, "--redis-url", f"redis://127.0.0.1:{link.port}/0",
            "--node-ttl", "30", "--presence-interval", "0.05",
        )  # fmt: skip
        other = await start_node()
        async with (
            await ChatClient.connect(cut_off.ws_url) as ann,
            await ChatClient.connect(other.ws_url) as bob,
        ):
            await ann.join("r", "ann")
            await bob.join("r", "bob")
            link.block()
            await health_becomes(cut_off, 503, within=10)
            sent = await ann.say("while cut off", room="r")
            await asyncio.sleep(1.0)  # the partition lasts on: the node's publish fails in it
            link.unblock()
            await health_becomes(cut_off, 200, within=10)
            assert (await bob.expect("message", timeout=10))["id"] == sent


async def test_a_rejoin_with_since_replays_before_live_messages_while_another_node_posts(
    start_node: StartNode,
) -> None:
    """The replay of a join with `since` comes before any live message, also when the
    joining node must first subscribe to the room (its first member there)."""
    fast = ("--rate", "1000", "--rate-burst", "1000")
    a, b = await start_node(*fast), await start_node(*fast)
    posters = [await ChatClient.connect(a.ws_url) for _ in range(4)]
    for n, poster in enumerate(posters):
        await poster.join("r", f"poster{n}")
    stop = asyncio.Event()

    async def post(poster: ChatClient) -> None:
        while not stop.is_set():
            await poster.send({"type": "message", "room": "r", "content": "x"})
            await asyncio.sleep(0.002)  # a steady stream from another node

    posting = [asyncio.create_task(post(poster)) for poster in posters]
    try:
        async with await ChatClient.connect(b.ws_url) as joiner:
            last = 0
            for _ in range(60):
                await joiner.join("r", "joiner", since=last)
                ids: list[int] = []
                async with asyncio.timeout(10):
                    while len(ids) < 20:
                        event = await joiner.receive()
                        if event["type"] == "message":
                            ids.append(event["id"])
                assert ids == list(range(last + 1, last + 1 + len(ids))), ids[:10]
                last = ids[-1]
                await joiner.leave("r")
                for _ in joiner.pending("message"):
                    assert (await joiner.expect("message"))["id"] == last + 1
                    last += 1
    finally:
        stop.set()
        await asyncio.gather(*posting)
        for poster in posters:
            await poster.close()
