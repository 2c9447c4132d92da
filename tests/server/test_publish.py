"""`POST /rooms/{name}/messages` over real sockets: every refusal of the contract, and a
published message reaching members as an ordinary `message`, in order."""

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from hubbub.client import ChatClient
from hubbub.protocol.validation import MAX_DATA_BYTES
from hubbub.server.runner import RunningServer
from tests.conftest import SpawnServer, StartServer, metric

KEY = "k3y-0f-the-backend-0123456789abcdef"
OLD_KEY = "old-key-being-rotated-out-0123456"


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server(api_key=(KEY,))


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession,
    server: RunningServer,
    room: str,
    body: object = None,
    *,
    key: str | None = KEY,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """POST to the publish route: its status, its JSON body (text when not JSON), headers."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else orjson.dumps(body)
    async with http.post(
        f"{server.url}/rooms/{room}/messages", data=data, headers=sent
    ) as response:
        text = await response.text()
        try:
            answer = orjson.loads(text)
        except orjson.JSONDecodeError:
            answer = text
        return response.status, answer, dict(response.headers)


def refusal(answer: Any, code: str) -> str:
    """The error's message, once the answer is checked to have the contract's shape."""
    assert set(answer) == {"error"}
    assert set(answer["error"]) == {"code", "message"}
    assert answer["error"]["code"] == code
    message: str = answer["error"]["message"]
    return message


async def test_a_published_message_reaches_members_as_an_ordinary_message(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url, msgpack=True) as bob,
    ):
        await ann.join("orders", "ann")
        await bob.join("orders", "bob")
        data = {"order": 1042, "status": "shipped"}
        status, answer, _ = await post(
            http, server, "orders", {"content": "Order 1042 shipped", "from": "shop", "data": data}
        )
        assert status == 201
        assert set(answer) == {"id", "room", "timestamp"}
        assert (answer["id"], answer["room"]) == (1, "orders")
        for member in (ann, bob):
            event = await member.expect("message")
            assert event == {
                "type": "message",
                "id": answer["id"],
                "room": "orders",
                "from": "shop",
                "content": "Order 1042 shipped",
                "timestamp": answer["timestamp"],
                "data": data,
            }
        status, answer, _ = await post(http, server, "orders", {"content": "plain", "from": "shop"})
        assert status == 201
        assert "data" not in await ann.expect("message")


async def test_members_get_published_and_posted_messages_in_id_order(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(api_key=(KEY,), rate=10_000, rate_burst=10_000)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
    ):
        await ann.join("r", "ann")
        await bob.join("r", "bob")

        async def publish_many() -> list[int]:
            ids = []
            for n in range(40):
                status, answer, _ = await post(
                    http, server, "r", {"content": f"p{n}", "from": "bot", "data": {"n": n}}
                )
                assert status == 201
                ids.append(answer["id"])
            return ids

        async def say_many() -> list[int]:
            return [await ann.say(f"w{n}") for n in range(40)]

        published, said = await asyncio.gather(publish_many(), say_many())
        assert published == sorted(published)
        assert sorted(published + said) == list(range(1, 81))
        received = [await bob.expect("message") for _ in range(80)]
        assert [e["id"] for e in received] == list(range(1, 81))
        by_bot = [e for e in received if e["from"] == "bot"]
        assert [e["data"]["n"] for e in by_bot] == list(range(40))
        assert [e["id"] for e in by_bot] == published


async def test_a_room_without_members_keeps_what_was_published(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer, _ = await post(
        http, server, "empty.room", {"content": "hello later", "from": "bot", "data": [1, 2]}
    )
    assert status == 201
    async with http.get(f"{server.url}/rooms/empty.room/messages") as response:
        listed = await response.json()
    assert [(m["id"], m["from"], m["content"], m["data"]) for m in listed["messages"]] == [
        (answer["id"], "bot", "hello later", [1, 2])
    ]
    async with await ChatClient.connect(server.ws_url) as late:
        ack = await late.join("empty.room", "late", since=0)
        assert ack["replayed"] == 1
        assert (await late.expect("message"))["data"] == [1, 2]


async def test_a_retry_answers_200_with_the_first_id_and_publishes_nothing(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with await ChatClient.connect(server.ws_url) as ann:
        await ann.join("r", "ann")
        body = {"content": "goal!", "from": "scores", "ref": "match-7-goal-3", "data": {"g": 3}}
        status, first, _ = await post(http, server, "r", body)
        assert status == 201
        retried = {**body, "content": "goal! (edited)", "data": {"g": 4}}
        status, again, _ = await post(http, server, "r", retried)
        assert (status, again) == (200, first)
        other_sender = await post(http, server, "r", {**body, "from": "other"})
        other_room = await post(http, server, "s", body)
        int_ref = await post(http, server, "r", {**body, "ref": 7})
        assert [answer[0] for answer in (other_sender, other_room, int_ref)] == [201, 201, 201]
        received = [await ann.expect("message") for _ in range(3)]
        assert [(e["from"], e["content"]) for e in received] == [
            ("scores", "goal!"),
            ("other", "goal!"),
            ("scores", "goal!"),
        ]
        assert await ann.say("marker") == 4
        assert (await ann.expect("message"))["content"] == "marker"
        assert ann.pending("message") == []


async def test_a_websocket_users_ref_and_a_backends_share_the_retry_window(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    """The contract's key is ref, from and room, whichever way the message came."""
    async with await ChatClient.connect(server.ws_url) as bot:
        await bot.join("r", "bot")
        await bot.send({"type": "message", "room": "r", "content": "hi", "ref": "same"})
        ack = await bot.expect("ack")
        status, answer, _ = await post(
            http, server, "r", {"content": "hi", "from": "bot", "ref": "same"}
        )
        assert (status, answer["id"]) == (200, ack["id"])


async def test_without_a_key_configured_the_route_does_not_exist(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server()
    status, answer, _ = await post(http, server, "r", {"content": "hi", "from": "bot"})
    async with http.post(f"{server.url}/no/such/route") as response:
        assert (
            (status, answer)
            == (response.status, await response.text())
            == (
                404,
                "404: Not Found",
            )
        )
    async with http.get(f"{server.url}/rooms/r/messages") as response:
        assert response.status == 200
        assert (await response.json())["messages"] == []


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer   ", f"Basic {KEY}", f"Token {KEY}", KEY],
)
async def test_without_a_bearer_key_the_answer_is_401(
    server: RunningServer, http: aiohttp.ClientSession, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    status, answer, sent = await post(
        http, server, "r", {"content": "hi", "from": "bot"}, key=None, headers=headers
    )
    assert status == 401
    assert "Bearer" in refusal(answer, "unauthorized")
    assert sent["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("key", ["wrong-key-0123456789abcdef", KEY[:-1], KEY + "x", KEY.upper()])
async def test_a_wrong_key_is_403_and_nothing_is_published(
    server: RunningServer, http: aiohttp.ClientSession, key: str
) -> None:
    status, answer, _ = await post(http, server, "r", {"content": "hi", "from": "bot"}, key=key)
    assert status == 403
    refusal(answer, "unauthorized")
    async with http.get(f"{server.url}/rooms/r/messages") as response:
        assert (await response.json())["messages"] == []


async def test_every_configured_key_is_accepted_so_keys_can_be_rotated(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    both = await start_server(api_key=(OLD_KEY, KEY))
    for key in (OLD_KEY, KEY):
        status, _, _ = await post(http, both, "r", {"content": "hi", "from": "bot"}, key=key)
        assert status == 201
    new_only = await start_server(api_key=(KEY,))
    status, _, _ = await post(http, new_only, "r", {"content": "hi", "from": "bot"}, key=OLD_KEY)
    assert status == 403


@pytest.mark.parametrize(
    ("room", "body", "field"),
    [
        ("r", {"content": "hi"}, "from"),
        ("r", {"content": "hi", "from": 5}, "from"),
        ("r", {"content": "hi", "from": "  "}, "from"),
        ("r", {"content": "hi", "from": "x" * 33}, "from"),
        ("r", {"content": "hi", "from": "bad\x07name"}, "from"),
        ("r", {"from": "bot"}, "content"),
        ("r", {"content": "   ", "from": "bot"}, "content"),
        ("r", {"content": "x" * 4001, "from": "bot"}, "content"),
        ("r", {"content": "bell\x07", "from": "bot"}, "content"),
        ("r", {"content": "hi", "from": "bot", "data": "x" * MAX_DATA_BYTES}, "data"),
        ("r", {"content": "hi", "from": "bot", "ref": "r" * 65}, "ref"),
        ("r", {"content": "hi", "from": "bot", "ref": [1]}, "ref"),
        ("bad room!", {"content": "hi", "from": "bot"}, "room"),
    ],
)
async def test_an_invalid_field_is_400_and_nothing_is_published(
    server: RunningServer, http: aiohttp.ClientSession, room: str, body: object, field: str
) -> None:
    async with await ChatClient.connect(server.ws_url) as ann:
        await ann.join("r", "ann")
        status, answer, _ = await post(http, server, room, body)
        assert status == 400
        assert field in refusal(answer, "invalid_field")
        assert await ann.say("marker") == 1
        assert (await ann.expect("message"))["content"] == "marker"


async def test_data_nested_too_deep_is_400(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    deep: object = "bottom"
    for _ in range(33):
        deep = {"d": deep}
    status, answer, _ = await post(http, server, "r", {"content": "x", "from": "b", "data": deep})
    assert status == 400
    assert "nested at most 32" in refusal(answer, "invalid_field")


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"content": "hi",}', b"\xff\xfe"])
async def test_a_body_that_is_not_json_is_400_bad_json(
    server: RunningServer, http: aiohttp.ClientSession, raw: bytes
) -> None:
    status, answer, _ = await post(http, server, "r", raw=raw)
    assert status == 400
    assert "JSON" in refusal(answer, "bad_json")


@pytest.mark.parametrize("body", [[], "text", 5, None])
async def test_a_body_that_is_not_an_object_is_400_bad_json(
    server: RunningServer, http: aiohttp.ClientSession, body: object
) -> None:
    status, answer, _ = await post(http, server, "r", body)
    assert status == 400
    assert "object" in refusal(answer, "bad_json")


async def test_a_body_over_the_size_limit_is_413(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(api_key=(KEY,), max_message_size=2048)
    fits = {"content": "x" * 1900, "from": "bot"}
    assert (await post(http, server, "r", fits))[0] == 201
    big = {"content": "x" * 2100, "from": "bot"}
    status, answer, _ = await post(http, server, "r", big)
    assert status == 413
    assert "2048 bytes" in refusal(answer, "too_large")

    async def chunks() -> Any:
        """A body of unknown length (chunked), larger than the limit."""
        for _ in range(10):
            yield b" " * 1000

    async with http.post(
        f"{server.url}/rooms/r/messages",
        data=chunks(),
        headers={"Authorization": f"Bearer {KEY}"},
    ) as response:
        assert response.status == 413
    async with http.get(f"{server.url}/rooms/r/messages") as response:
        assert len((await response.json())["messages"]) == 1


async def test_a_store_outage_is_503_and_the_retry_after_it_is_stored_once(
    start_server: StartServer, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    server = await start_server(
        api_key=(KEY,), store="sqlite", data_dir=str(data_dir), sqlite_busy_timeout=0.05
    )
    body = {"content": "during the outage", "from": "bot", "ref": "o-1"}
    async with await ChatClient.connect(server.ws_url) as ann:
        await ann.join("r", "ann")
        lock = sqlite3.connect(data_dir / "hubbub.db", isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            status, answer, headers = await post(http, server, "r", body)
            assert status == 503
            assert "store" in refusal(answer, "unavailable")
            assert headers["Retry-After"] == "1"
            lock.execute("ROLLBACK")
        finally:
            lock.close()
        assert ann.pending("message") == []
        status, first, _ = await post(http, server, "r", body)
        assert (status, first["id"]) == (201, 1)
        assert (await post(http, server, "r", body))[:2] == (200, first)
        assert (await ann.expect("message"))["content"] == "during the outage"
        assert await ann.say("marker") == 2


async def test_publishing_is_not_rate_limited_and_is_counted(
    start_server: StartServer, http: aiohttp.ClientSession
) -> None:
    server = await start_server(api_key=(KEY,), rate=1, rate_burst=1)
    statuses = await asyncio.gather(
        *(post(http, server, "r", {"content": f"m{n}", "from": "bot"}) for n in range(30))
    )
    assert [s[0] for s in statuses] == [201] * 30
    await post(http, server, "r", {"content": "m0", "from": "bot", "ref": 1})
    await post(http, server, "r", {"content": "m0", "from": "bot", "ref": 1})
    await post(http, server, "r", {"from": "bot"})
    await post(http, server, "r", {"content": "m0", "from": "bot"}, key=None)
    await post(http, server, "r", {"content": "m0", "from": "bot"}, key="x" * 20)
    async with http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    assert metric(text, "hubbub_messages_total") == 31
    for status, count in (("201", 31), ("200", 1), ("400", 1), ("401", 1), ("403", 1)):
        assert metric(text, f'hubbub_http_publishes_total{{status="{status}"}}') == count


async def test_keys_appear_in_no_log_line_and_no_metric(
    start_server: StartServer, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "a-wrong-key-someone-guessed-0123"
    with caplog.at_level(logging.DEBUG):
        server = await start_server(api_key=(OLD_KEY, KEY), log_level="debug")
        await post(http, server, "r", {"content": "ok", "from": "bot"})
        await post(http, server, "r", {"content": "ok", "from": "bot"}, key=wrong)
        await post(http, server, "r", {"content": "ok", "from": "bot"}, key=OLD_KEY)
        await post(http, server, "r", {"from": "bot"})
        await post(http, server, "r", raw=b"{", key=KEY)
        async with http.get(f"{server.url}/metrics") as response:
            metrics = await response.text()
        async with http.get(f"{server.url}/stats") as response:
            stats = await response.text()
    assert any(record.name.startswith("hubbub") for record in caplog.records)
    logged = "\n".join(
        f"{record.getMessage()} {record.exc_text or ''} {record.args!r}"
        for record in caplog.records
    )
    settings = server.node.settings
    for secret in (KEY, OLD_KEY, wrong):
        for where in (logged, metrics, stats, repr(settings), repr(server.node)):
            assert secret not in where
            assert secret[:12] not in where


async def test_a_served_process_logs_no_key_at_debug(
    spawn_server: SpawnServer, http: aiohttp.ClientSession
) -> None:
    wrong = "a-wrong-key-someone-guessed-0123"
    served = await spawn_server("--store", "memory", "--log-level", "debug", "--api-key", KEY)
    assert "publish API: on, 1 key" in served.first_line
    url = f"{served.url}/rooms/r/messages"
    for key in (KEY, wrong):
        async with http.post(
            url,
            json={"content": "hi", "from": "bot"},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            assert response.status in (201, 403)
    async with http.get(f"{served.url}/metrics") as response:
        metrics = await response.text()
    served.process.terminate()
    await asyncio.wait_for(served.process.wait(), 15)
    logged = served.first_line + await served.log()
    assert "stopped" in logged
    for secret in (KEY, wrong):
        assert secret[:12] not in logged
        assert secret[:12] not in metrics
