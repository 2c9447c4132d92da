"""`hubbub serve --workers N` as a user runs it: N processes serving one port, which form
one cluster; SIGTERM ends them all; refused, saying why, without what N processes need."""

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from hubbub.client import ChatClient, ConnectionClosed
from tests.conftest import HUBBUB, SpawnServer, free_port
from tests.services import shared_redis_url

STARTED = re.compile(r"(\d+) workers listening on \S+ \(nodes ([\w, ]+); pids ([\d, ]+)\)")


@dataclass
class Workers:
    """`hubbub serve --workers N` in a process of its own, and everything it logged."""

    process: asyncio.subprocess.Process
    port: int
    prefix: str
    """Its Redis key prefix, of this test's own."""
    nodes: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    _logged: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def read_log(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode())
            self._logged.set()
        self._logged.set()

    async def logged(self, pattern: re.Pattern[str], timeout: float = 60) -> re.Match[str]:
        """The first line matching `pattern`, once it is logged."""
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if found := pattern.search(line):
                        return found
                if self.process.stderr is not None and self.process.stderr.at_eof():
                    raise AssertionError(f"never logged {pattern.pattern}:\n{self.log}")
                self._logged.clear()
                await self._logged.wait()

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def worker_of(self, client: ChatClient) -> int:
        """The pid of the worker that serves `client`, from that worker's log line."""
        connection = client.welcome["connection_id"]
        opened = await self.logged(re.compile(rf"worker-\d+\[(\d+)\] \S+: open {connection} "))
        return int(opened.group(1))


SpawnWorkers = Callable[..., Awaitable[Workers]]


@pytest.fixture
async def spawn_workers(postgres_dsn: str) -> AsyncIterator[SpawnWorkers]:
    """Start `hubbub serve --workers N` on a free port, with this test's own Redis prefix and
    PostgreSQL schema; wait until every worker listens. At the end: nothing left running,
    and no key left in Redis."""
    redis_url = shared_redis_url()
    started: list[Workers] = []
    readers: list[asyncio.Task[None]] = []

    async def spawner(count: int = 2, *args: str) -> Workers:
        port, prefix = free_port(), f"hubbub-test-{secrets.token_hex(4)}:"
        process = await asyncio.create_subprocess_exec(
            *HUBBUB,
            "serve",
            "--workers",
            str(count),
            "--port",
            str(port),
            "--redis-url",
            redis_url,
            "--redis-prefix",
            prefix,
            "--store",
            postgres_dsn,
            *args,
            stderr=asyncio.subprocess.PIPE,
        )
        workers = Workers(process, port, prefix)
        started.append(workers)
        readers.append(asyncio.create_task(workers.read_log()))
        found = await workers.logged(STARTED)
        workers.nodes = found.group(2).split(", ")
        workers.pids = [int(pid) for pid in found.group(3).split(", ")]
        return workers

    yield spawner
    for workers in started:
        if workers.process.returncode is None:
            workers.process.kill()
            await workers.process.wait()
        for pid in children(workers.process.pid) | set(workers.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for reader in readers:
        reader.cancel()
    redis = Redis.from_url(redis_url)
    for workers in started:
        keys = [key async for key in redis.scan_iter(f"{workers.prefix}*")]
        if keys:
            await redis.delete(*keys)
    await redis.aclose()


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid` now."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def running(pid: int) -> bool:
    """Whether `pid` is a process that has not ended (a zombie has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def ended(pid: int, timeout: float = 10) -> None:
    """Once `pid` has ended (it need not be a child of this process: pidfd)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone = asyncio.Event()
    loop.add_reader(pidfd, gone.set)
    try:
        async with asyncio.timeout(timeout):
            await gone.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def nodes_answering(url: str, wanted: set[str], attempts: int = 200) -> set[str]:
    """The `/stats` node ids seen over fresh TCP connections (the kernel spreads
    connections over the port's sockets by their source port), stopping once every
    one of `wanted` has answered."""
    seen: set[str] = set()
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        for _ in range(attempts):
            async with http.get(f"{url}/stats") as response:
                seen.add((await response.json())["node"])
            if wanted <= seen:
                break
    return seen


@pytest.mark.redis
@pytest.mark.postgres
async def test_the_workers_serve_one_port_as_one_cluster(spawn_workers: SpawnWorkers) -> None:
    workers = await spawn_workers(2)
    assert len(set(workers.nodes)) == 2
    assert set(workers.pids) <= children(workers.process.pid)
    assert await nodes_answering(workers.url, set(workers.nodes)) == set(workers.nodes)

    clients = [await ChatClient.connect(workers.ws_url) for _ in range(16)]
    try:
        served_by = [await workers.worker_of(client) for client in clients]
        assert set(served_by) == set(workers.pids), "both workers take WebSocket connections"
        ann = clients[served_by.index(workers.pids[0])]
        bob = clients[served_by.index(workers.pids[1])]
        await ann.join("lobby", "ann")
        await bob.join("lobby", "bob")
        await ann.expect("user_joined", username="bob")
        sent = []
        for n in range(10):
            author = ann if n % 2 == 0 else bob
            sent.append((await author.say(f"message {n}"), f"message {n}"))
        assert [number for number, _ in sent] == sorted({number for number, _ in sent})
        for member in (ann, bob):
            received = [await member.expect("message") for _ in sent]
            assert [(event["id"], event["content"]) for event in received] == sent

        async with aiohttp.ClientSession() as http, http.get(f"{workers.url}/stats") as response:
            stats = await response.json()
        assert stats["connections"] == len(clients), "/stats counts both workers"
        redis = Redis.from_url(shared_redis_url())
        keys = [key async for key in redis.scan_iter(f"{workers.prefix}*")]
        await redis.aclose()
        assert keys, "the workers keep the cluster's keys under --redis-prefix"
    finally:
        for client in clients:
            await client.close()


@pytest.mark.redis
@pytest.mark.postgres
async def test_sigterm_stops_every_worker_and_exits_0(spawn_workers: SpawnWorkers) -> None:
    workers = await spawn_workers(2)
    family = children(workers.process.pid)
    assert set(workers.pids) <= family
    clients = [await ChatClient.connect(workers.ws_url) for _ in range(8)]
    served_by = {await workers.worker_of(client) for client in clients}
    assert served_by == set(workers.pids)

    workers.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        assert await workers.process.wait() == 0
    for client in clients:
        with pytest.raises(ConnectionClosed):
            await client.expect("never sent")
        assert client.close_code == 1001, "each worker closed its clients as going away"
        await client.close()
    assert not any(running(pid) for pid in workers.pids)
    for pid in family:
        await ended(pid)  # the workers, and multiprocessing's resource tracker
    for pid in workers.pids:
        await workers.logged(re.compile(rf"worker-\d+\[{pid}\] hubbub: stopped"), timeout=1)
    redis = Redis.from_url(shared_redis_url())
    left = [key async for key in redis.scan_iter(f"{workers.prefix}*")]
    await redis.aclose()
    assert left == [], "every worker left the cluster as a node that stops does"


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_worker_that_dies_is_started_again(spawn_workers: SpawnWorkers) -> None:
    workers = await spawn_workers(2)
    dead, alive = workers.pids
    os.kill(dead, signal.SIGKILL)
    restarted = await workers.logged(
        re.compile(r"worker (\d+) started again \(pid (\d+), node (\w+)\)"), timeout=30
    )
    assert re.search(rf"worker \d \(pid {dead}, node \w+\) exited with code -9", workers.log)
    successor, node = int(restarted.group(2)), restarted.group(3)
    assert successor not in workers.pids
    assert successor in children(workers.process.pid)
    assert running(alive)
    living = {
        node,
        *(n for n, pid in zip(workers.nodes, workers.pids, strict=True) if pid == alive),
    }
    assert await nodes_answering(workers.url, living) == living

    workers.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        assert await workers.process.wait() == 0
    assert not running(successor)
    assert not running(alive)


@pytest.mark.redis
@pytest.mark.postgres
def test_a_port_in_use_is_said_in_one_line(postgres_dsn: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_workers(
            "--port", port, "--redis-url", shared_redis_url(), "--store", postgres_dsn
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1 port {port}: Address already in use"
    ]


@pytest.mark.redis
@pytest.mark.postgres
async def test_a_port_another_workers_server_holds_is_refused(
    spawn_workers: SpawnWorkers, postgres_dsn: str
) -> None:
    """SO_REUSEPORT would let a second server join the port and take half its clients."""
    workers = await spawn_workers(2)
    result = run_workers(
        "--port", str(workers.port), "--redis-url", shared_redis_url(), "--store", postgres_dsn
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {workers.port}: Address already in use" in (
        result.stderr
    )
    assert await nodes_answering(workers.url, set(workers.nodes)) == set(workers.nodes)


@pytest.mark.postgres
def test_a_worker_that_cannot_start_stops_the_start_in_one_line(postgres_dsn: str) -> None:
    result = run_workers(
        "--port", str(free_port()), "--redis-url", "redis://127.0.0.1:1/0", "--store", postgres_dsn
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line or "Error" in line]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("Error: cannot use Redis for the cluster: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--store", "postgresql://u@h/d"], "2 workers need --redis-url"),
        (["--redis-url", "redis://127.0.0.1:6379/0"], "2 workers cannot share --store sqlite"),
        (
            ["--redis-url", "redis://127.0.0.1:6379/0", "--store", "memory"],
            "2 workers cannot share --store memory",
        ),
        (
            [
                "--redis-url",
                "redis://127.0.0.1:6379/0",
                "--store",
                "postgresql://u@h/d",
                "--port",
                "0",
            ],
            "2 workers cannot use --port 0",
        ),
    ],
    ids=["no-redis", "sqlite", "memory", "port-0"],
)
def test_what_workers_cannot_share_is_refused_saying_why(args: list[str], reason: str) -> None:
    result = run_workers(*args)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "--workers / HUBBUB_WORKERS" in message
    assert reason in message


def run_workers(*args: str, count: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUBBUB, "serve", "--workers", str(count), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.redis
@pytest.mark.postgres
async def test_sigterm_while_the_workers_start_stops_them_all_and_exits_0(
    postgres_dsn: str,
) -> None:
    """A worker still starting is stopped once it can stop gracefully, not cut half-way."""
    process = await asyncio.create_subprocess_exec(
        *HUBBUB,
        "serve",
        "--workers",
        "2",
        "--port",
        str(free_port()),
        "--redis-url",
        shared_redis_url(),
        "--redis-prefix",
        f"hubbub-test-{secrets.token_hex(4)}:",
        "--store",
        postgres_dsn,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(30):
            while b"starting 2 workers" not in await process.stderr.readline():
                assert not process.stderr.at_eof()
        family = children(process.pid)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            log = (await process.stderr.read()).decode()
            assert await process.wait() == 0, log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "Traceback" not in log
    assert "2 workers listening" not in log
    for pid in family:
        await ended(pid)


async def test_one_worker_is_the_process_itself(spawn_server: SpawnServer) -> None:
    """`make run` and every default start: no child process."""
    server = await spawn_server("--store", "memory", "--workers", "1")
    assert children(server.process.pid) == set()
    async with await ChatClient.connect(server.ws_url) as client:
        await client.join("r", "ann")
    server.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await server.process.wait() == 0


@pytest.mark.redis
@pytest.mark.postgres
async def test_workers_whose_parent_is_killed_stop_gracefully(
    spawn_workers: SpawnWorkers,
) -> None:
    workers = await spawn_workers(2)
    clients = [await ChatClient.connect(workers.ws_url) for _ in range(4)]
    workers.process.kill()
    await workers.process.wait()
    for pid in workers.pids:
        await ended(pid, timeout=20)
        await workers.logged(re.compile(rf"worker-\d+\[{pid}\] hubbub: stopped"), timeout=5)
    for client in clients:
        with pytest.raises(ConnectionClosed):
            await client.expect("never sent")
        assert client.close_code == 1001
        await client.close()
