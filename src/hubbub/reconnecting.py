"""A client that survives dropped connections without losing or repeating a message.

    async with ReconnectingClient("ws://127.0.0.1:3000/ws", "alice") as chat:
        await chat.join("general")
        message_id = await chat.say("general", "hello")
        event = await chat.receive()

On a drop it reconnects with exponential backoff and jitter, rejoins every
room with `since` (the last id it delivered there), and re-sends every
message not yet acknowledged with its original `ref`, which the server
stores once. Chat messages are delivered once each, in id order per room.
"""

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from hubbub.client import ServerError
from hubbub.protocol.codecs import JSON, MSGPACK, Codec

log = logging.getLogger("hubbub.client")

Event = dict[str, Any]

RETRYABLE = frozenset({"unavailable", "rate_limited"})
"""Error codes after which a message is sent again later instead of failing."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: exponential, capped, with random jitter."""

    initial: float = 0.2
    maximum: float = 10.0
    factor: float = 2.0
    jitter: float = 0.5
    """Up to this fraction of each delay is taken off at random, so that clients dropped
    together do not all come back at the same instant."""

    def delay(self, attempt: int, draw: Callable[[], float] = random.random) -> float:
        ceiling = min(self.maximum, self.initial * self.factor**attempt)
        return ceiling * (1 - self.jitter * draw())


@dataclass(slots=True)
class _Outgoing:
    event: Event
    done: "asyncio.Future[Event]"


@dataclass(slots=True)
class _Room:
    last_id: int
    """The highest message id delivered to the user in this room."""
    joined: "asyncio.Future[Event]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ReconnectingClient:
    def __init__(
        self,
        url: str,
        username: str,
        *,
        msgpack: bool = False,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.url = url
        self.username = username
        self._codec: Codec = MSGPACK if msgpack else JSON
        self._backoff = backoff
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._rooms: dict[str, _Room] = {}
        self._unacked: dict[str, _Outgoing] = {}
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._resends: set[asyncio.Task[None]] = set()
        self.connections = 0
        """How many times a connection was established (1 + reconnections)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self, timeout: float = 10.0) -> None:
        """Connect (retrying) and return once connected."""
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run())
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        for task in (self._task, *self._resends):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._http is not None:
            await self._http.close()

    # --- what users call ---------------------------------------------------------------

    async def join(self, room: str, timeout: float = 10.0) -> Event:
        """Join `room` from its newest message on; rejoined after every reconnection."""
        if room not in self._rooms:
            self._rooms[room] = _Room(await self._latest_id(room))
            if self._connected.is_set():
                await self._send(self._join_event(room))
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._rooms[room].joined)

    async def say(self, room: str, content: str, timeout: float = 30.0) -> int:
        """Post a message; returns its id once the server stored it, across reconnections."""
        ref = f"m-{uuid.uuid4().hex}"
        outgoing = _Outgoing(
            {"type": "message", "room": room, "content": content, "ref": ref},
            asyncio.get_running_loop().create_future(),
        )
        self._unacked[ref] = outgoing
        if self._connected.is_set():
            await self._send(outgoing.event)
        try:
            async with asyncio.timeout(timeout):
                ack = await outgoing.done
        finally:
            self._unacked.pop(ref, None)
        return int(ack["id"])

    async def receive(self, timeout: float = 5.0) -> Event:
        """The next event: chat messages once each and in order, and presence and typing."""
        async with asyncio.timeout(timeout):
            return await self._events.get()

    # --- the connection ------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._serve_one_connection()
                attempt = 0
            except (aiohttp.ClientError, OSError, TimeoutError) as error:
                log.debug("connection to %s failed: %s", self.url, error)
            if self._closing:
                return
            delay = self._backoff.delay(attempt)
            attempt += 1
            log.info("reconnecting to %s in %.2fs", self.url, delay)
            await asyncio.sleep(delay)

    async def _serve_one_connection(self) -> None:
        assert self._http is not None
        protocols = ("msgpack",) if self._codec.binary else ()
        async with self._http.ws_connect(self.url, protocols=protocols, autoclose=False) as ws:
            self._ws = ws
            self.connections += 1
            for room in self._rooms:
                await self._send(self._join_event(room))
            for outgoing in list(self._unacked.values()):
                await self._send(outgoing.event)
            self._connected.set()
            try:
                async for frame in ws:
                    if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                        binary = frame.type is aiohttp.WSMsgType.BINARY
                        self._dispatch(self._codec.decode(frame.data, binary))
                    elif frame.type is aiohttp.WSMsgType.CLOSE:
                        break
            finally:
                self._connected.clear()
                self._ws = None

    async def _resend_later(self, outgoing: _Outgoing) -> None:
        await asyncio.sleep(self._backoff.delay(0))
        if not outgoing.done.done():
            await self._send(outgoing.event)

    def _join_event(self, room: str) -> Event:
        return {
            "type": "join",
            "room": room,
            "username": self.username,
            "since": self._rooms[room].last_id,
            "ref": f"join:{room}",
        }

    async def _send(self, event: Event) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            return
        payload = self._codec.encode(event)
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            if self._codec.binary:
                await ws.send_bytes(payload)
            else:
                await ws.send_str(payload.decode())

    async def _latest_id(self, room: str) -> int:
        """The room's newest id, so that a first join replays from there: no gap, no backlog."""
        assert self._http is not None
        ws_url = URL(self.url)
        scheme = "https" if ws_url.scheme == "wss" else "http"
        path = ws_url.path.removesuffix("/ws") + f"/rooms/{room}/messages"
        url = ws_url.with_scheme(scheme).with_path(path).with_query({"limit": "1"})
        token = ws_url.query.get("token")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._http.get(url, headers=headers) as response:
            response.raise_for_status()
            page = await response.json()
        return max((int(m["id"]) for m in page["messages"]), default=0)

    def _dispatch(self, event: Event) -> None:
        kind = event.get("type")
        ref = event.get("ref")
        if kind == "message":
            room = self._rooms.get(event.get("room", ""))
            if room is None or event["id"] <= room.last_id:
                return
            room.last_id = event["id"]
            self._events.put_nowait(event)
        elif kind in ("ack", "error") and isinstance(ref, str):
            self._settle(ref, event)
        elif kind not in ("welcome", "pong", "history"):
            self._events.put_nowait(event)

    def _settle(self, ref: str, reply: Event) -> None:
        if ref.startswith("join:"):
            room = self._rooms.get(ref.removeprefix("join:"))
            if room is not None and not room.joined.done():
                if reply["type"] == "ack":
                    room.joined.set_result(reply)
                else:
                    room.joined.set_exception(ServerError(reply))
            return
        outgoing = self._unacked.get(ref)
        if outgoing is None or outgoing.done.done():
            return
        if reply["type"] == "ack":
            outgoing.done.set_result(reply)
        elif reply.get("code") in RETRYABLE:
            resend = asyncio.create_task(self._resend_later(outgoing))
            self._resends.add(resend)
            resend.add_done_callback(self._resends.discard)
        else:
            outgoing.done.set_exception(ServerError(reply))
