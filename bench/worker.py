"""One load-generator process: many client connections on one uvloop event loop.

The coordinator drives it through a multiprocessing pipe with commands (`connect`,
`join`, `settle`, `join_burst`, `watch_burst`, `load`, `drain`, `close`, `stop`), one
at a time;
each answers with a plain dict. Receiving is the hot path. A member is one of two kinds:

- a probe (picows or aiohttp, `client.py`) gets a callback per frame: a substring test,
  and for a `message` frame the send time that the sender put into `content` as
  "<monotonic_ns>:<step>" (every server echoes content unchanged, so latency needs no
  server support). Latency comes from probes only.
- a counting member (`sink.py`) only counts its room's deliveries of the step, for
  under a fifth of a probe's CPU per frame; the delivery ratio counts both kinds.
"""

import asyncio
import contextlib
import os
import re
import resource
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

import orjson

from bench import client, sink

COUNT_PATTERN = re.compile(rb'"count"\s*:\s*(\d+)')
TYPE_PATTERN = re.compile(rb'"type"\s*:\s*"([a-z_]+)"')
CONNECT_CONCURRENCY = 32
JOIN_REPLY_TIMEOUT = 60.0
SETTLE_QUIET_SECONDS = 5.0
PACING_INTERVAL = 0.005
"""Seconds between pacing ticks; each tick sends what the rate says is due by now."""


class Member:
    """One client connection and what it has seen."""

    __slots__ = (
        "connection",
        "join_reply",
        "node",
        "online_count",
        "open",
        "probe",
        "room",
        "room_size",
        "sender",
        "settled_ns",
        "username",
        "watch",
    )

    def __init__(
        self,
        username: str,
        room: str,
        room_size: int,
        node: int = 0,
        sender: bool = True,
        watch: bool = False,
        probe: bool = True,
    ) -> None:
        self.username = username
        self.room = room
        self.room_size = room_size
        self.node = node
        """Which of the server's nodes (URLs) it is connected to."""
        self.sender = sender
        """Whether `load` sends from it."""
        self.watch = watch
        """Joins as a watcher (protocol 1.1): settled by its join's ack, as it gets no
        online_users."""
        self.probe = probe
        """Parses every frame (latency); otherwise a counting member (`sink.Sink`), which
        for a watcher also looks for the ack."""
        self.connection: client.Connection | None = None
        self.open = False
        self.online_count = 0
        self.settled_ns = 0
        self.join_reply: asyncio.Future[None] | None = None

    def join_frame(self) -> bytes:
        if self.watch:
            return orjson.dumps(
                {"type": "join", "room": self.room, "username": self.username, "watch": True,
                 "ref": "w"}
            )  # fmt: skip
        return orjson.dumps({"type": "join", "room": self.room, "username": self.username})


class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.members: list[Member] = []
        self.open_count = 0
        self.closed_by_server = 0
        self.frames = 0
        self._cpu_started = time.process_time()
        self._wall_started = time.monotonic()
        # Tally of the current load step.
        self.step = -1
        self.received = 0
        self.stale = 0
        self.expected = 0
        self.latencies: list[array[int]] = [array("q")]
        """Per node that the receiving member is connected to."""
        self.board = sink.Board()
        """The counting members' tally of the step."""
        self.board.on_count = self._check_drained
        self.sinks: list[sink.Sink] = []
        self.drained = asyncio.Event()
        # Presence: how many members have seen the final online_users count.
        self.settled = 0
        self.all_settled = asyncio.Event()
        self.tally: Counter[str] | None = None
        """While counting (`watch_burst`): frames received, by "watcher "/"member " and type."""

    # -- receiving (hot path) -------------------------------------------------------------

    def on_text(self, member: Member, payload: bytes) -> None:
        self.frames += 1
        if self.tally is not None:
            self._count(member, payload)
        if b'"online_users"' in payload:
            self._on_online_users(member, payload)
        elif b'"content"' in payload:
            self._on_message(member, payload)
        elif member.watch and sink.ACK in payload:
            self._on_watch_ack(member)

    def _count(self, member: Member, payload: bytes) -> None:
        assert self.tally is not None
        kind = TYPE_PATTERN.search(payload)
        role = "watcher " if member.watch else "member "
        self.tally[role + (kind.group(1).decode() if kind else "?")] += 1

    def _on_watch_ack(self, member: Member) -> None:
        reply = member.join_reply
        if reply is not None and not reply.done():
            reply.set_result(None)
        self._settle_member(member)

    def _on_online_users(self, member: Member, payload: bytes) -> None:
        match = COUNT_PATTERN.search(payload)
        if match is not None:
            self._on_online_count(member, int(match.group(1)))

    def _on_online_count(self, member: Member, count: int) -> None:
        member.online_count = count
        reply = member.join_reply
        if reply is not None and not reply.done():
            reply.set_result(None)
        if count >= member.room_size:
            self._settle_member(member)

    def _settle_member(self, member: Member) -> None:
        if not member.settled_ns:
            member.settled_ns = time.monotonic_ns()
            self.settled += 1
            if self.settled >= self.open_count:
                self.all_settled.set()

    def _on_message(self, member: Member, payload: bytes) -> None:
        """Read "<send_ns>:<step>" from a `message` frame without decoding the whole JSON.

        Only `message` events carry "content", and the benchmark's contents are digits
        and a colon, so the value sits between the next two quotes after the key.
        """
        now = time.monotonic_ns()
        key = payload.find(b'"content"')
        opening = payload.find(b'"', key + 9)
        closing = payload.find(b'"', opening + 1)
        sent, _, step = payload[opening + 1 : closing].partition(b":")
        if not step.isdigit() or not sent.isdigit() or int(step) != self.step:
            self.stale += 1
            return
        self.received += 1
        self.latencies[member.node].append(now - int(sent))
        if self.received + self.board.counted >= self.expected > 0:
            self.drained.set()

    def _check_drained(self) -> None:
        """After a read of a counting member: called once per read, not per frame."""
        if self.received + self.board.counted >= self.expected > 0:
            self.drained.set()

    def on_close(self, member: Member) -> None:
        if member.open:
            member.open = False
            self.open_count -= 1
            self.closed_by_server += 1
            if member.settled_ns:
                self.settled -= 1
            if self.settled >= self.open_count:
                self.all_settled.set()

    # -- commands -------------------------------------------------------------------------

    async def connect(
        self,
        urls: list[str],
        members: list[tuple[str, str, int, int, bool, bool, bool]],
        compress: bool = False,
        prefer: str = "auto",
    ) -> dict[str, Any]:
        """Open one connection per (username, room, room_size, node, sender, watch, probe)
        to the node's URL in `urls`; a refused one is counted."""
        started = time.monotonic()
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        errors: Counter[str] = Counter()

        async def open_one(member: Member) -> None:
            async with limit:
                try:
                    if member.probe:
                        member.connection = await client.open_connection(
                            urls[member.node],
                            lambda payload: self.on_text(member, payload),
                            lambda: self.on_close(member),
                            compress=compress,
                            prefer=prefer,
                        )
                    else:
                        counting = await sink.open_sink(
                            urls[member.node],
                            self.board,
                            member.room,
                            lambda count: self._on_online_count(member, count),
                            lambda: self.on_close(member),
                            (lambda: self._on_watch_ack(member)) if member.watch else None,
                        )
                        self.sinks.append(counting)
                        member.connection = counting
                    member.open = True
                    self.open_count += 1
                except Exception as error:  # refused upgrade, reset, timeout
                    errors[type(error).__name__] += 1

        new = [Member(*member) for member in members]
        self.members.extend(new)
        while len(self.latencies) < len(urls):
            self.latencies.append(array("q"))
        await asyncio.gather(*(open_one(member) for member in new))
        return {
            "connected": sum(1 for member in new if member.open),
            "failed": sum(errors.values()),
            "errors": dict(errors),
            "seconds": time.monotonic() - started,
            "library": client.library_for(compress, prefer),
            "probes": sum(1 for member in new if member.open and member.probe),
            "sinks": sum(1 for member in new if member.open and not member.probe),
            "compressed": sum(
                1 for m in new if m.connection is not None and m.connection.compressed
            ),
        }

    async def join(self, concurrency: int) -> dict[str, Any]:
        """Join every member, at most `concurrency` joins waiting for their online_users."""
        started = time.monotonic()
        limit = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()

        async def join_one(member: Member) -> bool:
            if not member.open or member.connection is None:
                return False
            async with limit:
                member.join_reply = loop.create_future()
                member.connection.send(member.join_frame())
                try:
                    await asyncio.wait_for(member.join_reply, JOIN_REPLY_TIMEOUT)
                except TimeoutError:
                    return False
                return True

        joined = await asyncio.gather(*(join_one(member) for member in self.members))
        per_room = Counter(m.room for m, ok in zip(self.members, joined, strict=True) if ok)
        return {
            "joined": sum(joined),
            "joined_per_room": dict(per_room),
            "seconds": time.monotonic() - started,
        }

    async def settle(self, timeout: float, quiet: float = SETTLE_QUIET_SECONDS) -> dict[str, Any]:
        """Wait until every open member has seen online_users with its room's full count.

        Gives up after `timeout`, or once no frame at all arrived for `quiet` seconds:
        a server that dropped members will never send the full count.
        """
        deadline = time.monotonic() + timeout
        last_frames = -1
        if self.settled < self.open_count:
            self.all_settled.clear()
        while (
            self.settled < self.open_count
            and time.monotonic() < deadline
            and self.frames_received() != last_frames
        ):
            last_frames = self.frames_received()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.all_settled.wait(), min(quiet, max(0.0, deadline - time.monotonic()))
                )
        return self._presence_summary()

    async def join_burst(self, start_ns: int, timeout: float) -> dict[str, Any]:
        """Scenario J: at `start_ns` send every member's join at once, then wait to settle."""
        delay = (start_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        frames_before = self.frames_received()
        cpu_before = time.process_time()
        first_send_ns = time.monotonic_ns()
        for member in self.members:
            if member.open and member.connection is not None:
                member.connection.send(member.join_frame())
        summary = await self.settle(timeout)
        summary["joined_per_room"] = dict(Counter(m.room for m in self.members if m.open))
        summary["first_send_ns"] = first_send_ns
        summary["frames"] = self.frames_received() - frames_before
        summary["cpu_seconds"] = time.process_time() - cpu_before
        summary["wall_seconds"] = (time.monotonic_ns() - first_send_ns) / 1e9
        return summary

    async def watch_burst(self, start_ns: int, timeout: float, linger: float) -> dict[str, Any]:
        """Scenario W: at `start_ns` send every watcher's join at once; once each has its
        ack, keep counting for `linger` s, so that presence frames sent late are seen too.
        Returns the frames received meanwhile, by role and type, which only probes
        parse: every member must be one (a thousand acks cost them nothing)."""
        if self.sinks:
            raise ValueError("watch_burst tallies frames by type: counting members cannot")
        delay = (start_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        self.tally = Counter()
        first_send_ns = time.monotonic_ns()
        watchers = [m for m in self.members if m.watch and m.open and m.connection is not None]
        for member in watchers:
            assert member.connection is not None
            member.connection.send(member.join_frame())
        summary = await self.settle(timeout)
        acked_ns = max((m.settled_ns for m in watchers), default=0)
        await asyncio.sleep(linger)
        summary.update(
            {
                "watchers": len(watchers),
                "acked": sum(1 for m in watchers if m.settled_ns),
                "first_send_ns": first_send_ns,
                "last_ack_ns": acked_ns,
                "frames_by_kind": dict(self.tally),
            }
        )
        self.tally = None
        return summary

    def frames_received(self) -> int:
        """By probes and counting members alike: activity, for the quiet timeouts."""
        return self.frames + self.board.frames

    def _presence_summary(self) -> dict[str, Any]:
        settled_times = [member.settled_ns for member in self.members if member.settled_ns]
        return {
            "settled": self.settled,
            "open": self.open_count,
            "closed_by_server": self.closed_by_server,
            "last_settled_ns": max(settled_times, default=0),
        }

    async def load(self, step: int, rate: float, duration: float) -> dict[str, Any]:
        """Send `rate` messages/s for `duration` s, round-robin over the open members."""
        self.step = step
        self.received = self.stale = self.expected = 0
        self.latencies = [array("q") for _ in self.latencies]
        self.board.begin_step(step, self.sinks)
        self.drained.clear()
        self._cpu_started = time.process_time()
        self._wall_started = time.monotonic()
        senders = [m for m in self.members if m.sender and m.open and m.connection is not None]
        sent_per_room: Counter[str] = Counter()
        total = int(rate * duration)
        sent = 0
        started = time.monotonic()
        while senders and sent < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            while sent < due:
                member = senders[sent % len(senders)]
                content = f"{time.monotonic_ns()}:{step}"
                frame = b'{"type":"message","room":"%s","content":"%s"}' % (
                    member.room.encode(),
                    content.encode(),
                )
                if member.open and member.connection is not None:
                    member.connection.send(frame)
                    sent_per_room[member.room] += 1
                sent += 1
            await asyncio.sleep(PACING_INTERVAL)
        return {"sent_per_room": dict(sent_per_room), "seconds": time.monotonic() - started}

    async def drain(
        self,
        expected: int,
        quiet: float,
        cap: float,
        sent_per_room: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Wait for `expected` deliveries of the current step, or until none came for `quiet` s.

        Probes count what they parsed; counting members count up to what was sent to
        their room (`sent_per_room`, all workers' sends), the rest is excess.
        """
        self.board.set_caps(self.sinks, sent_per_room or {})
        self.expected = expected
        deadline = time.monotonic() + cap
        last = -1
        while (
            (progress := self.received + self.board.counted) < expected
            and time.monotonic() < deadline
            and progress != last
        ):
            last = progress
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), quiet)
        counted = self.board.end_step()
        return {
            "received": self.received + counted["counted"],
            "probe_received": self.received,
            "counted": counted["counted"],
            "excess": counted["excess"],
            "other_frames": counted["other_frames"],
            "probe_stale": self.stale,
            "counted_stale": counted["stale"],
            "stale": self.stale + counted["stale"],
            "probes": sum(1 for m in self.members if m.open and m.probe),
            "sinks": sum(1 for m in self.members if m.open and not m.probe),
            "latencies": b"".join(samples.tobytes() for samples in self.latencies),
            "latencies_per_node": [samples.tobytes() for samples in self.latencies]
            if len(self.latencies) > 1
            else [],
            "closed_by_server": self.closed_by_server,
            "open": self.open_count,
            "cpu_seconds": time.process_time() - self._cpu_started,
            "wall_seconds": time.monotonic() - self._wall_started,
        }

    async def close(self) -> dict[str, Any]:
        for member in self.members:
            if member.open and member.connection is not None:
                member.open = False
                member.connection.close()
        self.members.clear()
        self.sinks.clear()
        self.open_count = self.settled = 0
        await client.close_shared_session()
        return {}


async def serve(pipe: Pipe, index: int) -> None:
    """Run commands from the coordinator, one at a time, until `stop`.

    The pipe is read in a thread and left blocking: uvloop's add_reader would make it
    non-blocking, and a large answer (the latency samples) would then fail to send.
    """
    worker = Worker(index)
    loop = asyncio.get_running_loop()
    handlers: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
        "connect": worker.connect,
        "join": worker.join,
        "settle": worker.settle,
        "join_burst": worker.join_burst,
        "watch_burst": worker.watch_burst,
        "load": worker.load,
        "drain": worker.drain,
        "close": worker.close,
    }
    while True:
        try:
            name, arguments = await loop.run_in_executor(None, pipe.recv)
        except EOFError:  # the coordinator went away
            name, arguments = "stop", {}
        if name == "stop":
            await worker.close()
            with contextlib.suppress(OSError):
                pipe.send({})
            return
        try:
            pipe.send(await handlers[name](**arguments))
        except Exception as error:
            pipe.send({"error": f"{type(error).__name__}: {error}"})


def main(pipe: Pipe, index: int, cores: frozenset[int]) -> None:
    """Process entry point: pin, allow many sockets, run the loop on uvloop."""
    import uvloop

    if cores:
        os.sched_setaffinity(0, cores)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvloop.run(serve(pipe, index))
