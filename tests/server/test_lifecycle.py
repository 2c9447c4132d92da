"""A connection's life over real sockets: nothing it does outlives its socket."""

import asyncio
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from hubbub.client import ChatClient
from hubbub.core.autocork import HORIZON
from hubbub.server.connection import Connection
from hubbub.server.runner import RunningServer
from tests.conftest import StartServer
from tests.rawsocket import TEXT, WAIT, RawWebSocket, encode_frame

SMALL_SOCKET_BUFFER = 4096


def command(**event: object) -> bytes:
    return encode_frame(TEXT, orjson.dumps(event))


async def frozen_client(port: int) -> RawWebSocket:
    """A raw client with small buffers, so that once it stops reading the server's writes
    back up after a few kilobytes."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_SOCKET_BUFFER)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    stream = await asyncio.open_connection(sock=sock, limit=1024)
    return await RawWebSocket.connect(port, stream=stream)


def answers(ref: int) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event.get("ref") == ref


def connection_of(server: RunningServer, username: str) -> Connection:
    (connection,) = [c for c in server.node.connections if c.session.username == username]
    return connection


def shrink_send_buffer(connection: Connection) -> None:
    """Give the server's end of `connection` a small kernel send buffer, as on a path with
    little buffering: on loopback Linux grows it to 4 MB, which would take long to fill."""
    server_socket = connection._transport.get_extra_info("socket")
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SOCKET_BUFFER)


async def test_a_join_waiting_on_a_message_is_dropped_when_the_connection_is_given_up(
    start_server: StartServer, tmp_path: Path
) -> None:
    """The join of a connection with a message in flight waits until the store has it;
    meanwhile the connection is given up as a slow consumer (and leaves its rooms). When
    the wait ends, the join must not put it back in a room: nothing would ever take it
    out, and its username would stay in `online_users` for good."""
    data_dir = str(tmp_path / "data")
    server = await start_server(
        store="sqlite",
        data_dir=data_dir,
        max_message_size=4096,
        max_outbound_buffer=8192,
        rate=100_000,
        rate_burst=100_000,
        sqlite_busy_timeout=3 * WAIT,
    )
    async with (
        await ChatClient.connect(server.ws_url) as in_a,
        await ChatClient.connect(server.ws_url) as in_b,
    ):
        await in_a.join("a", "in_a")
        await in_b.join("b", "in_b")
        ghost = await frozen_client(server.port)
        churner = await RawWebSocket.connect(server.port)
        lock = sqlite3.connect(Path(data_dir) / "hubbub.db", isolation_level=None)
        try:
            ghost.write(command(type="join", room="a", username="ghost", ref="j"))
            await ghost.wait_for(lambda event: event.get("ref") == "j")
            connection = connection_of(server, "ghost")
            shrink_send_buffer(connection)
            ghost.stop_reading()
            lock.execute("BEGIN EXCLUSIVE")
            # One write, handled in one step: the typing notice shows it was read; the
            # message goes to the (locked) store, and the join waits for it.
            ghost.write(
                command(type="typing", room="a")
                + command(type="message", room="a", content="in flight", ref="m")
                + command(type="join", room="b", ref="j2")
            )
            await in_a.expect("typing", username="ghost")
            assert connection.publishing == 1
            # Presence churn in room a (frames nobody may shed) until ghost is given up;
            # each turn's share stays far below the limit for the members that read.
            turns = 0
            while not [e for e in in_a.pending("user_left") if e["username"] == "ghost"]:
                turns += 1
                assert turns < 500, "ghost was never given up"
                churner.write(
                    b"".join(
                        command(type="join", room="a", username="churner")
                        + command(type="leave", room="a")
                        for _ in range(40)
                    )
                    + command(type="ping", ref=turns)
                )
                await churner.wait_for(answers(turns))
            await in_a.expect("user_left", username="ghost")
            lock.execute("ROLLBACK")
            stored = await in_a.expect("message", content="in flight", timeout=WAIT)
            assert stored["from"] == "ghost"
            # The join has had its turn: ghost is in no room.
            async with await ChatClient.connect(server.ws_url) as late:
                await late.join("b", "late")
                users = await late.expect("online_users", room="b")
                assert users["users"] == ["in_b", "late"]
            assert "ghost" not in [e["username"] for e in in_b.pending("user_joined")]
            assert connection not in server.node.connections
            assert all(
                connection not in server.node.hub.members(room) for room in server.node.hub.rooms()
            )
        finally:
            lock.close()
            await churner.close()
            await ghost.close()
        assert in_a.close_code is None
        assert in_b.close_code is None


async def test_stop_leaves_no_timer_of_the_server_armed(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A coalesced presence update and a busy member's flush window are pending when the
    server stops: stopping cancels them rather than leaving them to fire later."""
    loop = asyncio.get_running_loop()
    armed: list[tuple[Callable[..., object], asyncio.TimerHandle]] = []
    call_later, call_at = loop.call_later, loop.call_at

    def recording_call_later(
        delay: float, callback: Callable[..., object], *args: Any, **kwargs: Any
    ) -> Any:
        handle = call_later(delay, callback, *args, **kwargs)
        armed.append((callback, handle))
        return handle

    def recording_call_at(
        when: float, callback: Callable[..., object], *args: Any, **kwargs: Any
    ) -> Any:
        handle = call_at(when, callback, *args, **kwargs)
        armed.append((callback, handle))
        return handle

    monkeypatch.setattr(loop, "call_later", recording_call_later)
    monkeypatch.setattr(loop, "call_at", recording_call_at)
    server = await start_server(presence_interval=30.0, flush_delay=1.0)
    ann = await RawWebSocket.connect(server.port)
    bob = await RawWebSocket.connect(server.port)
    try:
        for client, name in ((ann, "ann"), (bob, "bob")):
            # bob's arrival is within the interval: its update waits 30 s.
            client.write(command(type="join", room="r", username=name, ref=0))
            await client.wait_for(answers(0))
        # As if the loop had just spent a while writing: bob's frames wait in windows.
        cork = server.node.flusher.cork
        assert cork is not None
        now = time.perf_counter()
        cork.wrote(now - HORIZON, now)
        for ref in range(1, 6):
            ann.write(command(type="message", room="r", content=f"m{ref}", ref=ref))
            await ann.wait_for(answers(ref))
        await server.stop()
    finally:
        await ann.close()
        await bob.close()

    def ours(callback: Callable[..., object]) -> bool:
        return str(getattr(callback, "__module__", "")).startswith("hubbub.")

    pending = [
        callback.__qualname__
        for callback, handle in armed
        if ours(callback) and not handle.cancelled() and handle.when() > loop.time()
    ]
    assert pending == []
    assert {callback.__qualname__ for callback, _ in armed if ours(callback)} >= {
        "Rooms._list_due",
        "Flusher._flush_due",
    }
