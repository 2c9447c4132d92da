"""A soak: many connections, mixed traffic and random disconnects, then an exact audit.

    python -m tests.soak --spawn                    # 500 connections, 5 rooms, 60 s
    python -m tests.soak --url http://127.0.0.1:3000 --pid 12345

Every client joins one or two of the rooms and, until the time is up, posts
messages, types, asks for history, leaves and rejoins a room, and now and then
drops its connection (gracefully or by cutting the socket) and comes back,
rejoining with `since` = the last id it saw and re-sending what was not acked
with the same `ref`. Each client checks every message it gets against the one
before (a gap or a duplicate is counted where it happens). At the end each
client's ids per room must be exactly the room's stored ids (paged from
`GET /rooms/{room}/messages`), every acked message must be stored once with
its content, `/healthz` must have answered 200 every second, and, when the
server's pid is known, its RSS at the end must be within `rss_ratio` of its
RSS `rss_at` seconds into the traffic.

The clients are our own (aiohttp and a little bookkeeping), not
`ReconnectingClient`: that one drops duplicates before the caller sees them,
and the soak must see exactly what the server sent.
"""

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import re
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests.postgres import SERVER as POSTGRES_SERVER
from tests.postgres import admin as postgres_admin
from tests.postgres import drop_database
from tests.services import PrivateRedis, free_port, private_redis

Event = dict[str, Any]

REQUEST_TIMEOUT = 15.0
"""Seconds a client waits for the answer to one event before counting a problem."""
HEALTH_TIMEOUT = 2.0
SETTLE_TIMEOUT = 30.0
"""Seconds, after the traffic stops, for every client to have caught up with every room."""
ACCEPTABLE_CLOSES = frozenset({1000})
"""Server close codes that are not a problem (1000 answers our own close)."""


class Lost(Exception):
    """The connection dropped while a client was waiting for an answer."""


@dataclass
class SoakSettings:
    connections: int = 500
    rooms: int = 5
    duration: float = 60.0
    think: float = 3.0
    """Mean seconds between two actions of one client (exponentially distributed)."""
    second_room_share: float = 0.2
    """Of the clients, how many are in two rooms instead of one."""
    rss_at: float = 20.0
    rss_ratio: float = 1.5
    seed: int = 0
    connect_concurrency: int = 50
    chaos: bool = False
    """Nodes and Redis are stopped on purpose during the run (`--cluster`): `unavailable`,
    dropped connections and failed health checks are expected (counted, then recovered
    from by reconnecting), and only what was lost, repeated or out of order is a problem."""


@dataclass
class SoakReport:
    connections: int = 0
    rooms: int = 0
    duration: float = 0.0
    ramp_seconds: float = 0.0
    messages_sent: int = 0
    messages_acked: int = 0
    resends: int = 0
    messages_delivered: int = 0
    """Message events received by clients, live and replayed."""
    replayed: int = 0
    typing_sent: int = 0
    history_requests: int = 0
    leaves: int = 0
    disconnects: int = 0
    reconnects: int = 0
    stored: int = 0
    server_closes: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    duplicates: int = 0
    rss_at_mark_kib: int | None = None
    rss_end_kib: int | None = None
    rss_peak_kib: int | None = None
    health_checks: int = 0
    health_failures: int = 0
    health_slowest: float = 0.0
    problems: list[str] = field(default_factory=list)
    problem_kinds: Counter[str] = field(default_factory=Counter)
    """How many problems of each kind: `duplicate` (a message delivered twice), `gap`, ..."""
    nodes: int = 1
    chaos: list[str] = field(default_factory=list)
    """What was done to the cluster during the run, with when (`--cluster`)."""
    unavailable: int = 0
    """Requests refused with `unavailable` (each answered by reconnecting and re-sending)."""
    acked_undelivered: Counter[str] = field(default_factory=Counter)
    """Per client: acked messages of its rooms that it never received."""
    acked_unstored: int = 0
    server_errors: int = 0
    """ERROR/CRITICAL/Traceback lines in the nodes' logs (`--cluster`: not judged)."""
    traffic_started: float | None = None
    """time.monotonic() when the traffic began; with chaos, problems say when they were seen."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str, kind: str = "other") -> None:
        self.problem_kinds[kind] += 1
        if self.traffic_started is not None:
            text = f"[{time.monotonic() - self.traffic_started:.1f} s] {text}"
        if len(self.problems) < 50:
            self.problems.append(text)
        elif len(self.problems) == 50:
            self.problems.append("... (more problems not listed)")

    def summary(self) -> str:
        def mib(kib: int | None) -> str:
            return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"

        lines = [
            f"soak: {self.connections} connections in {self.rooms} rooms for {self.duration:.0f} s"
            f" (ramp-up {self.ramp_seconds:.1f} s)",
            f"  messages: {self.messages_sent} sent, {self.messages_acked} acked"
            f" ({self.resends} re-sent after a drop), {self.stored} stored,"
            f" {self.messages_delivered} delivered ({self.replayed} by replay)",
            f"  other: {self.typing_sent} typing, {self.history_requests} history requests,"
            f" {self.leaves} leave+rejoin, {self.disconnects} disconnects,"
            f" {self.reconnects} reconnects",
            f"  gaps: {self.gaps}, duplicates: {self.duplicates},"
            f" errors: {dict(self.errors) or 0}, server closes: {dict(self.server_closes) or 0}",
            f"  server RSS: {mib(self.rss_at_mark_kib)} at the mark, {mib(self.rss_end_kib)}"
            f" at the end, {mib(self.rss_peak_kib)} peak",
            f"  /healthz: {self.health_checks} checks, {self.health_failures} failures,"
            f" slowest {self.health_slowest * 1000:.0f} ms",
            "  result: " + ("OK" if self.ok else f"{len(self.problems)} problems"),
        ]
        if self.chaos:
            undelivered = sum(self.acked_undelivered.values())
            lines[1:1] = [
                f"  cluster: {self.nodes} nodes; "
                + "; ".join(self.chaos)
                + f"; {self.unavailable} requests refused `unavailable`",
                f"  acked but lost: {self.acked_unstored} not stored, {undelivered} (client,"
                f" message) pairs never delivered"
                f" ({len(self.acked_undelivered)} clients); server log errors:"
                f" {self.server_errors}",
            ]
            lines += [
                f"    acked, never delivered: {where}: {count}"
                for where, count in self.acked_undelivered.most_common(10)
            ]
        lines += [f"    - {problem}" for problem in self.problems]
        return "\n".join(lines)


def read_rss_kib(pid: int) -> int | None:
    """The process's resident set size from /proc (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclass
class Track:
    """One client's view of one room."""

    last: int = 0
    """The highest id delivered."""
    seen: list[int] = field(default_factory=list)
    member: bool = False
    repeating: bool = False
    """The last message was a duplicate: the next ones of the run are counted, not listed."""


class Soak:
    def __init__(self, url: str, settings: SoakSettings, nodes: list[str] | None = None) -> None:
        self.url = url.rstrip("/")
        self.ws_url = re.sub(r"^http", "ws", self.url) + "/ws"
        self.node_urls = [node.rstrip("/") for node in nodes or [url]]
        """Every node's http URL; a client connects to each in turn."""
        self.node_ws_urls = [re.sub(r"^http", "ws", node) + "/ws" for node in self.node_urls]
        self.calm = asyncio.Event()
        """Set when no more chaos is coming (at once without chaos)."""
        if not settings.chaos:
            self.calm.set()
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.token = secrets.token_hex(3)
        self.room_names = [f"soak-{self.token}-{n}" for n in range(settings.rooms)]
        self.report = SoakReport(
            connections=settings.connections,
            rooms=settings.rooms,
            duration=settings.duration,
            nodes=len(self.node_urls),
        )
        self.started = asyncio.Event()
        """Set once every client is connected and joined: the traffic begins."""
        self.stopping = asyncio.Event()
        self.progress = asyncio.Event()
        self.ready = 0
        self.all_ready = asyncio.Event()
        self.acked: dict[str, tuple[str, int, str, str]] = {}
        """ref -> (room, id, sender, content) of every acknowledged message."""
        self.http: aiohttp.ClientSession | None = None

    async def get_json(self, path: str) -> Any:
        assert self.http is not None
        async with self.http.get(self.url + path) as response:
            if response.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {response.status}")
            return await response.json()

    async def room_history(self, room: str) -> list[Event]:
        messages: list[Event] = []
        before = ""
        while True:
            page = await self.get_json(f"/rooms/{room}/messages?limit=100{before}")
            messages = page["messages"] + messages
            if not page["has_more"]:
                return messages
            before = f"&before={page['messages'][0]['id']}"


class SoakClient:
    def __init__(self, soak: Soak, index: int, rooms: list[str], rng: random.Random) -> None:
        self.soak = soak
        self.report = soak.report
        self.name = f"soak{index:04d}-{soak.token}"
        self.rng = rng
        self._opens = index
        """Which node the next connection goes to (modulo the nodes): each in turn."""
        self.tracks = {room: Track() for room in rooms}
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._refs = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Event]] = {}
        self.unacked: dict[str, tuple[str, str]] = {}
        """ref -> (room, content) of messages sent but not acknowledged yet."""
        self._history: Event | None = None
        self._closing = False
        self._posted = 0
        self.journal: deque[str] = deque(maxlen=12)
        """The client's last few events, quoted when something goes wrong."""

    # --- connection ----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, rejoin every room with `since`, re-send what was not acknowledged."""
        assert self.soak.http is not None
        urls = self.soak.node_ws_urls
        self._opens += 1
        ws = await self.soak.http.ws_connect(urls[self._opens % len(urls)], max_msg_size=0)
        async with asyncio.timeout(REQUEST_TIMEOUT):
            welcome = await ws.receive()
        if welcome.type is not aiohttp.WSMsgType.TEXT or '"welcome"' not in welcome.data:
            await ws.close()
            raise Lost(f"no welcome: {welcome}")
        self.ws, self._closing = ws, False
        self._reader = asyncio.create_task(self._read(ws))
        for room in self.tracks:
            await self.join(room)
        for ref, (room, content) in list(self.unacked.items()):
            self.report.resends += 1
            await self.post(room, content, ref)

    async def drop(self, abrupt: bool) -> None:
        """Our own disconnection: a close handshake, or the socket cut without one."""
        ws, reader = self.ws, self._reader
        self.ws, self._closing = None, True
        if ws is not None:
            if abrupt:
                sock = ws.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(aiohttp.ClientError, ConnectionError, TimeoutError):
                async with asyncio.timeout(5):
                    await ws.close()
        if reader is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await reader
            reader.cancel()
        for track in self.tracks.values():
            track.member = False  # (after the reader: what it still read was delivered)

    async def recover(self) -> None:
        """Come back after a drop, with backoff; the soak fails if that is impossible."""
        await self.drop(abrupt=False)
        failures: list[BaseException] = []
        while len(failures) < 8:
            await asyncio.sleep(min(5.0, 0.1 * 2 ** len(failures)) * (0.5 + self.rng.random()))
            try:
                await self.open()
            except (Lost, aiohttp.ClientError, OSError, TimeoutError) as error:
                await self.drop(abrupt=False)
                failures.append(error)
                continue
            self.report.reconnects += 1
            return
        self.report.problem(f"{self.name} could not reconnect: {failures[-1]!r}")
        raise Lost("gave up")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for frame in ws:
                if frame.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch(orjson.loads(frame.data))
        finally:
            if not self._closing:
                self.report.server_closes[ws.close_code or 1006] += 1
                if ws.close_code not in ACCEPTABLE_CLOSES and not self.soak.settings.chaos:
                    self.report.problem(f"{self.name}: server closed with {ws.close_code}")
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(Lost("connection dropped"))
            self._waiting.clear()

    def _dispatch(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "message":
            self._deliver(event)
            return
        self.journal.append(str(event)[:120])
        if kind in ("ack", "error") and "ref" in event:
            future = self._waiting.pop(str(event["ref"]), None)
            if future is not None and not future.done():
                future.set_result(event)
            else:
                self.report.problem(f"{self.name}: answer to no question {event}")
        elif kind == "error":
            self.report.errors[event.get("code", "?")] += 1
            self.report.problem(f"{self.name}: error without ref {event}")
        elif kind == "history":
            self._history = event

    def _deliver(self, message: Event) -> None:
        room, message_id = message.get("room"), message.get("id")
        track = self.tracks.get(str(room))
        if track is None or not track.member or not isinstance(message_id, int):
            self.report.problem(f"{self.name}: message for a room it is not in: {message}")
            return
        self.journal.append(f"got {room}#{message_id} from {message.get('from')}")
        if message_id <= track.last:
            self.report.duplicates += 1
            if track.repeating:
                self.report.problem_kinds["duplicate"] += 1
            else:
                self.report.problem(
                    f"{self.name}: duplicate {room}#{message_id} after {track.last};"
                    f" last events: {list(self.journal)}",
                    "duplicate",
                )
        elif message_id > track.last + 1:
            self.report.gaps += message_id - track.last - 1
            self.report.problem(
                f"{self.name}: gap in {room}: {track.last} -> {message_id};"
                f" last events: {list(self.journal)}",
                "gap",
            )
        track.repeating = message_id <= track.last
        track.last = max(track.last, message_id)
        track.seen.append(message_id)
        self.report.messages_delivered += 1
        self.soak.progress.set()

    async def send(self, event: Event, ref: str) -> "asyncio.Future[Event]":
        """Send `event` with `ref`: the future of its ack or error (Lost if the link drops)."""
        ws = self.ws
        if ws is None or ws.closed:
            raise Lost("not connected")
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiting[ref] = future
        self.journal.append(
            f"sent {event.get('type')} {event.get('room')} since={event.get('since')}"
        )
        try:
            await ws.send_str(orjson.dumps({**event, "ref": ref}).decode())
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as error:
            self._waiting.pop(ref, None)  # nobody will wait for its answer
            raise Lost(str(error)) from error
        return future

    async def request(self, event: Event, ref: str | None = None) -> Event:
        """Send `event` with a ref and wait for its ack or error."""
        future = await self.send(event, ref or f"{self.name}-{next(self._refs)}")
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                reply = await future
        except TimeoutError:
            self.report.problem(f"{self.name}: no answer to {event['type']} in time")
            raise Lost("timeout") from None
        if reply["type"] == "error":
            self.report.errors[reply.get("code", "?")] += 1
            if reply.get("code") == "unavailable" and self.soak.settings.chaos:
                self.report.unavailable += 1
                raise Lost("unavailable")  # this node cannot serve now: reconnect (elsewhere)
        return reply

    # --- actions -----------------------------------------------------------------------

    async def join(self, room: str) -> None:
        track = self.tracks[room]
        track.member = True
        reply = await self.request(
            {"type": "join", "room": room, "username": self.name, "since": track.last}
        )
        if reply["type"] != "ack":
            track.member = False
            self.report.problem(f"{self.name}: join {room} refused: {reply}")
            return
        self.report.replayed += int(reply.get("replayed", 0))
        if reply.get("truncated"):
            self.report.problem(f"{self.name}: replay of {room} truncated")

    async def post(self, room: str, content: str, ref: str | None = None) -> None:
        ref = ref or f"{self.name}-m{next(self._refs)}"
        if ref not in self.unacked:
            self.report.messages_sent += 1
        self.unacked[ref] = (room, content)
        for _ in range(5):
            reply = await self.request({"type": "message", "room": room, "content": content}, ref)
            if reply["type"] == "ack":
                self._acked(ref, reply)
                return
            if reply.get("code") not in ("rate_limited", "unavailable"):
                break
            await asyncio.sleep(0.5)
        del self.unacked[ref]
        self.report.problem(f"{self.name}: message refused: {reply}")

    def _acked(self, ref: str, ack: Event) -> None:
        room, content = self.unacked.pop(ref)
        self.soak.acked[ref] = (room, int(ack["id"]), self.name, content)
        self.report.messages_acked += 1

    async def post_and_drop(self, room: str) -> None:
        """Post and cut the connection before the ack: the message is re-sent with its ref
        after reconnecting, and must be stored (and delivered) once."""
        ref = f"{self.name}-m{next(self._refs)}"
        self._posted += 1
        self.unacked[ref] = (room, f"{self.name} #{self._posted}: cut off")
        self.report.messages_sent += 1
        event = {"type": "message", "room": room, "content": self.unacked[ref][1]}
        future = await self.send(event, ref)

        def settle(done: "asyncio.Future[Event]") -> None:
            if done.cancelled() or done.exception() is not None or ref not in self.unacked:
                return
            reply = done.result()
            if reply["type"] == "ack":
                self._acked(ref, reply)
            elif reply.get("code") not in ("rate_limited", "unavailable"):
                self.report.problem(f"{self.name}: message refused: {reply}")

        future.add_done_callback(settle)
        await self.drop(abrupt=True)

    async def act(self) -> None:
        rng = self.rng
        room = rng.choice(list(self.tracks))
        action = rng.choices(
            ["message", "typing", "history", "leave", "disconnect"], [50, 20, 12, 10, 8]
        )[0]
        if action == "message":
            self._posted += 1
            text = "".join(rng.choices("abcdefgh \u00e9\u2713\U0001f600", k=rng.randrange(1, 80)))
            await self.post(room, f"{self.name} #{self._posted}: {text}")
        elif action == "typing":
            self.report.typing_sent += 1
            await self.request({"type": "typing", "room": room})
        elif action == "history":
            await self.history(room)
        elif action == "leave":
            self.report.leaves += 1
            reply = await self.request({"type": "leave", "room": room})
            if reply["type"] != "ack":
                self.report.problem(f"{self.name}: leave refused: {reply}")
            self.tracks[room].member = False
            await asyncio.sleep(rng.uniform(0.2, 2.0))
            await self.join(room)
        else:
            self.report.disconnects += 1
            how = rng.choice(["close", "cut", "post and cut"])
            if how == "post and cut":
                await self.post_and_drop(room)
            await self.drop(abrupt=how == "cut")
            await asyncio.sleep(rng.uniform(0.2, 3.0))
            raise Lost("dropped on purpose")

    async def history(self, room: str) -> None:
        self.report.history_requests += 1
        last = self.tracks[room].last
        before = self.rng.choice([None, last + 1, max(1, last // 2)])
        limit = self.rng.randint(1, 100)
        event: Event = {"type": "history", "room": room, "limit": limit}
        if before is not None:
            event["before"] = before
        self._history = None
        reply = await self.request(event)
        page = self._history
        if reply["type"] != "ack" or page is None:
            self.report.problem(f"{self.name}: history refused or missing: {reply}")
            return
        ids = [message["id"] for message in page["messages"]]
        if ids != sorted(set(ids)) or len(ids) > limit or page["room"] != room:
            self.report.problem(f"{self.name}: history page out of order or too long: {ids}")
        if before is not None and any(i >= before for i in ids):
            self.report.problem(f"{self.name}: history before {before} returned {ids}")

    async def live(self, ready: asyncio.Semaphore) -> None:
        """Connect, then act until the soak stops; end connected, joined and all acked."""
        async with ready:
            try:
                await self.open()
            except (Lost, aiohttp.ClientError, OSError, TimeoutError):
                await self.recover()
        self.soak.ready += 1
        if self.soak.ready == self.soak.settings.connections:
            self.soak.all_ready.set()
        await self.soak.started.wait()
        while not self.soak.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.rng.expovariate(1 / self.soak.settings.think)):
                    await self.soak.stopping.wait()
            if self.soak.stopping.is_set():
                break
            try:
                await self.act()
            except Lost:
                await self.recover()
        while self.ws is None or self.ws.closed or self.unacked:
            await self.recover()


async def healthy(soak: Soak, url: str) -> bool:
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT):
            assert soak.http is not None
            async with soak.http.get(url + "/healthz") as response:
                return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


async def poll_health(soak: Soak) -> None:
    """Every node's /healthz each second (a failure is expected only in chaos)."""
    report = soak.report
    while True:
        started = time.monotonic()
        for url in soak.node_urls:
            checked = time.monotonic()
            ok = await healthy(soak, url)
            report.health_checks += 1
            report.health_slowest = max(report.health_slowest, time.monotonic() - checked)
            if not ok:
                report.health_failures += 1
                if not soak.settings.chaos:
                    report.problem(f"/healthz failed at check {report.health_checks}")
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


async def watch_rss(soak: Soak, pid: int, started: float) -> None:
    report = soak.report
    while True:
        rss = read_rss_kib(pid)
        if rss is not None:
            report.rss_peak_kib = max(report.rss_peak_kib or 0, rss)
            if (
                report.rss_at_mark_kib is None
                and time.monotonic() - started >= soak.settings.rss_at
            ):
                report.rss_at_mark_kib = rss
        await asyncio.sleep(0.5)


async def run_soak(
    url: str,
    connections: int,
    rooms: int,
    duration: float,
    *,
    pid: int | None = None,
    think: float = 3.0,
    rss_at: float = 20.0,
    rss_ratio: float | None = 1.5,
    seed: int = 0,
    nodes: list[str] | None = None,
    chaos: Callable[[Soak], Coroutine[Any, Any, None]] | None = None,
) -> SoakReport:
    """Run the soak against the server at `url` (http://host:port); see the module docstring.

    `pid` is the server's process, for RSS; `rss_ratio=None` reports RSS without judging it.
    `nodes` are the http URLs of a cluster's nodes (`url` among them), which clients
    connect to in turn; `chaos(soak)`, if given, runs from the start of the traffic and
    must set `soak.calm` when it is over.
    """
    settings = SoakSettings(
        connections, rooms, duration, think, rss_at=rss_at, seed=seed, chaos=chaos is not None
    )
    soak = Soak(url, settings, nodes)
    report = soak.report
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        soak.http = http
        clients = []
        for index in range(connections):
            count = 2 if soak.rng.random() < settings.second_room_share else 1
            chosen = soak.rng.sample(soak.room_names, min(count, rooms))
            clients.append(SoakClient(soak, index, chosen, random.Random(soak.rng.random())))
        background = [asyncio.create_task(poll_health(soak))]
        if chaos is not None:
            background.append(asyncio.create_task(chaos(soak)))
        lives: list[asyncio.Task[None]] = []
        try:
            await drive(soak, clients, lives, background, pid)
            if pid is not None:
                report.rss_end_kib = read_rss_kib(pid)
                if report.rss_end_kib is not None:
                    report.rss_peak_kib = max(report.rss_peak_kib or 0, report.rss_end_kib)
                judge_rss(report, rss_ratio)
        finally:
            for task in [*background, *lives]:
                task.cancel()
            await asyncio.gather(*background, *lives, return_exceptions=True)
            await asyncio.gather(*(client.drop(abrupt=False) for client in clients))
    return report


async def drive(
    soak: Soak,
    clients: list["SoakClient"],
    lives: list[asyncio.Task[None]],
    background: list[asyncio.Task[None]],
    pid: int | None,
) -> None:
    """Connect everyone, let them talk for the duration, stop them, audit."""
    report, settings = soak.report, soak.settings
    ramp_started = time.monotonic()
    ready = asyncio.Semaphore(settings.connect_concurrency)
    lives += [asyncio.create_task(client.live(ready)) for client in clients]
    try:
        async with asyncio.timeout(max(60.0, settings.connections / 5)):
            await soak.all_ready.wait()
    except TimeoutError:
        report.problem(f"only {soak.ready} of {settings.connections} clients could connect")
        return
    report.ramp_seconds = time.monotonic() - ramp_started
    if pid is not None:
        background.append(asyncio.create_task(watch_rss(soak, pid, time.monotonic())))
    soak.started.set()
    await asyncio.sleep(settings.duration)
    try:
        async with asyncio.timeout(60):
            await soak.calm.wait()
    except TimeoutError:
        report.problem("the chaos did not finish in time")
    soak.stopping.set()
    done, pending = await asyncio.wait(lives, timeout=SETTLE_TIMEOUT)
    if pending:
        report.problem(f"{len(pending)} clients did not finish in time")
    for task in done:
        if task.exception() is not None:
            report.problem(f"a client failed: {task.exception()!r}")
    await audit(soak, clients)


async def audit(soak: Soak, clients: list[SoakClient]) -> None:
    """Every client saw every stored id of its rooms once, in order; every ack is stored."""
    report = soak.report
    finals = {room: await soak.room_history(room) for room in soak.room_names}
    newest = {room: (messages[-1]["id"] if messages else 0) for room, messages in finals.items()}
    try:
        async with asyncio.timeout(SETTLE_TIMEOUT):
            while any(
                track.last < newest[room] for c in clients for room, track in c.tracks.items()
            ):
                soak.progress.clear()
                await soak.progress.wait()
    except TimeoutError:
        report.problem("clients did not catch up with the newest messages in time")
    stored: dict[str, dict[int, Event]] = {}
    for room, messages in finals.items():
        ids = [message["id"] for message in messages]
        report.stored += len(ids)
        if ids != list(range(1, len(ids) + 1)):
            report.problem(f"stored ids of {room} are not 1..n without holes")
        contents = Counter(message["content"] for message in messages)
        for content, times in contents.items():
            if times > 1:
                report.problem(f"{room}: {content!r} stored {times} times", "stored twice")
        stored[room] = {message["id"]: message for message in messages}
    for client in clients:
        for room, track in client.tracks.items():
            expected = [message["id"] for message in finals[room]]
            if track.seen != expected:
                missing = sorted(set(expected) - set(track.seen))
                extra = len(track.seen) - len(set(track.seen))
                only_repeats = list(dict.fromkeys(track.seen)) == expected
                report.problem(
                    f"{client.name} in {room}: saw {len(track.seen)} of {len(expected)}"
                    f" (missing {missing[:5]}..., {extra} repeated)",
                    "duplicate" if only_repeats else "gap",
                )
    for room, message_id, sender, content in soak.acked.values():
        message = stored[room].get(message_id)
        if message is None or message["content"] != content or message["from"] != sender:
            report.acked_unstored += 1
            report.problem(f"acked {room}#{message_id} is not stored as sent: {message}")
    acked_ids = {room: set[int]() for room in soak.room_names}
    for room, message_id, _, _ in soak.acked.values():
        acked_ids[room].add(message_id)
    for client in clients:
        for room, track in client.tracks.items():
            never = len(acked_ids[room] - set(track.seen))
            if never:
                client_lost = f"{client.name} in {room}"
                report.acked_undelivered[client_lost] += never
                report.problem(f"{client_lost}: {never} acked messages never delivered", "lost")
    if soak.settings.chaos:
        for url in soak.node_urls:
            if not await healthy(soak, url):
                report.problem(f"{url}/healthz is not 200 after the chaos")
    if report.messages_acked != report.messages_sent:
        report.problem(f"{report.messages_sent - report.messages_acked} messages never acked")


def judge_rss(report: SoakReport, ratio: float | None) -> None:
    if ratio is None or report.rss_at_mark_kib is None or report.rss_end_kib is None:
        return
    if report.rss_end_kib > ratio * report.rss_at_mark_kib:
        report.problem(
            f"server RSS grew from {report.rss_at_mark_kib} KiB to {report.rss_end_kib} KiB"
            f" (more than {ratio}x)"
        )


# --- a server of our own -----------------------------------------------------------------


@dataclass
class ServerLog:
    """What a spawned server writes to stderr, drained so that it never blocks on a full pipe."""

    lines: int = 0
    errors: list[str] = field(default_factory=list)
    copy: Path | None = None
    """A file that gets every line too (`--logs`)."""

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.lines += 1
            text = line.decode(errors="replace").rstrip()
            if self.copy is not None:
                with self.copy.open("a") as copy:
                    print(text, file=copy)
            if " ERROR " in text or "Traceback" in text or " CRITICAL " in text:
                self.errors.append(text)


SOAK_SERVER_ARGS = ("--max-connections-per-ip", "1000")
"""Every soak client comes from 127.0.0.1."""


@contextlib.asynccontextmanager
async def spawned_server(*args: str) -> AsyncIterator[tuple[str, int, ServerLog]]:
    """`hubbub serve` in a process of its own with a fresh data dir: (url, pid, log)."""
    with tempfile.TemporaryDirectory(prefix="hubbub-soak-") as data_dir:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hubbub",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            *SOAK_SERVER_ARGS,
            *args,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stderr is not None
        log = ServerLog()
        drain: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(20):
                while b"listening on" not in await process.stderr.readline():
                    if process.stderr.at_eof():
                        raise RuntimeError("hubbub serve exited before listening")
            drain = asyncio.create_task(log.drain(process.stderr))
            yield f"http://127.0.0.1:{port}", process.pid, log
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    async with asyncio.timeout(15):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()
            if drain is not None:
                await drain


# --- a cluster of our own (--cluster) ----------------------------------------------------


NODE_TTL = 3.0
"""--node-ttl of the cluster's nodes: a killed node is noticed within seconds."""


@dataclass
class ClusterNode:
    """One `hubbub serve` of the cluster, on a port of its own that outlives the process:
    a node killed with SIGKILL is replaced by a new process on the same port."""

    port: int
    data_dir: str
    args: tuple[str, ...]
    log: ServerLog = field(default_factory=ServerLog)
    process: asyncio.subprocess.Process | None = None
    drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        os.makedirs(self.data_dir, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubbub", "serve", "--port", str(self.port),
            "--data-dir", self.data_dir, *SOAK_SERVER_ARGS, *self.args,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.process = process
        assert process.stderr is not None
        async with asyncio.timeout(20):
            while b"listening on" not in await process.stderr.readline():
                if process.stderr.at_eof():
                    raise RuntimeError(f"node :{self.port} exited before listening")
        self.drain = asyncio.create_task(self.log.drain(process.stderr))

    async def kill(self) -> None:
        """SIGKILL: no close frame, no goodbye in Redis; the others must notice by the TTL."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self._drained()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self._drained()

    async def _drained(self) -> None:
        if self.drain is not None:
            await self.drain
            self.drain = None


@dataclass
class ChaosPlan:
    """When, as shares of the traffic's duration, Redis and a node are killed."""

    redis_at: float = 0.25
    redis_down: float = 3.0
    """Seconds between killing redis-server and starting it again (empty: it saved nothing)."""
    kill_at: float = 0.55
    replace_after: float = 1.0
    """Seconds between the SIGKILL of the last node and its replacement on the same port."""


async def until_healthy(soak: Soak, within: float) -> float:
    """Seconds until every node's /healthz answers 200."""
    started = time.monotonic()
    async with asyncio.timeout(within):
        for url in soak.node_urls:
            while not await healthy(soak, url):  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # polled as a load balancer would
    return time.monotonic() - started


async def cluster_chaos(
    soak: Soak, redis: PrivateRedis, nodes: list[ClusterNode], plan: ChaosPlan
) -> None:
    """Kill redis-server and start it again, then SIGKILL a node and replace it."""
    report = soak.report
    try:
        await soak.started.wait()
        begun = time.monotonic()
        report.traffic_started = begun

        async def at(share: float) -> float:
            await asyncio.sleep(max(0.0, begun + share * soak.settings.duration - time.monotonic()))
            return time.monotonic() - begun

        when = await at(plan.redis_at)
        await asyncio.to_thread(redis.stop)
        await asyncio.sleep(plan.redis_down)
        await asyncio.to_thread(redis.start)
        back = await until_healthy(soak, 30)
        report.chaos.append(
            f"redis-server killed at {when:.1f} s and started (empty) {plan.redis_down:.1f} s"
            f" later, every /healthz 200 {back:.1f} s after that"
        )
        victim = nodes[-1]
        when = await at(plan.kill_at)
        await victim.kill()
        await asyncio.sleep(plan.replace_after)
        await victim.start()
        back = await until_healthy(soak, 30)
        report.chaos.append(
            f"node :{victim.port} SIGKILLed at {when:.1f} s, a new node on its port"
            f" {plan.replace_after:.1f} s later, healthy {back:.1f} s after that"
        )
    except Exception as error:  # the soak goes on and says what went wrong
        report.problem(f"the chaos failed: {error!r}")
    finally:
        soak.calm.set()


@contextlib.asynccontextmanager
async def soak_database() -> AsyncIterator[str]:
    """A PostgreSQL database of the soak's own, dropped at the end: its URL."""
    name = f"hubbub_soak_{secrets.token_hex(6)}"
    connection = await postgres_admin()
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield f"{POSTGRES_SERVER}/{name}"
    finally:
        await drop_database(name)


async def run_cluster_soak(
    store: str,
    redis: PrivateRedis,
    connections: int,
    rooms: int,
    duration: float,
    *,
    think: float = 3.0,
    seed: int = 0,
    nodes: int = 2,
    plan: ChaosPlan | None = None,
    logs: Path | None = None,
) -> SoakReport:
    """The soak over `nodes` fresh nodes on `store` (PostgreSQL) and `redis`, which the
    chaos kills once; then a node is killed with SIGKILL and replaced on its port."""
    chaos_plan = plan or ChaosPlan()
    with tempfile.TemporaryDirectory(prefix="hubbub-soak-") as data_dir:
        args = (
            "--store", store, "--redis-url", redis.url,
            "--redis-prefix", f"soak{secrets.token_hex(3)}:", "--node-ttl", str(NODE_TTL),
        )  # fmt: skip
        cluster = [ClusterNode(free_port(), f"{data_dir}/node{n}", args) for n in range(nodes)]
        if logs is not None:
            os.makedirs(logs, exist_ok=True)
            for node in cluster:
                node.log.copy = logs / f"node-{node.port}.log"
        try:
            for node in cluster:
                await node.start()
            report = await run_soak(
                cluster[0].url,
                connections,
                rooms,
                duration,
                think=think,
                rss_ratio=None,
                seed=seed,
                nodes=[node.url for node in cluster],
                chaos=lambda soak: cluster_chaos(soak, redis, cluster, chaos_plan),
            )
        finally:
            for node in cluster:
                await node.stop()
    report.server_errors = sum(len(node.log.errors) for node in cluster)
    for node in cluster:
        for line in node.log.errors[:3]:
            print(f"node :{node.port} logged: {line}", file=sys.stderr)
    return report


async def _main(options: argparse.Namespace) -> SoakReport:
    kwargs: dict[str, Any] = {
        "think": options.think,
        "rss_at": options.rss_at,
        "rss_ratio": options.rss_ratio,
        "seed": options.seed,
    }
    if options.cluster:
        with (
            tempfile.TemporaryDirectory(prefix="hubbub-soak-redis-") as redis_dir,
            private_redis(Path(redis_dir)) as redis,
        ):
            async with soak_database() as store:
                return await run_cluster_soak(
                    store,
                    redis,
                    options.connections,
                    options.rooms,
                    options.duration,
                    think=options.think,
                    seed=options.seed,
                    logs=options.logs,
                )
    if options.url:
        return await run_soak(
            options.url,
            options.connections,
            options.rooms,
            options.duration,
            pid=options.pid,
            **kwargs,
        )
    async with spawned_server() as (url, pid, log):
        report = await run_soak(
            url, options.connections, options.rooms, options.duration, pid=pid, **kwargs
        )
    for line in log.errors[:10]:
        report.problem(f"server logged: {line}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak", description=__doc__.split("\n")[0]
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server, http://HOST:PORT")
    where.add_argument("--spawn", action="store_true", help="start `hubbub serve` for the soak")
    parser.add_argument("--pid", type=int, help="the running server's pid, to watch its RSS")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="with --spawn: two nodes on a redis-server and a PostgreSQL database of the"
        " soak's own; Redis is killed and restarted, then a node is SIGKILLed and replaced",
    )
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--rooms", type=int, default=5)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    parser.add_argument("--think", type=float, default=3.0, help="mean seconds between actions")
    parser.add_argument("--rss-at", type=float, default=20.0, help="seconds in: the RSS mark")
    parser.add_argument("--rss-ratio", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(2), "big"))
    parser.add_argument("--logs", type=Path, help="--cluster: keep each node's log in this dir")
    options = parser.parse_args(argv)
    if options.cluster and not options.spawn:
        parser.error("--cluster starts its own nodes: use it with --spawn")
    print(f"soak seed {options.seed}", flush=True)
    report = asyncio.run(_main(options))
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
