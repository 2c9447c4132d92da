"""Messages stored per second through a real server: SQLite store versus memory store
(and the PostgreSQL store, with `--postgresql URL`: an empty schema of that database per
run).

    python -m bench.store_throughput [--clients 100] [--messages 500] [--window 10] [--repeats 5]
        [--postgresql postgresql://postgres@127.0.0.1:5432/postgres]

Each client posts to a room of its own (this measures storing, not fan-out),
keeps a window of messages in flight and counts acks (picows clients, the
load generator's own, so that the clients cost the shared cores little); an ack
means the message is committed (for SQLite: in the WAL, fsynced). The server
runs in its own process, so the numbers include the whole path: frame,
validate, store, broadcast, ack.
"""

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import uvloop

from bench.client import Connection, open_connection
from bench.postgres import fresh_schema


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_until_listening(port: int, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return


class _Poster:
    """One client posting to a room of its own, `window` messages in flight, counting acks."""

    def __init__(self, client_no: int, count: int, window: int) -> None:
        self.room = f"bench{client_no}"
        self.username = f"c{client_no}"
        self.count = count
        self.window = window
        self.sent = self.acked = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.connection: Connection | None = None

    def start(self, connection: Connection) -> None:
        self.connection = connection
        join = {"type": "join", "room": self.room, "username": self.username}
        connection.send(orjson.dumps(join))
        self._fill()

    def _fill(self) -> None:
        assert self.connection is not None
        while self.sent < self.count and self.sent - self.acked < self.window:
            event = {"type": "message", "room": self.room, "content": f"m{self.sent}"}
            event["ref"] = self.sent
            self.connection.send(orjson.dumps(event))
            self.sent += 1

    def on_text(self, payload: bytes) -> None:
        event = orjson.loads(payload)
        kind = event["type"]
        if kind == "ack" and "id" in event:
            self.acked += 1
            if self.acked == self.count:
                self._finish(None)
            else:
                self._fill()
        elif kind == "error":
            self._finish(RuntimeError(f"server refused a message: {event}"))

    def on_close(self) -> None:
        self._finish(RuntimeError("connection ended before every ack"))

    def _finish(self, error: Exception | None) -> None:
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


async def _post_all(url: str, clients: int, count: int, window: int) -> float:
    """Connect every client first, then time from the first message to the last ack."""
    posters = [_Poster(n, count, window) for n in range(clients)]
    connections = [await open_connection(url, p.on_text, p.on_close) for p in posters]
    started = time.perf_counter()
    for poster, connection in zip(posters, connections, strict=True):
        poster.start(connection)
    await asyncio.gather(*(poster.done for poster in posters))
    elapsed = time.perf_counter() - started
    for connection in connections:
        connection.close()
    return elapsed


async def run_once(store: str, clients: int, messages: int, window: int, postgresql: str) -> float:
    if store == "postgresql":
        async with fresh_schema(postgresql) as dsn:
            return await run_once(dsn, clients, messages, window, "")
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hubbub",
            "serve",
            "--port",
            str(port),
            "--store",
            store,
            "--data-dir",
            data,
            "--rate",
            "1000000",
            "--rate-burst",
            "1000000",
            "--log-level",
            "warning",
        )
        try:
            await wait_until_listening(port)
            elapsed = await _post_all(f"ws://127.0.0.1:{port}/ws", clients, messages, window)
        finally:
            process.terminate()
            await process.wait()
        if store == "sqlite":
            assert (Path(data) / "hubbub.db").exists()
    return clients * messages / elapsed


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=500, help="per client")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--window",
        type=int,
        default=10,
        help="messages in flight per client (enough to keep the server busy)",
    )
    parser.add_argument(
        "--postgresql", default="", help="also the PostgreSQL store, in this database (URL)"
    )
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {"memory": [], "sqlite": []}
    if args.postgresql:
        results["postgresql"] = []
    for _ in range(args.repeats):
        for store in results:
            results[store].append(
                await run_once(store, args.clients, args.messages, args.window, args.postgresql)
            )
    medians = {store: statistics.median(rates) for store, rates in results.items()}
    print(
        f"clients={args.clients} messages/client={args.messages} window={args.window}"
        f" repeats={args.repeats}"
    )
    print("| store | messages/s (median) | runs |")
    print("|---|---|---|")
    for store, rates in results.items():
        runs = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(f"| {store} | {medians[store]:,.0f} | {runs} |")
    print(f"\nSQLite / memory: {medians['sqlite'] / medians['memory']:.2f}x")
    if "postgresql" in medians:
        print(f"PostgreSQL / memory: {medians['postgresql'] / medians['memory']:.2f}x")


if __name__ == "__main__":
    uvloop.run(main())
