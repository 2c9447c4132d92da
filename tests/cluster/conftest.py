"""What the cluster tests share: a `redis-server` of each test's own, and `hubbub serve`
nodes on it and on a PostgreSQL schema of the test's own."""

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

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
