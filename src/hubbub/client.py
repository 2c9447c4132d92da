"""A small asyncio client for protocol v1, used by the tests, the benchmarks and scripts.

    async with await ChatClient.connect("ws://127.0.0.1:3000/ws") as chat:
        await chat.join("general", "alice")
        message_id = await chat.say("hello", room="general")
        event = await chat.expect("message")

Events are read in the background into a backlog. `receive` takes the oldest;
`expect` takes the oldest of a type (and fields), leaving the others in the
backlog for later; `request` sends an event with a fresh `ref` and takes its
`ack` or `error`. `received` keeps every event in arrival order.
"""

import asyncio
import contextlib
import itertools
import secrets
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import aiohttp

from hubbub.protocol.codecs import JSON, MSGPACK, Codec

Event = dict[str, Any]


class ServerError(Exception):
    """The server refused an event with an `error`."""

    def __init__(self, event: Event) -> None:
        super().__init__(f"{event.get('code')}: {event.get('message')}")
        self.code: str = event.get("code", "")
        self.event = event
        retry_after = event.get("retry_after")
        self.retry_after: float | None = (
            float(retry_after)
            if isinstance(retry_after, int | float) and not isinstance(retry_after, bool)
            else None
        )
        """For `rate_limited`: the seconds to wait before sending again."""


class ConnectionClosed(Exception):
    """The connection closed while an event was awaited."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"connection closed (code {code})")
        self.code = code


class ChatClient:
    def __init__(
        self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, codec: Codec
    ) -> None:
        self._http = http
        self.ws = ws
        self.codec = codec
        self._backlog: list[Event] = []
        self._arrived = asyncio.Event()
        self._closed = False
        self._close_code: int | None = None
        self._refs = itertools.count(1)
        self._ref_prefix = secrets.token_hex(6)
        """Refs differ between runs: the server deduplicates a user's refs for 5 minutes."""
        self.received: list[Event] = []
        self.welcome: Event = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        msgpack: bool = False,
        compress: bool = True,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
    ) -> Self:
        """Connect and wait for the `welcome` event (kept in `.welcome`)."""
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(
                url,
                protocols=("msgpack",) if msgpack else (),
                autoclose=False,
                compress=15 if compress else 0,
                headers=headers,
                max_msg_size=0,
            )
        except BaseException:
            await http.close()
            raise
        client = cls(http, ws, MSGPACK if ws.protocol == "msgpack" else JSON)
        try:
            client.welcome = await client.expect("welcome", timeout=timeout)
        except BaseException:
            await client.close()
            raise
        return client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame (or the library's, when none came)."""
        return self._close_code if self._close_code is not None else self.ws.close_code

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame.type is aiohttp.WSMsgType.TEXT or frame.type is aiohttp.WSMsgType.BINARY:
                    event = self.codec.decode(frame.data, frame.type is aiohttp.WSMsgType.BINARY)
                    self.received.append(event)
                    self._backlog.append(event)
                    self._arrived.set()
                elif frame.type is aiohttp.WSMsgType.CLOSE:
                    # Read the code before replying: a server may cut TCP right after its
                    # close frame, and then the library would only report 1006.
                    self._close_code = int(frame.data)
                    with contextlib.suppress(aiohttp.ClientError):
                        await self.ws.close()
        finally:
            self._closed = True
            self._arrived.set()

    async def send(self, event: Mapping[str, Any]) -> None:
        payload = self.codec.encode(dict(event))
        if self.codec.binary:
            await self.ws.send_bytes(payload)
        else:
            await self.ws.send_str(payload.decode())

    async def receive(self, timeout: float = 5.0) -> Event:
        """The oldest event not yet taken, whatever it is."""
        return await self._take(lambda event: True, timeout)

    async def expect(self, kind: str, timeout: float = 5.0, **fields: Any) -> Event:
        """The oldest event of type `kind` whose fields equal `fields`."""
        return await self._take(
            lambda event: (
                event.get("type") == kind
                and all(event.get(key) == value for key, value in fields.items())
            ),
            timeout,
        )

    async def request(self, event: Mapping[str, Any], timeout: float = 5.0) -> Event:
        """Send `event` with a fresh `ref`; return its `ack`, or raise `ServerError`."""
        ref = f"{self._ref_prefix}-{next(self._refs)}"
        await self.send({**event, "ref": ref})
        reply = await self._take(
            lambda event: event.get("ref") == ref and event.get("type") in ("ack", "error"),
            timeout,
        )
        if reply["type"] == "error":
            raise ServerError(reply)
        return reply

    def pending(self, kind: str | None = None) -> list[Event]:
        """Events received but not taken yet (of type `kind`, when given)."""
        return [event for event in self._backlog if kind is None or event.get("type") == kind]

    async def _take(self, wanted: Callable[[Event], bool], timeout: float) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for index, event in enumerate(self._backlog):
                    if wanted(event):
                        del self._backlog[index]
                        return event
                if self._closed:
                    raise ConnectionClosed(self.close_code)
                self._arrived.clear()
                await self._arrived.wait()

    async def join(
        self,
        room: str,
        username: str | None = None,
        since: int | None = None,
        *,
        watch: bool = False,
    ) -> Event:
        """Enter `room`; with `watch`, as a watcher: its messages only, no presence, no
        posting. Returns the join's ack."""
        event: Event = {"type": "join", "room": room}
        if username is not None:
            event["username"] = username
        if since is not None:
            event["since"] = since
        if watch:
            event["watch"] = True
        return await self.request(event)

    async def say(self, content: str, room: str | None = None, data: Any = None) -> int:
        """Post a message (with a structured `data` payload when given); returns its id
        once acknowledged."""
        event: Event = {"type": "message", "content": content}
        if room is not None:
            event["room"] = room
        if data is not None:
            event["data"] = data
        ack = await self.request(event)
        return int(ack["id"])

    async def leave(self, room: str | None = None) -> Event:
        event: Event = {"type": "leave"}
        if room is not None:
            event["room"] = room
        return await self.request(event)

    async def close(self) -> None:
        try:
            await self.ws.close()
            await self._reader
        finally:
            await self._http.close()
