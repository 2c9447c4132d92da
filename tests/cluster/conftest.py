"""The nodes of a cluster as users run them: `hubbub serve` processes on a private
`redis-server` and a PostgreSQL schema of each test's own."""

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.client import ChatClient
from tests.conftest import ServerProcess, SpawnServer
from tests.services import PrivateRedis

TTL = 2.0
"""--node-ttl of the nodes here: short, so a death is seen quickly."""

StartNode = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_node(spawn_server: SpawnServer, redis: PrivateRedis, postgres_dsn: str) -> StartNode:
    async def start(*extra: str) -> ServerProcess:
        return await spawn_server(
            "--store",
            postgres_dsn,
            "--redis-url",
            redis.url,
            "--node-ttl",
            str(TTL),
            "--presence-interval",
            "0.05",
            *extra,
        )

    return start


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def messages_in(client: ChatClient, count: int, timeout: float = 15.0) -> list[int]:
    """The ids of the next `count` messages the client receives."""
    return [int((await client.expect("message", timeout=timeout))["id"]) for _ in range(count)]
