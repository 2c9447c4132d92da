"""Durable history over real sockets: restarts, replay with `since`, retries, failures."""

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from hubbub.client import ChatClient, ServerError
from hubbub.server.runner import RunningServer
from tests.conftest import Connect, StartServer
from tests.server.reading import every_read_path


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    return str(tmp_path / "data")


async def contents_by_read_path(server: RunningServer, room: str) -> dict[str, list[str]]:
    """Each read path's messages (see `every_read_path`), by content only."""
    paths = await every_read_path(server, room)
    return {path: [m["content"] for m in messages] for path, messages in paths.items()}


EXACT_CONTENTS = [
    "    def f():\n\treturn 1\n",
    "  leading and trailing  ",
    "\n\nblank lines first",
    "\r\nwindows line\r\n",
    "\u202eright-to-left override, kept: the page isolates it",
]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_content_is_stored_and_delivered_exactly_as_sent(
    start_server: StartServer, data_dir: str, store: str
) -> None:
    """Trimming only decides validity: indentation, spaces and newlines are the user's,
    live, in history, in replay and over HTTP."""
    server = await start_server(store=store, data_dir=data_dir)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
    ):
        await ann.join("r", "ann")
        await bob.join("r", "bob")
        for content in EXACT_CONTENTS:
            await ann.say(content)
        live = [(await bob.expect("message"))["content"] for _ in EXACT_CONTENTS]
        assert live == EXACT_CONTENTS
    paths = await contents_by_read_path(server, "r")
    assert paths == {"history": EXACT_CONTENTS, "replay": EXACT_CONTENTS, "http": EXACT_CONTENTS}


@pytest.mark.parametrize("store", ["memory", "sqlite"])
@pytest.mark.parametrize("control", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
async def test_content_with_control_characters_is_refused_and_nothing_is_kept(
    start_server: StartServer, data_dir: str, store: str, control: str
) -> None:
    """NUL was acked, broadcast whole, then stored cut short; BEL and ANSI escapes showed
    as boxes. They are refused before anything is stored or sent."""
    server = await start_server(store=store, data_dir=data_dir)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
    ):
        await ann.join("probe", "ann")
        await bob.join("probe", "bob")
        with pytest.raises(ServerError) as refused:
            await ann.say(f"before{control}after[31m")
        assert refused.value.code == "invalid_field"
        assert f"U+{ord(control):04X}" in refused.value.event["message"]
        assert await ann.say("next") == 1
        assert (await bob.expect("message"))["content"] == "next"
        assert not bob.pending("message")
        assert ann.close_code is None
    paths = await contents_by_read_path(server, "probe")
    assert paths == {"history": ["next"], "replay": ["next"], "http": ["next"]}


class SteadyPoster:
    """Posts one message after another (each awaiting its ack) until `stop` is set."""

    def __init__(self, poster: ChatClient, enough: int) -> None:
        self.posted: list[int] = []
        self.stop = asyncio.Event()
        self._enough = asyncio.Event()
        self._poster, self._count = poster, enough
        self.task = asyncio.create_task(self._post())

    async def _post(self) -> None:
        while not self.stop.is_set():
            self.posted.append(await self._poster.say(f"n{len(self.posted)}"))
            if len(self.posted) >= self._count:
                self._enough.set()

    async def until_enough(self) -> None:
        """Until `enough` messages are acked (within 10 s)."""
        async with asyncio.timeout(10):
            await self._enough.wait()


async def test_restart_keeps_history_and_ids(start_server: StartServer, data_dir: str) -> None:
    first = await start_server(store="sqlite", data_dir=data_dir)
    async with await ChatClient.connect(first.ws_url) as ann:
        await ann.join("r", "ann")
        ids = [await ann.say(f"before restart {n}") for n in range(3)]
    await first.stop()
    second = await start_server(store="sqlite", data_dir=data_dir)
    async with await ChatClient.connect(second.ws_url) as bob:
        await bob.join("r", "bob")
        await bob.send({"type": "history", "room": "r"})
        page = await bob.expect("history")
        assert [m["id"] for m in page["messages"]] == ids
        assert page["messages"][0]["content"] == "before restart 0"
        assert await bob.say("after restart") == ids[-1] + 1


async def test_join_since_replays_then_acks_with_counts(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("r", "ann")
    ids = [await ann.say(f"m{n}") for n in range(5)]
    ack = await bob.join("r", "bob", since=ids[1])
    assert ack["replayed"] == 3
    assert ack["truncated"] is False
    assert "reset" not in ack
    replay = [e for e in bob.received if e["type"] == "message"]
    assert [m["id"] for m in replay] == ids[2:]
    assert bob.received.index(replay[-1]) < bob.received.index(ack)


async def test_join_since_after_retention_reports_truncated(
    start_server: StartServer, data_dir: str
) -> None:
    first = await start_server(store="sqlite", data_dir=data_dir)
    async with await ChatClient.connect(first.ws_url) as ann:
        await ann.join("r", "ann")
        for n in range(6):
            await ann.say(f"m{n}")
    await first.stop()
    # retention runs when a server starts
    second = await start_server(store="sqlite", data_dir=data_dir, history_max_per_room=2)
    async with await ChatClient.connect(second.ws_url) as bob:
        ack = await bob.join("r", "bob", since=0)
        assert ack["truncated"] is True
        assert ack["replayed"] == 2
        assert [m["id"] for m in bob.received if m["type"] == "message"] == [5, 6]


async def test_rejoin_with_since_while_others_post_gives_every_id_once(
    start_server: StartServer, connect: Connect
) -> None:
    server = await start_server(rate=10_000, rate_burst=10_000)
    poster, watcher = await connect(server), await connect(server)
    await poster.join("busy", "poster")
    await watcher.join("busy", "watcher")
    steady = SteadyPoster(poster, enough=60)
    posted, stop, posting = steady.posted, steady.stop, steady.task
    seen = [(await watcher.expect("message"))["id"] for _ in range(20)]
    await watcher.close()
    await steady.until_enough()
    again = await connect(server)
    await again.join("busy", "watcher", since=seen[-1])
    live_from = posted[-1] + 10
    await again.expect("message", id=live_from, timeout=10)
    stop.set()
    await posting
    if posted[-1] != live_from:
        # (Equal when the poster saw its last ack only after the watcher saw that message.)
        await again.expect("message", id=posted[-1], timeout=10)
    rest = [e["id"] for e in again.received if e["type"] == "message"]
    assert seen + rest == list(range(1, posted[-1] + 1))


@pytest.mark.parametrize(("store", "kept"), [("memory", 0), ("sqlite", 3)])
async def test_join_since_beyond_the_newest_id_resets_the_clients_position(
    start_server: StartServer, tmp_path: Path, store: str, kept: int
) -> None:
    """A `--store memory` server restarted (nothing kept), or a SQLite store restored from
    an older backup (3 of 10 kept): a client's `since: 10` is beyond the room's newest id.
    It is acked with `reset` and live messages from the room's position follow; the floor
    used to hold them back, so the client saw nothing while its page said "Connected"."""
    first = await start_server(store=store, data_dir=str(tmp_path / "first"))
    backup = tmp_path / "backup"
    async with await ChatClient.connect(first.ws_url) as ann:
        await ann.join("r", "ann")
        for n in range(10):
            if n == kept and store == "sqlite":
                backup.mkdir()
                with (
                    closing(sqlite3.connect(tmp_path / "first" / "hubbub.db")) as source,
                    closing(sqlite3.connect(backup / "hubbub.db")) as copy,
                ):
                    source.backup(copy)
            await ann.say(f"old {n}")
    await first.stop()
    second = await start_server(store=store, data_dir=str(backup))
    async with (
        await ChatClient.connect(second.ws_url) as bob,
        await ChatClient.connect(second.ws_url) as ann,
    ):
        ack = await bob.join("r", "bob", since=10)
        assert ack["reset"] is True
        assert (ack["replayed"], ack["truncated"]) == (0, False)
        await ann.join("r", "ann")
        posted = [await ann.say(f"new {n}") for n in range(3)]
        assert posted == [kept + 1, kept + 2, kept + 3]
        live = [await bob.expect("message") for _ in posted]
        assert [(m["id"], m["content"]) for m in live] == [
            (kept + n + 1, f"new {n}") for n in range(3)
        ]
        again = await bob.join("r", since=posted[-1])
        assert "reset" not in again


async def test_a_reset_join_while_others_post_gets_every_later_id_once(
    start_server: StartServer, connect: Connect
) -> None:
    """Messages broadcast while the reset join reads the store are held, then delivered:
    after the ack the client sees consecutive ids, each once, up to the newest."""
    server = await start_server(rate=10_000, rate_burst=10_000)
    poster = await connect(server)
    await poster.join("busy", "poster")
    steady = SteadyPoster(poster, enough=20)
    posted, stop, posting = steady.posted, steady.stop, steady.task
    await steady.until_enough()
    late = await connect(server)
    ack = await late.join("busy", "late", since=10**9)
    assert ack["reset"] is True
    first_live = await late.expect("message", timeout=10)
    stop.set()
    await posting
    if first_live["id"] != posted[-1]:
        await late.expect("message", id=posted[-1], timeout=10)
    seen = [e["id"] for e in late.received if e["type"] == "message"]
    assert seen == list(range(seen[0], posted[-1] + 1))
    assert late.received.index(ack) < min(
        i for i, e in enumerate(late.received) if e["type"] == "message"
    )


async def test_retried_message_is_stored_and_broadcast_once(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("r", "ann")
    await bob.join("r", "bob")
    await ann.send({"type": "message", "content": "only once", "ref": "m-1"})
    first = await ann.expect("ack", ref="m-1")
    await ann.send({"type": "message", "content": "only once", "ref": "m-1"})
    second = await ann.expect("ack", ref="m-1")
    assert second["id"] == first["id"]
    marker = await ann.say("marker")
    await bob.expect("message", id=marker)
    assert [m["content"] for m in bob.received if m["type"] == "message"] == [
        "only once",
        "marker",
    ]


async def test_retry_from_a_new_connection_after_a_drop_is_deduplicated(
    connect: Connect,
) -> None:
    ann = await connect()
    await ann.join("r", "ann")
    await ann.send({"type": "message", "content": "did it arrive?", "ref": "x1"})
    first = await ann.expect("ack", ref="x1")
    await ann.close()
    again = await connect()
    await again.join("r", "ann")
    await again.send({"type": "message", "content": "did it arrive?", "ref": "x1"})
    assert (await again.expect("ack", ref="x1"))["id"] == first["id"]
    await again.send({"type": "history", "room": "r"})
    assert len((await again.expect("history"))["messages"]) == 1


async def test_locked_store_gives_unavailable_and_no_false_ack(
    start_server: StartServer, data_dir: str
) -> None:
    server = await start_server(store="sqlite", data_dir=data_dir, sqlite_busy_timeout=0.05)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
        aiohttp.ClientSession() as http,
    ):
        await ann.join("r", "ann")
        await bob.join("r", "bob")
        kept = await ann.say("before the lock")
        lock = sqlite3.connect(Path(data_dir) / "hubbub.db", isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            with pytest.raises(ServerError) as refused:
                await ann.say("while locked")
            assert refused.value.code == "unavailable"
            async with http.get(server.url + "/healthz") as response:
                assert response.status == 503
            lock.execute("ROLLBACK")
        finally:
            lock.close()
        async with http.get(server.url + "/healthz") as response:
            assert response.status == 200
        after = await ann.say("after the lock")
        assert after == kept + 1
        contents = [
            (await bob.expect("message"))["content"],
            (await bob.expect("message"))["content"],
        ]
        assert contents == ["before the lock", "after the lock"]
        assert not bob.pending("message")


async def test_pages_and_replays_larger_than_the_outbound_buffer_arrive_whole(
    start_server: StartServer,
) -> None:
    server = await start_server(rate=10_000, rate_burst=10_000, max_outbound_buffer=256 * 1024)
    wide = "漢" * 4000
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
    ):
        await ann.join("r", "ann")
        for _ in range(100):
            await ann.say(wide)
        await ann.send({"type": "history", "room": "r", "limit": 100})
        page = await ann.expect("history")
        assert len(page["messages"]) == 100
        ack = await bob.join("r", "bob", since=0)
        assert ack["replayed"] == 100
        assert [m["id"] for m in bob.received if m["type"] == "message"] == list(range(1, 101))
        assert bob.close_code is None


async def test_a_busy_rooms_messages_wait_for_the_commit_delay_and_a_quiet_rooms_do_not(
    start_server: StartServer, data_dir: str
) -> None:
    """`--sqlite-commit-delay` end to end: a busy room's messages are stored (so acked and
    broadcast) together once the delay has passed; a quiet room's message is stored at
    once and takes them along; every id still arrives once, in order."""
    delay = 0.5
    server = await start_server(store="sqlite", data_dir=data_dir, sqlite_commit_delay=delay)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
    ):
        await ann.join("quiet", "ann")
        await ann.join("busy", "ann")
        await bob.join("busy", "bob")
        loop = asyncio.get_running_loop()
        await ann.say("m0", room="busy")
        started = loop.time()
        for n in range(1, 4):
            await ann.send({"type": "message", "room": "busy", "content": f"m{n}"})
        await bob.expect("message", content="m3", timeout=5)
        assert loop.time() - started >= delay / 2
        for n in range(4, 7):
            await ann.send({"type": "message", "room": "busy", "content": f"m{n}"})
        started = loop.time()
        await ann.say("hello", room="quiet")
        await bob.expect("message", content="m6", timeout=delay / 2)
        assert loop.time() - started < delay / 2
        messages = [(e["id"], e["content"]) for e in bob.received if e["type"] == "message"]
        assert messages == [(n + 1, f"m{n}") for n in range(7)]
