"""The reconnecting client over real sockets: drops, restarts, retries; no gap, no duplicate."""

import asyncio
import time
from pathlib import Path

import pytest

from hubbub.client import ChatClient, ServerError
from hubbub.core.auth import issue_token
from hubbub.reconnecting import (
    PACE_MEMORY_SECONDS,
    Backoff,
    Pacer,
    ReconnectingClient,
    ServerRefused,
)
from tests.conftest import StartServer
from tests.netproxy import CuttableProxy

FAST = Backoff(initial=0.05, maximum=0.2)


def test_backoff_grows_exponentially_to_a_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.5)
    assert [backoff.delay(n, lambda: 0.0) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert backoff.delay(3, lambda: 1.0) == 0.4
    assert 0.4 <= backoff.delay(3) <= 0.8


async def collect_messages(client: ReconnectingClient, room: str, until_id: int) -> list[int]:
    ids: list[int] = []
    while not ids or ids[-1] < until_id:
        event = await client.receive(timeout=10)
        if event["type"] == "message" and event["room"] == room:
            ids.append(event["id"])
    return ids


async def test_cut_connection_loses_and_repeats_nothing(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(store="sqlite", data_dir=str(tmp_path), rate=1000, rate_burst=1000)
    async with (
        CuttableProxy(server.port) as proxy,
        await ChatClient.connect(server.ws_url) as poster,
        ReconnectingClient(proxy.ws_url, "carol", backoff=FAST) as carol,
    ):
        await poster.join("r", "poster")
        await poster.say("before carol joined")
        await carol.join("r")
        posted: list[int] = []
        for round_ in range(3):
            for n in range(20):
                posted.append(await poster.say(f"round {round_} message {n}"))
                if n == 10:
                    proxy.cut()
            mine = await carol.say("r", f"carol after cut {round_}")
            posted.append(mine)
        ids = await collect_messages(carol, "r", posted[-1])
        assert ids == list(range(2, posted[-1] + 1))
        assert carol.connections == 4


async def test_messages_sent_while_disconnected_are_sent_once_after(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(store="sqlite", data_dir=str(tmp_path))
    async with (
        CuttableProxy(server.port) as proxy,
        ReconnectingClient(proxy.ws_url, "dave", backoff=FAST) as dave,
        await ChatClient.connect(server.ws_url) as watcher,
    ):
        await watcher.join("r", "watcher")
        await dave.join("r")
        proxy.cut()
        sending = [asyncio.create_task(dave.say("r", f"queued {n}")) for n in range(5)]
        ids = await asyncio.gather(*sending)
        assert sorted(ids) == list(range(1, 6))
        seen = [(await watcher.expect("message"))["content"] for _ in range(5)]
        assert sorted(seen) == [f"queued {n}" for n in range(5)]
        await watcher.request({"type": "history", "room": "r"})
        stored = (await watcher.expect("history"))["messages"]
        assert sorted(m["content"] for m in stored) == [f"queued {n}" for n in range(5)]
        assert dave.connections == 2


async def test_server_restart_is_survived_with_every_message_once(
    start_server: StartServer, tmp_path: Path
) -> None:
    args = {"store": "sqlite", "data_dir": str(tmp_path)}
    first = await start_server(**args)
    port = first.port
    async with ReconnectingClient(first.ws_url, "erin", backoff=FAST) as erin:
        await erin.join("r")
        before = await erin.say("r", "before restart")
        await first.stop()
        second = await start_server(port=port, **args)
        async with await ChatClient.connect(second.ws_url) as other:
            await other.join("r", "other")
            during = [await other.say(f"while erin was away {n}") for n in range(3)]
        after = await erin.say("r", "after restart")
        ids = await collect_messages(erin, "r", after)
        assert ids == [before, *during, after]


async def test_works_with_a_token_in_the_url(start_server: StartServer) -> None:
    secret = "r" * 40
    server = await start_server(auth_secret=secret)
    token = issue_token(secret, "frank", ["r"], int(time.time()) + 600)
    async with ReconnectingClient(f"{server.ws_url}?token={token}", "ignored") as frank:
        await frank.join("r")
        message_id = await frank.say("r", "authenticated")
        event = await frank.receive()
        while event["type"] != "message":
            event = await frank.receive()
        assert event == {**event, "id": message_id, "from": "frank"}


async def test_a_token_function_is_asked_before_every_connection(
    start_server: StartServer,
) -> None:
    secret = "t" * 40
    server = await start_server(auth_secret=secret, rate=1000, rate_burst=1000)
    issued: list[str] = []

    async def fresh_token() -> str:
        # Distinct tokens (their expiry differs), so that the test can count them.
        issued.append(issue_token(secret, "grace", ["r"], int(time.time()) + 30 + len(issued)))
        return issued[-1]

    watcher_token = issue_token(secret, "watcher", ["r"], int(time.time()) + 60)
    async with (
        CuttableProxy(server.port) as proxy,
        ReconnectingClient(proxy.ws_url, "ignored", token=fresh_token, backoff=FAST) as grace,
        await ChatClient.connect(f"{server.ws_url}?token={watcher_token}") as watcher,
    ):
        await watcher.join("r")
        await grace.join("r")
        first = await grace.say("r", "first")
        proxy.cut()
        second = await grace.say("r", "after the cut")
        assert grace.connections == 2
        assert len(set(issued)) == 2, "a fresh token for each connection"
        seen = [await watcher.expect("message") for _ in range(2)]
        assert [(m["id"], m["from"]) for m in seen] == [(first, "grace"), (second, "grace")]


async def test_a_plain_token_and_a_sync_function_work_too(start_server: StartServer) -> None:
    secret = "u" * 40
    server = await start_server(auth_secret=secret)
    token = issue_token(secret, "hal", None, int(time.time()) + 600)
    for source in (token, lambda: token):
        async with ReconnectingClient(server.ws_url, "ignored", token=source) as hal:
            await hal.join("r")
            message_id = await hal.say("r", "hello")
            event = await hal.receive()
            while event["type"] != "message":
                event = await hal.receive()
            assert event == {**event, "id": message_id, "from": "hal"}


async def test_a_refused_token_fails_at_once_with_the_servers_reason(
    start_server: StartServer,
) -> None:
    secret = "v" * 40
    server = await start_server(auth_secret=secret)
    expired = issue_token(secret, "ivy", None, int(time.time()) - 60)
    client = ReconnectingClient(server.ws_url, "ivy", token=expired)
    started = time.monotonic()
    with pytest.raises(ServerRefused) as refused:
        await client.start(timeout=5)
    assert time.monotonic() - started < 2, "a 401 is not retried until the timeout"
    assert refused.value.status == 401
    assert "token expired" in str(refused.value)


def test_pacer_waits_retry_after_then_spaces_messages_by_it() -> None:
    pacer = Pacer()
    assert pacer.next_send_at(5.0) == 0.0, "nothing holds back a client never refused"
    pacer.sent(5.0)
    pacer.refused(0.05, now=5.0)
    pacer.refused(0.01, now=5.001)
    assert pacer.next_send_at(5.002) == pytest.approx(5.05)
    pacer.sent(5.05)
    assert pacer.next_send_at(5.06) == pytest.approx(5.10), "spaced by the longest retry_after"
    assert pacer.next_send_at(5.0 + PACE_MEMORY_SECONDS + 1) == pytest.approx(5.05)


async def test_a_burst_of_200_is_slowed_to_the_rate_limit_and_never_closed(
    start_server: StartServer,
) -> None:
    server = await start_server(rate=100, rate_burst=10)
    async with (
        ReconnectingClient(server.ws_url, "burst", backoff=FAST) as burst,
        await ChatClient.connect(server.ws_url) as watcher,
    ):
        await watcher.join("r", "watcher")
        await burst.join("r")
        ids = await asyncio.gather(*(burst.say("r", f"burst {n}") for n in range(200)))
        assert ids == sorted(set(ids)), "acked once each, in the order they were said"
        seen = [(await watcher.expect("message"))["content"] for _ in range(200)]
        assert seen == [f"burst {n}" for n in range(200)]
        assert burst.connections == 1, "never closed for abuse"
        await watcher.request({"type": "history", "room": "r", "limit": 100})
        assert len((await watcher.expect("history"))["messages"]) == 100
        assert watcher.pending("message") == []


async def test_saying_something_in_a_room_not_joined_is_refused_at_once(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with ReconnectingClient(server.ws_url, "jo") as jo:
        with pytest.raises(ValueError, match="join 'nowhere'"):
            await jo.say("nowhere", "hello?")


async def test_a_reset_room_forgets_its_ids_and_delivers_what_follows(
    start_server: StartServer,
) -> None:
    """A memory store restarts empty: the ids start over, and the client must take them."""
    first = await start_server(store="memory")
    port = first.port
    async with ReconnectingClient(first.ws_url, "kim", backoff=FAST) as kim:
        await kim.join("r")
        for n in range(3):
            await kim.say("r", f"before {n}")
        assert await collect_messages(kim, "r", 3) == [1, 2, 3]
        await first.stop()
        second = await start_server(store="memory", port=port)
        event = await kim.receive(timeout=10)
        while event["type"] != "reset":
            event = await kim.receive(timeout=10)
        assert event == {"type": "reset", "room": "r"}
        async with await ChatClient.connect(second.ws_url) as other:
            await other.join("r", "other")
            after = await other.say("after the restart", room="r")
        assert after == 1
        assert await collect_messages(kim, "r", after) == [after]
        assert await kim.say("r", "and mine") == 2


async def test_a_watcher_rejoins_as_a_watcher_and_misses_nothing(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(store="sqlite", data_dir=str(tmp_path), rate=1000, rate_burst=1000)
    async with (
        CuttableProxy(server.port) as proxy,
        await ChatClient.connect(server.ws_url) as poster,
        ReconnectingClient(proxy.ws_url, "viewer", backoff=FAST) as viewer,
    ):
        await poster.join("r", "poster")
        await viewer.join("r", watch=True)
        with pytest.raises(ValueError, match="only watched"):
            await viewer.say("r", "hello?")
        posted = []
        for n in range(30):
            posted.append(await poster.say(f"message {n}"))
            if n in (10, 20):
                proxy.cut()
        assert await collect_messages(viewer, "r", posted[-1]) == posted
        assert viewer.connections >= 2
        # It rejoined as a watcher each time: it was never present.
        assert [e for e in poster.received if e["type"] == "user_joined"] == [
            {"type": "user_joined", "username": "poster", "room": "r"}
        ]
        await viewer.join("r")
        mine = await viewer.say("r", "now I talk")
        assert (await poster.expect("message", id=mine))["from"] == "viewer"
        await poster.expect("user_joined", username="viewer")


async def test_a_refused_switch_to_member_keeps_the_client_watching(
    start_server: StartServer,
) -> None:
    server = await start_server(max_room_members=1)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        ReconnectingClient(server.ws_url, "viewer", backoff=FAST) as viewer,
    ):
        await ann.join("r", "ann")
        await viewer.join("r", watch=True)
        with pytest.raises(ServerError) as refused:
            await viewer.join("r")
        assert refused.value.code == "room_full"
        with pytest.raises(ValueError, match="only watched"):
            await viewer.say("r", "hello?")
        assert (await viewer.join("r", watch=True))["type"] == "ack"
        posted = await ann.say("still watching", room="r")
        assert await collect_messages(viewer, "r", posted) == [posted]
