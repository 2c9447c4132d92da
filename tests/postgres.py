"""PostgreSQL for the tests: a database of this run's own, a fresh schema per test.

The machine's PostgreSQL (127.0.0.1:5432, trust auth, user postgres) is shared with
other runs, so a run creates `hubbub_test_<random>` through the `postgres` database
and drops it at the end. Locally a run without PostgreSQL skips these tests saying
why; on CI (CI=true) it fails instead.
"""

import asyncio
import os
import secrets
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest

SERVER = os.environ.get("HUBBUB_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
"""The server (a URL without database); HUBBUB_TEST_POSTGRES names another."""
ADMIN_DSN = f"{SERVER}/postgres"


async def admin() -> asyncpg.Connection:
    """A connection to the `postgres` database, to create, block and drop databases."""
    return await asyncpg.connect(ADMIN_DSN, timeout=5)


async def _create_database(name: str) -> None:
    connection = await admin()
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(name: str) -> None:
    connection = await admin()
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def run_apart(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` on a loop of its own in another thread: session fixtures are set up
    from within a test's running loop."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, work).result()


def new_database() -> str:
    """Create a database of this run's own; its name. Skips (fails on CI) without
    PostgreSQL."""
    name = f"hubbub_test_{secrets.token_hex(6)}"
    try:
        run_apart(_create_database(name))
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        reason = f"PostgreSQL at {ADMIN_DSN} does not answer: {error!r}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return name


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This run's database (its URL), dropped at the end."""
    name = new_database()
    yield f"{SERVER}/{name}"
    run_apart(drop_database(name))


async def _execute(dsn: str, command: str) -> None:
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(command)
    finally:
        await connection.close()


@pytest.fixture
def postgres_dsn(postgres_database: str) -> Iterator[str]:
    """A URL whose connections work in an empty schema of this test's own."""
    schema = f"test_{secrets.token_hex(6)}"
    run_apart(_execute(postgres_database, f"CREATE SCHEMA {schema}"))
    yield f"{postgres_database}?search_path={schema}"
    run_apart(_execute(postgres_database, f"DROP SCHEMA {schema} CASCADE"))
