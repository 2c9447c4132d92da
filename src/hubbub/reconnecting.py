"""A client that survives dropped connections without losing or repeating a message.

    async with ReconnectingClient("ws://127.0.0.1:3000/ws", "alice") as chat:
        await chat.join("general")
        message_id = await chat.say("general", "hello")
        event = await chat.receive()

On a drop it reconnects with exponential backoff and jitter, rejoins every
room with `since` (the last id it delivered there), and re-sends every
message not yet acknowledged with its original `ref`, which the server
stores once. Chat messages are delivered once each, in id order per room.

Each room's messages go out one at a time, in the order `say` was called, so a
message refused for the rate limit cannot be overtaken by the next one. After
a `rate_limited` the client waits the error's `retry_after` and then spaces
its messages by it (see `Pacer`): a burst is slowed to the server's rate
instead of being refused until the server closes the connection for abuse.

`join(room, watch=True)` follows a room as a watcher (protocol 1.1): its
messages, with the same guarantees, and no presence; rejoins keep the mode.

A server with an auth secret needs a token: pass `token=`, a string or a
function (plain or async) that returns one, called before every connection
so that a long-lived client can fetch a fresh token when the old one expires.
"""

import asyncio
import contextlib
import logging
import math
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from hubbub.client import ServerError
from hubbub.protocol.codecs import JSON, MSGPACK, Codec

log = logging.getLogger("hubbub.client")

Event = dict[str, Any]
Token = str | Callable[[], str] | Callable[[], Awaitable[str]]
"""A token, or a function returning a fresh one (called before each connection)."""

RETRYABLE = frozenset({"unavailable", "rate_limited"})
"""Error codes after which an event is sent again later instead of failing."""

PACE_MEMORY_SECONDS = 10.0
"""How long after the last `rate_limited` the client keeps spacing its messages."""


class ServerRefused(Exception):
    """The server refused the WebSocket upgrade (a missing or bad token: 401; origin: 403)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"the server refused the connection: HTTP {status} {reason}")
        self.status = status


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
class Pacer:
    """When the next message may be sent, from what the server's `rate_limited` errors said.

    Nothing is sent before the latest `retry_after` has passed. A `retry_after`
    is at most the time the server's bucket takes to refill one token, and the
    first refusal of a burst (an empty bucket) says almost exactly that; so for
    `PACE_MEMORY_SECONDS` after a refusal, messages are spaced by the longest
    `retry_after` seen. Waiting alone would not do: a client that sends again at
    once after each accepted message is refused every other time, and refusals
    that come faster than the server forgives them end in a 1008 close.
    """

    resume_at: float = 0.0
    interval: float = 0.0
    pacing_until: float = -math.inf
    last_sent: float = -math.inf

    def refused(self, retry_after: float, now: float) -> None:
        self.resume_at = max(self.resume_at, now + retry_after)
        kept = self.interval if now < self.pacing_until else 0.0
        self.interval = max(kept, retry_after)
        self.pacing_until = now + PACE_MEMORY_SECONDS

    def pause(self, delay: float, now: float) -> None:
        """Send nothing for `delay` seconds (the server is unavailable), without pacing after."""
        self.resume_at = max(self.resume_at, now + delay)

    def sent(self, now: float) -> None:
        self.last_sent = now

    def next_send_at(self, now: float) -> float:
        if now < self.pacing_until:
            return max(self.resume_at, self.last_sent + self.interval)
        return self.resume_at


@dataclass(slots=True)
class _Outgoing:
    event: Event
    done: "asyncio.Future[Event]"
    in_flight: bool = False
    """Sent on the current connection and not yet answered."""


@dataclass(slots=True)
class _Room:
    last_id: int
    """The highest message id delivered to the user in this room."""
    joined: "asyncio.Future[Event]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    outbox: deque[_Outgoing] = field(default_factory=deque)
    """Messages not yet acknowledged, oldest first; only the oldest is ever in flight."""
    watch: bool = False
    """Joined as a watcher: messages only, no presence, nothing to say."""


class ReconnectingClient:
    def __init__(
        self,
        url: str,
        username: str,
        *,
        token: Token | None = None,
        msgpack: bool = False,
        backoff: Backoff = Backoff(),
    ) -> None:
        self.url = url
        self.username = username
        self._token_source = token
        self._token: str | None = URL(url).query.get("token")
        self._codec: Codec = MSGPACK if msgpack else JSON
        self._backoff = backoff
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._rooms: dict[str, _Room] = {}
        self._unacked: dict[str, _Outgoing] = {}
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._outbox_changed = asyncio.Event()
        self._pacer = Pacer()
        self._closing = False
        self._refused: ServerRefused | None = None
        self._task: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
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
        """Connect (retrying) and return once connected.

        Raises `ServerRefused` at once when the server refuses the first
        connection's upgrade (401, 403): waiting would not change its mind.
        """
        self._http = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._run())
        connected = asyncio.create_task(self._connected.wait())
        try:
            async with asyncio.timeout(timeout):
                await asyncio.wait({connected, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
        if self._refused is not None:
            await self.close()
            raise self._refused

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        for task in (self._task, *self._timers):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._http is not None:
            await self._http.close()

    # --- what users call ---------------------------------------------------------------

    async def join(self, room: str, timeout: float = 10.0, *, watch: bool = False) -> Event:
        """Join `room` from its newest message on; rejoined after every reconnection.

        With `watch`, as a watcher. Joining a joined room in the other mode switches
        modes (the server moves the connection without a gap in its messages)."""
        state = self._rooms.get(room)
        before: tuple[bool, asyncio.Future[Event]] | None = None
        if state is None:
            state = self._rooms[room] = _Room(await self._latest_id(room), watch=watch)
            if self._connected.is_set():
                await self._send(self._join_event(room))
        elif state.watch != watch:
            before = (state.watch, state.joined)
            state.watch = watch
            state.joined = asyncio.get_running_loop().create_future()
            if self._connected.is_set():
                await self._send(self._join_event(room))
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(state.joined)
        except ServerError:
            if before is not None:
                # The switch was refused (the room is full): the server kept the
                # connection in the room as it was.
                state.watch, state.joined = before
            raise

    async def say(self, room: str, content: str, timeout: float = 30.0) -> int:
        """Post a message; returns its id once the server stored it, across reconnections.

        Messages to a room are sent in the order of the calls, one at a time."""
        if room not in self._rooms:
            raise ValueError(f"join {room!r} before saying something there")
        if self._rooms[room].watch:
            raise ValueError(f"{room!r} is only watched: join it without watch to say something")
        ref = f"m-{uuid.uuid4().hex}"
        outgoing = _Outgoing(
            {"type": "message", "room": room, "content": content, "ref": ref},
            asyncio.get_running_loop().create_future(),
        )
        outbox = self._rooms[room].outbox
        self._unacked[ref] = outgoing
        outbox.append(outgoing)
        self._outbox_changed.set()
        try:
            async with asyncio.timeout(timeout):
                ack = await outgoing.done
        finally:
            self._unacked.pop(ref, None)
            with contextlib.suppress(ValueError):
                outbox.remove(outgoing)
            self._outbox_changed.set()
        return int(ack["id"])

    async def receive(self, timeout: float = 5.0) -> Event:
        """The next event: chat messages once each and in order, and presence and typing.

        After a rejoin whose ack says `reset` (the server's store went back to an
        older state), `{"type": "reset", "room": R}` comes first: the ids of R
        start over, and those seen before mean nothing any more."""
        async with asyncio.timeout(timeout):
            return await self._events.get()

    # --- the connection ------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._serve_one_connection()
                attempt = 0
            except aiohttp.WSServerHandshakeError as error:
                refused = ServerRefused(error.status, await self._refusal_reason(error))
                if self.connections == 0 and error.status in (401, 403):
                    self._refused = refused
                    return
                log.warning("%s: %s", self.url, refused)
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
        url = await self._connection_url()
        async with self._http.ws_connect(url, protocols=protocols, autoclose=False) as ws:
            self._ws = ws
            self.connections += 1
            for room in self._rooms:
                await self._send(self._join_event(room))
            sender = asyncio.create_task(self._send_outboxes())
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
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender
                for outgoing in self._unacked.values():
                    outgoing.in_flight = False

    async def _connection_url(self) -> URL:
        url = URL(self.url)
        source = self._token_source
        if source is None:
            return url
        if isinstance(source, str):
            token = source
        else:
            made = source()
            token = made if isinstance(made, str) else await made
        self._token = token
        return url.update_query(token=token)

    async def _refusal_reason(self, error: aiohttp.WSServerHandshakeError) -> str:
        """Why the server refused the upgrade: its refusals carry the reason in a JSON body,
        which the WebSocket handshake does not keep, so the same URL is asked over HTTP."""
        assert self._http is not None
        with contextlib.suppress(aiohttp.ClientError, ValueError, OSError):
            url = error.request_info.real_url
            async with self._http.get(url.with_scheme(url.scheme.replace("ws", "http"))) as answer:
                body = await answer.json(content_type=None)
                reason = body.get("error") if isinstance(body, dict) else None
                if isinstance(reason, str):
                    return reason
        return error.message

    async def _send_outboxes(self) -> None:
        """Sends the oldest waiting message of each room, when the pacer allows."""
        loop = asyncio.get_running_loop()
        while True:
            self._outbox_changed.clear()
            wait: float | None = None
            for room in list(self._rooms.values()):
                if not room.outbox or room.outbox[0].in_flight:
                    continue
                now = loop.time()
                send_at = self._pacer.next_send_at(now)
                if send_at > now:
                    wait = send_at - now
                    break
                head = room.outbox[0]
                head.in_flight = True
                self._pacer.sent(now)
                await self._send(head.event)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._outbox_changed.wait()

    def _send_later(self, delay: float, event: Event) -> None:
        async def send() -> None:
            await asyncio.sleep(delay)
            await self._send(event)

        task = asyncio.create_task(send())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    def _join_event(self, room: str) -> Event:
        state = self._rooms[room]
        event: Event = {
            "type": "join",
            "room": room,
            "username": self.username,
            "since": state.last_id,
            "ref": f"join:{room}",
        }
        if state.watch:
            event["watch"] = True
        return event

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
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
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
            if ref.startswith("join:"):
                self._settle_join(ref.removeprefix("join:"), event)
            else:
                self._settle(ref, event)
        elif kind not in ("welcome", "pong", "history"):
            self._events.put_nowait(event)

    def _retry_delay(self, reply: Event, now: float) -> float:
        """How long to wait before sending a refused event again; paces after `rate_limited`."""
        retry_after = ServerError(reply).retry_after
        delay = retry_after if retry_after is not None else self._backoff.delay(0)
        delay = max(0.0, delay)
        if reply.get("code") == "rate_limited":
            self._pacer.refused(delay, now)
        else:
            self._pacer.pause(delay, now)
        return delay

    def _settle_join(self, name: str, reply: Event) -> None:
        room = self._rooms.get(name)
        if room is None:
            return
        if reply["type"] == "ack":
            if reply.get("reset") is True:
                room.last_id = 0
                self._events.put_nowait({"type": "reset", "room": name})
            if not room.joined.done():
                room.joined.set_result(reply)
        elif reply.get("code") in RETRYABLE:
            delay = self._retry_delay(reply, asyncio.get_running_loop().time())
            self._send_later(delay, self._join_event(name))
        elif not room.joined.done():
            room.joined.set_exception(ServerError(reply))
        else:
            self._events.put_nowait(reply)

    def _settle(self, ref: str, reply: Event) -> None:
        outgoing = self._unacked.get(ref)
        if outgoing is None or outgoing.done.done():
            return
        outgoing.in_flight = False
        self._outbox_changed.set()
        if reply.get("code") in RETRYABLE:
            self._retry_delay(reply, asyncio.get_running_loop().time())
            return
        room = self._rooms.get(outgoing.event["room"])
        if room is not None:
            with contextlib.suppress(ValueError):
                room.outbox.remove(outgoing)
        if reply["type"] == "ack":
            outgoing.done.set_result(reply)
        else:
            outgoing.done.set_exception(ServerError(reply))
