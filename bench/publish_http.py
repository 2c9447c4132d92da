"""Publishing over HTTP (`POST /rooms/{name}/messages`) beside posting over WebSocket,
through one real server in the same run: throughput, and latency from the send to the
delivery at a member.

    python -m bench.publish_http [--rooms 1,100] [--senders 32] [--messages 4000]
        [--members 1] [--repeats 3] [--store sqlite]

Per room count, one `hubbub serve` (pinned to the server's cores, the generator to
the others) with an API key and no rate limit, and `--members` listening
connections, each a member of every room (picows clients, the load generator's own;
latency is measured at the first to receive each message). Then, alternating which goes
first in each repeat:

- `http`: `--senders` tasks, each with one request in flight at a time over a shared
  keep-alive aiohttp session, publishing to the rooms in turn;
- `ws`: `--senders` WebSocket connections, each with one message in flight at a time
  (the next one after the ack), each joined to the rooms it posts to (so it also
  gets its own copy, which the HTTP sender does not).

Latency is from just before the request (or the frame) is sent to the member's
callback for that message; throughput is messages over the time from the first
send to the last delivery. The server's work per message differs only in the
front: an HTTP request (parse, authenticate, answer) against a WebSocket frame
(decode, session, ack).
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson
import uvloop

from bench.client import Connection, open_connection
from bench.latency import percentile
from bench.pinning import pin_current_process, split_cores
from bench.store_throughput import free_port, wait_until_listening

KEY = "bench-publish-key-0123456789abcdef"


@dataclass
class Phase:
    """One measured run of one way of sending."""

    expected: int
    name: str
    """Unique per run: refs are `name-seq`, since the server drops a repeated ref."""
    sent_at: dict[int, int] = field(default_factory=dict)
    """Nanoseconds (`perf_counter_ns`) when each message was sent, by sequence number."""
    latencies: list[int] = field(default_factory=list)
    """Nanoseconds from the send to the first delivery."""
    started: float = 0.0
    finished: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def delivered(self, seq: int) -> None:
        sent = self.sent_at.pop(seq, None)
        if sent is None:
            return
        self.latencies.append(time.perf_counter_ns() - sent)
        if len(self.latencies) == self.expected:
            self.finished = time.perf_counter()
            self.done.set()

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        return {
            "rate": self.expected / (self.finished - self.started),
            "p50": percentile(ordered, 0.50) * 1e3,
            "p99": percentile(ordered, 0.99) * 1e3,
        }


class Member:
    """A listening member of some rooms; tells the running phase of each message."""

    def __init__(self) -> None:
        self.phase: Phase | None = None
        self.connection: Connection | None = None
        self.joined = asyncio.Event()
        self.expected_acks = 0

    def on_text(self, payload: bytes) -> None:
        event = orjson.loads(payload)
        kind = event["type"]
        if kind == "message":
            if self.phase is not None and event["content"].startswith("#"):
                self.phase.delivered(int(event["content"][1:]))
        elif kind == "ack":
            self.expected_acks -= 1
            if self.expected_acks == 0:
                self.joined.set()

    def on_close(self) -> None:
        if self.phase is not None and not self.phase.done.is_set():
            raise RuntimeError("a member's connection ended during the run")


class WsSender:
    """One WebSocket connection posting one message at a time to its rooms in turn."""

    def __init__(self, rooms: list[str]) -> None:
        self.rooms = rooms
        self.connection: Connection | None = None
        self.ready = asyncio.Event()
        self.acked = asyncio.Event()
        self.pending_acks = 0

    def on_text(self, payload: bytes) -> None:
        event = orjson.loads(payload)
        if event["type"] == "ack":
            self.pending_acks -= 1
            if self.pending_acks == 0:
                self.ready.set()
            self.acked.set()
        elif event["type"] == "error":
            raise RuntimeError(f"refused: {event}")

    def on_close(self) -> None:
        self.acked.set()


def join(connection: Connection, rooms: list[str], name: str) -> None:
    for n, room in enumerate(rooms):
        join = {"type": "join", "room": room, "username": name, "ref": n}
        connection.send(orjson.dumps(join))


async def run_ws(senders: list[WsSender], phase: Phase, counter: list[int]) -> None:
    async def send_loop(sender: WsSender) -> None:
        assert sender.connection is not None
        turn = 0
        while counter[0] < phase.expected:
            seq = counter[0]
            counter[0] += 1
            room = sender.rooms[turn % len(sender.rooms)]
            turn += 1
            sender.acked.clear()
            phase.sent_at[seq] = time.perf_counter_ns()
            event = {
                "type": "message",
                "room": room,
                "content": f"#{seq}",
                "ref": f"{phase.name}-{seq}",
            }
            sender.connection.send(orjson.dumps(event))
            await sender.acked.wait()

    await asyncio.gather(*(send_loop(sender) for sender in senders))


async def run_http(
    url: str, rooms: list[str], senders: int, phase: Phase, counter: list[int]
) -> None:
    connector = aiohttp.TCPConnector(limit=senders)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def send_loop(first: int) -> None:
            turn = first
            while counter[0] < phase.expected:
                seq = counter[0]
                counter[0] += 1
                room = rooms[turn % len(rooms)]
                turn += senders
                body = orjson.dumps(
                    {"content": f"#{seq}", "from": "bench", "ref": f"{phase.name}-{seq}"}
                )
                phase.sent_at[seq] = time.perf_counter_ns()
                async with session.post(f"{url}/rooms/{room}/messages", data=body) as response:
                    if response.status != 201:
                        raise RuntimeError(f"{response.status}: {await response.text()}")
                    await response.read()

        await asyncio.gather(*(send_loop(n) for n in range(senders)))


async def measure(args: argparse.Namespace, room_count: int) -> dict[str, list[dict[str, float]]]:
    cores = split_cores()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    rooms = [f"room{n}" for n in range(room_count)]
    results: dict[str, list[dict[str, float]]] = {"http": [], "ws": []}
    with tempfile.TemporaryDirectory() as data:
        process = await asyncio.create_subprocess_exec(
            "taskset",
            "-c",
            ",".join(str(core) for core in sorted(cores.server)),
            sys.executable,
            "-m",
            "hubbub",
            "serve",
            "--port",
            str(port),
            "--store",
            args.store,
            "--data-dir",
            data,
            "--api-key",
            KEY,
            "--rate",
            "1000000",
            "--rate-burst",
            "1000000",
            "--max-connections-per-ip",
            "20000",
            "--log-level",
            "warning",
        )
        try:
            await wait_until_listening(port)
            members = []
            for n in range(args.members):
                member = Member()
                member.expected_acks = len(rooms)
                member.connection = await open_connection(
                    f"ws://127.0.0.1:{port}/ws", member.on_text, member.on_close
                )
                join(member.connection, rooms, f"member{n}")
                members.append(member)
            senders = []
            for n in range(args.senders):
                own = rooms[n % len(rooms) :: args.senders] or [rooms[n % len(rooms)]]
                sender = WsSender(own)
                sender.pending_acks = len(own)
                sender.connection = await open_connection(
                    f"ws://127.0.0.1:{port}/ws", sender.on_text, sender.on_close
                )
                join(sender.connection, own, f"sender{n}")
                senders.append(sender)
            async with asyncio.timeout(60):
                for member in members:
                    await member.joined.wait()
                for sender in senders:
                    await sender.ready.wait()
            for repeat in range(args.repeats):
                order = ["http", "ws"] if repeat % 2 == 0 else ["ws", "http"]
                for way in order:
                    phase = Phase(args.messages, f"{way}{repeat}")
                    for member in members:
                        member.phase = phase
                    counter = [0]
                    phase.started = time.perf_counter()
                    async with asyncio.timeout(300):
                        if way == "http":
                            await run_http(url, rooms, args.senders, phase, counter)
                        else:
                            await run_ws(senders, phase, counter)
                        await phase.done.wait()
                    results[way].append(phase.summary())
            for connection in [m.connection for m in members] + [s.connection for s in senders]:
                assert connection is not None
                connection.close()
        finally:
            process.terminate()
            await process.wait()
    return results


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rooms", default="1,100", help="comma-separated room counts")
    parser.add_argument("--senders", type=int, default=32, help="requests/messages in flight")
    parser.add_argument("--messages", type=int, default=4000, help="per run")
    parser.add_argument(
        "--members", type=int, default=1, help="listening connections, each in every room"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store", default="sqlite", help="sqlite or memory")
    args = parser.parse_args(argv)
    pin_current_process(split_cores().generator)
    print(
        f"senders={args.senders} messages/run={args.messages} members/room={args.members}"
        f" repeats={args.repeats} store={args.store}"
    )
    print("| rooms | way | messages/s (median) | p50 ms | p99 ms | runs (messages/s) |")
    print("|---|---|---|---|---|---|")
    for room_count in (int(part) for part in args.rooms.split(",")):
        results = await measure(args, room_count)
        medians = {}
        for way in ("ws", "http"):
            runs = results[way]
            rate = statistics.median(r["rate"] for r in runs)
            medians[way] = rate
            p50 = statistics.median(r["p50"] for r in runs)
            p99 = statistics.median(r["p99"] for r in runs)
            each = ", ".join(f"{r['rate']:,.0f}" for r in runs)
            print(f"| {room_count} | {way} | {rate:,.0f} | {p50:.1f} | {p99:.1f} | {each} |")
        print(f"| {room_count} | http / ws | {medians['http'] / medians['ws']:.2f}x | | | |")


if __name__ == "__main__":
    uvloop.run(main())
