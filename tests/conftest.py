"""Shared fixtures: real servers on 127.0.0.1 with free ports, and clients that talk to them."""

import asyncio
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pytest

from hubbub.client import ChatClient
from hubbub.config import Settings
from hubbub.server.runner import RunningServer, start
from tests.postgres import postgres_database, postgres_dsn  # noqa: F401 (fixtures)

TEST_DEFAULTS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 0,
    "presence_interval": 0.05,
    "store": "memory",
}

StartServer = Callable[..., Awaitable[RunningServer]]


class Connect(Protocol):
    def __call__(
        self,
        server: RunningServer | None = None,
        *,
        msgpack: bool = False,
        compress: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Awaitable[ChatClient]: ...


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """Start servers with settings overridden by keyword; all are stopped after the test."""
    servers: list[RunningServer] = []

    async def starter(**overrides: Any) -> RunningServer:
        server = await start(Settings(**{**TEST_DEFAULTS, **overrides}))
        servers.append(server)
        return server

    yield starter
    for server in servers:
        await server.stop()


@pytest.fixture
async def server(start_server: StartServer) -> RunningServer:
    return await start_server()


@pytest.fixture
async def connect(server: RunningServer) -> AsyncIterator[Connect]:
    """Open clients (to `server` unless another is given); all are closed after the test."""
    clients: list[ChatClient] = []

    default = server

    async def connector(
        server: RunningServer | None = None,
        *,
        msgpack: bool = False,
        compress: bool = True,
        headers: dict[str, str] | None = None,
    ) -> ChatClient:
        url = (server or default).ws_url
        client = await ChatClient.connect(url, msgpack=msgpack, compress=compress, headers=headers)
        clients.append(client)
        return client

    yield connector
    for client in clients:
        await client.close()


def metric(text: str, name: str) -> float:
    """The value of the sample `name` (labels included) in Prometheus text from /metrics."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} missing from /metrics"
    return float(found.group(1))


HUBBUB = [sys.executable, "-m", "hubbub"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    """`hubbub serve` in a process of its own, as a user runs it."""

    process: asyncio.subprocess.Process
    port: int
    first_line: str
    """The start-up line that says where it listens and how it is configured."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def log(self) -> str:
        """Everything the server logged after start-up (once it has exited)."""
        assert self.process.stderr is not None
        return (await self.process.stderr.read()).decode()


SpawnServer = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def spawn_server() -> AsyncIterator[SpawnServer]:
    """Start `hubbub serve ARGS...` on a free port; wait until it listens; kill it at the end."""
    processes: list[asyncio.subprocess.Process] = []

    async def spawner(*args: str) -> ServerProcess:
        port = free_port()
        process = await asyncio.create_subprocess_exec(
            *HUBBUB, "serve", "--port", str(port), *args, stderr=asyncio.subprocess.PIPE
        )
        processes.append(process)
        assert process.stderr is not None
        async with asyncio.timeout(20):
            while b"listening on" not in (line := await process.stderr.readline()):
                if process.stderr.at_eof():
                    raise RuntimeError("hubbub serve exited before listening")
        return ServerProcess(process, port, line.decode())

    yield spawner
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()
