"""Messages stored per second through a real server: SQLite store versus memory store.

    python -m bench.store_throughput [--clients 8] [--messages 3000] [--repeats 3]

Each client posts to a room of its own (this measures storing, not fan-out),
keeps a window of messages in flight and counts acks; an ack
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

import aiohttp
import orjson


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


async def _post(url: str, client_no: int, count: int, window: int) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str(
            orjson.dumps(
                {"type": "join", "room": f"bench{client_no}", "username": f"c{client_no}"}
            ).decode()
        )
        sent = acked = 0
        while acked < count:
            while sent < count and sent - acked < window:
                event = {
                    "type": "message",
                    "room": f"bench{client_no}",
                    "content": f"m{sent}",
                    "ref": sent,
                }
                await ws.send_str(orjson.dumps(event).decode())
                sent += 1
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"connection ended: {message}")
            event = orjson.loads(message.data)
            if event["type"] == "ack":
                acked += 1
            elif event["type"] == "error":
                raise RuntimeError(f"server refused a message: {event}")


async def run_once(store: str, clients: int, messages: int, window: int) -> float:
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
            url = f"ws://127.0.0.1:{port}/ws"
            started = time.perf_counter()
            await asyncio.gather(*(_post(url, n, messages, window) for n in range(clients)))
            elapsed = time.perf_counter() - started
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
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--messages", type=int, default=3000, help="per client")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=1, help="messages in flight per client")
    args = parser.parse_args(argv)
    results: dict[str, list[float]] = {"memory": [], "sqlite": []}
    for _ in range(args.repeats):
        for store in results:
            results[store].append(await run_once(store, args.clients, args.messages, args.window))
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


if __name__ == "__main__":
    asyncio.run(main())
