"""Structured payloads (`data`, protocol 1.1) over real sockets: delivered live, kept
through history, replay and `GET /rooms/{name}/messages`, on every store."""

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from hubbub.client import ChatClient, ServerError
from hubbub.protocol.validation import MAX_DATA_BYTES
from hubbub.server.runner import RunningServer
from tests.conftest import StartServer
from tests.server.reading import every_read_path

TICK = {"symbol": "AAPL", "price": 191.2, "change": 0.004, "tags": ["nasdaq", None]}
ORDERED = {"z": 1, "a": {"y": [1.0, 2], "b": True}, "": "empty key"}
STORES = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=STORES)
async def server(
    request: pytest.FixtureRequest, start_server: StartServer, tmp_path: Path
) -> RunningServer:
    store = request.param
    if store == "postgresql":
        store = request.getfixturevalue("postgres_dsn")
    return await start_server(store=store, data_dir=str(tmp_path / "data"))


def deep(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def payloads(messages: list[dict[str, Any]]) -> list[bytes | None]:
    """Each message's data as JSON text (key order counts), None where it has none."""
    return [orjson.dumps(m["data"]) if "data" in m else None for m in messages]


async def test_data_reaches_json_and_msgpack_members_and_every_read_path(
    server: RunningServer,
) -> None:
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url, msgpack=True) as bob,
    ):
        await ann.join("ticker", "ann")
        await bob.join("ticker", "bob")
        await ann.say("AAPL 191.20 (+0.4%)", data=TICK)
        await bob.say("ordered", data=ORDERED)
        await ann.say("plain")
        await bob.say("a bare number", data=0)
        for member in (ann, bob):
            live = [await member.expect("message") for _ in range(4)]
            assert payloads(live) == [
                orjson.dumps(TICK),
                orjson.dumps(ORDERED),
                None,
                b"0",
            ]
            assert live[0]["content"] == "AAPL 191.20 (+0.4%)"
    paths = await every_read_path(server, "ticker")
    expected = [orjson.dumps(TICK), orjson.dumps(ORDERED), None, b"0"]
    assert {name: payloads(messages) for name, messages in paths.items()} == {
        "history": expected,
        "replay": expected,
        "http": expected,
    }


async def test_a_message_without_data_is_the_same_frame_as_before(server: RunningServer) -> None:
    """Seed clients see exactly the fields they know: no `"data": null`."""
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as raw:
        await raw.receive_json(timeout=5)
        await raw.send_json({"type": "join", "room": "r", "username": "ann"})
        await raw.send_json({"type": "message", "room": "r", "content": "hi", "data": None})
        async with asyncio.timeout(5):
            while (frame := await raw.receive_str())[:17] != '{"type":"message"':
                pass
    message = orjson.loads(frame)
    assert frame == orjson.dumps(message).decode()
    assert list(message) == ["type", "id", "room", "from", "content", "timestamp"]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ("x" * MAX_DATA_BYTES, "at most 16384 bytes"),
        (deep(33), "nested at most 32"),
    ],
)
async def test_data_too_large_or_too_deep_is_refused_and_nothing_is_stored(
    server: RunningServer, data: object, why: str
) -> None:
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
    ):
        await ann.join("r", "ann")
        await bob.join("r", "bob")
        with pytest.raises(ServerError) as refused:
            await ann.say("too much", data=data)
        assert refused.value.code == "invalid_field"
        assert why in refused.value.event["message"]
        assert await ann.say("next", data={"ok": True}) == 1
        assert (await bob.expect("message"))["data"] == {"ok": True}
        assert not bob.pending("message")
        assert ann.close_code is None
    paths = await every_read_path(server, "r")
    assert [m["content"] for m in paths["http"]] == ["next"]


async def test_data_that_msgpack_carries_but_json_cannot_is_refused(
    server: RunningServer,
) -> None:
    async with await ChatClient.connect(server.ws_url, msgpack=True) as ann:
        await ann.join("r", "ann")
        for data in (b"\x00bytes", {1: "integer key"}, float("nan")):
            with pytest.raises(ServerError) as refused:
                await ann.say("odd", data=data)
            assert refused.value.code == "invalid_field"
        assert await ann.say("fine", data={"n": 1}) == 1
