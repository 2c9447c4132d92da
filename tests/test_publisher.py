"""`hubbub.publisher.Publisher` against a real server: a retried publish is stored and
delivered once, whether the answer was lost on the way or the store was down."""

import asyncio
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from hubbub.client import ChatClient
from hubbub.publisher import Publisher, PublishError, PublishUnavailable
from hubbub.server.runner import RunningServer
from tests.conftest import StartServer
from tests.netproxy import CuttableProxy

KEY = "publisher-test-key-0123456789"
FAST = (0.01, 0.02, 0.05)


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server(api_key=(KEY,))


async def stored(server: RunningServer, room: str) -> list[tuple[int, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/rooms/{room}/messages") as response,
    ):
        return [(m["id"], m["content"]) for m in (await response.json())["messages"]]


async def test_publish_returns_the_id_members_see(server: RunningServer) -> None:
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        Publisher(server.url, KEY) as publisher,
    ):
        await ann.join("orders", "ann")
        sent = await publisher.publish(
            "orders", "Order 1042 shipped", sender="shop", data={"order": 1042}
        )
        event = await ann.expect("message")
        assert (sent.id, sent.room, sent.timestamp, sent.duplicate) == (
            event["id"],
            "orders",
            event["timestamp"],
            False,
        )
        assert (event["from"], event["data"]) == ("shop", {"order": 1042})
        again = await publisher.publish("orders", "plain", sender="shop")
        assert again.id == sent.id + 1
        assert "data" not in await ann.expect("message")


async def test_a_lost_answer_is_retried_with_the_same_ref_and_stored_once(
    server: RunningServer,
) -> None:
    retries: list[tuple[int, str]] = []
    async with (
        CuttableProxy(server.port) as proxy,
        await ChatClient.connect(server.ws_url) as ann,
        Publisher(
            f"http://127.0.0.1:{proxy.port}",
            KEY,
            backoff=FAST,
            on_retry=lambda attempt, why: retries.append((attempt, why)),
        ) as publisher,
    ):
        await ann.join("r", "ann")
        proxy.drop_answers(2)
        sent = await publisher.publish("r", "shipped", sender="shop")
        assert [attempt for attempt, _ in retries] == [2, 3]
        assert "ServerDisconnected" in retries[0][1]
        assert sent.duplicate
        assert (await ann.expect("message"))["id"] == sent.id
        assert await ann.say("marker") == sent.id + 1
        assert (await ann.expect("message"))["content"] == "marker"
    assert await stored(server, "r") == [(sent.id, "shipped"), (sent.id + 1, "marker")]


async def test_a_store_outage_is_waited_out_and_the_message_stored_once(
    start_server: StartServer, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = await start_server(
        api_key=(KEY,), store="sqlite", data_dir=str(data_dir), sqlite_busy_timeout=0.05
    )
    retried = asyncio.Event()
    reasons: list[str] = []

    def on_retry(attempt: int, why: str) -> None:
        reasons.append(why)
        retried.set()

    lock = sqlite3.connect(data_dir / "hubbub.db", isolation_level=None)
    try:
        async with Publisher(server.url, KEY, backoff=FAST, on_retry=on_retry) as publisher:
            lock.execute("BEGIN EXCLUSIVE")
            publishing = asyncio.create_task(publisher.publish("r", "during", sender="bot"))
            await asyncio.wait_for(retried.wait(), 10)
            lock.execute("ROLLBACK")
            sent = await asyncio.wait_for(publishing, 20)
    finally:
        lock.close()
    assert reasons[0].startswith("503 unavailable")
    assert not sent.duplicate
    assert await stored(server, "r") == [(sent.id, "during")]


async def test_a_refusal_is_raised_at_once_without_retrying(server: RunningServer) -> None:
    retries: list[int] = []
    async with Publisher(
        server.url, "not-the-key-0123456789", on_retry=lambda n, _: retries.append(n)
    ) as wrong:
        with pytest.raises(PublishError) as refused:
            await wrong.publish("r", "hi", sender="bot")
    assert (refused.value.status, refused.value.code) == (403, "unauthorized")
    async with Publisher(server.url, KEY, on_retry=lambda n, _: retries.append(n)) as publisher:
        with pytest.raises(PublishError) as invalid:
            await publisher.publish("r", "hi", sender="bot", data="x" * 20_000)
        assert (invalid.value.status, invalid.value.code) == (400, "invalid_field")
        with pytest.raises(PublishError) as bad_room:
            await publisher.publish("no room!", "hi", sender="bot")
        assert bad_room.value.status == 400
    assert retries == []
    assert await stored(server, "r") == []


async def test_an_unreachable_server_gives_up_after_the_attempts(server: RunningServer) -> None:
    retries: list[int] = []
    async with CuttableProxy(server.port) as proxy:
        proxy.block()
        async with Publisher(
            f"http://127.0.0.1:{proxy.port}",
            KEY,
            attempts=3,
            backoff=FAST,
            on_retry=lambda n, _: retries.append(n),
        ) as publisher:
            with pytest.raises(PublishUnavailable):
                await publisher.publish("r", "hi", sender="bot")
    assert retries == [2, 3]
    assert await stored(server, "r") == []


async def test_the_same_ref_given_twice_is_one_message(server: RunningServer) -> None:
    async with Publisher(server.url, KEY) as publisher:
        first = await publisher.publish("r", "final 2-1", sender="scores", ref="match-1-final")
        second = await publisher.publish("r", "final 2-1", sender="scores", ref="match-1-final")
    assert (first.duplicate, second.duplicate, second.id) == (False, True, first.id)
    assert await stored(server, "r") == [(first.id, "final 2-1")]


def test_the_repr_does_not_show_the_key() -> None:
    assert KEY not in repr(Publisher("http://127.0.0.1:1", KEY))
