"""A PostgreSQL store for the benchmarks: an empty schema per run, and the CPU
its server processes spend (PostgreSQL's backends run outside the measured process).
"""

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator

import asyncpg

_TICK = os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def fresh_schema(url: str) -> AsyncIterator[str]:
    """A URL like `url` whose connections work in a new, empty schema; dropped after."""
    schema = f"bench_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in url else "?"
        yield f"{url}{separator}search_path={schema}&application_name={schema}"
    finally:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await connection.close()


async def backend_cpu_seconds(url: str, application_name: str) -> float:
    """CPU time so far of the backends serving `application_name` (same machine only)."""
    connection = await asyncpg.connect(url, timeout=10)
    try:
        pids = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
    finally:
        await connection.close()
    return sum(_cpu_seconds(pid) for (pid,) in pids)


def _cpu_seconds(pid: int) -> float:
    """User and system time of a process (a tiny read of /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def application_name(dsn: str) -> str:
    return dsn.rsplit("application_name=", 1)[1].split("&", 1)[0]


async def _create_schema(url: str) -> str:
    schema = f"bench_{secrets.token_hex(6)}"
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(f"CREATE SCHEMA {schema}")
    finally:
        await connection.close()
    return schema


async def _drop_schema(url: str, schema: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await connection.close()


class Schema:
    """A new, empty schema of the database at `url`, for a server started from plain
    (not async) code: `dsn` is the URL its connections use; `drop()` removes it."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.name = asyncio.run(_create_schema(url))
        separator = "&" if "?" in url else "?"
        self.dsn = f"{url}{separator}search_path={self.name}&application_name={self.name}"

    def backend_cpu_seconds(self) -> float:
        """CPU time so far of the backends connected to this schema."""
        return asyncio.run(backend_cpu_seconds(self._url, self.name))

    def drop(self) -> None:
        asyncio.run(_drop_schema(self._url, self.name))
