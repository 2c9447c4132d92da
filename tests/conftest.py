"""Shared fixtures: real servers on 127.0.0.1 with free ports, and clients that talk to them."""

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import pytest

from hubbub.client import ChatClient
from hubbub.config import Settings
from hubbub.server.runner import RunningServer, start

TEST_DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "presence_interval": 0.05}

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
