"""What only the PostgreSQL store does: migrations, lost connections, an outage, and
PostgreSQL's text."""

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from hubbub.store.base import Appended, Retention, Retry, StoreUnavailable
from hubbub.store.postgres import HEALTH_TIMEOUT, PostgresStore, _migrations
from tests.postgres import SERVER, admin, drop_database, new_database, run_apart

pytestmark = pytest.mark.postgres

T0 = 1_795_674_063_000


@pytest.fixture
async def store(postgres_dsn: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_dsn, command_timeout=5.0)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def own_database() -> Iterator[str]:
    """A database of this test's own, which the test may close to connections."""
    name = new_database()
    yield name
    run_apart(drop_database(name))


async def terminate_backends(database: str, application: str | None = None) -> int:
    """`pg_terminate_backend` every connection to `database` (of `application`)."""
    connection = await admin()
    try:
        killed = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = $1 AND ($2::text IS NULL OR application_name = $2)"
            " AND pid <> pg_backend_pid()",
            database,
            application,
        )
    finally:
        await connection.close()
    return len(killed)


async def allow_connections(database: str, allowed: bool) -> None:
    connection = await admin()
    try:
        await connection.execute(
            f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'
        )
    finally:
        await connection.close()


async def test_schema_is_versioned_and_reopening_does_not_migrate_twice(
    postgres_dsn: str,
) -> None:
    for _ in range(2):
        store = PostgresStore(postgres_dsn)
        await store.open()
        await store.close()
    connection = await asyncpg.connect(postgres_dsn)
    try:
        versions = [row[0] for row in await connection.fetch("SELECT version FROM schema_version")]
    finally:
        await connection.close()
    assert sorted(versions) == [version for version, _ in _migrations()]


async def test_a_version_1_database_gets_data_and_nodes_not_yet_upgraded_still_append(
    postgres_dsn: str,
) -> None:
    """Rolling upgrade: a node of the previous version appends with the six-argument
    `hubbub_append` of migration 1, before and after a newer node migrated."""
    old_append = "SELECT message_id, duplicate FROM hubbub_append($1, $2, $3, $4, $5, $6)"
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute("CREATE TABLE schema_version (version integer PRIMARY KEY)")
        await connection.execute(_migrations()[0][1])
        await connection.execute("INSERT INTO schema_version VALUES (1)")
        await connection.fetch(old_append, ["r"], ["ann"], ["old"], [T0], ["s:k"], 300_000)
        store = PostgresStore(postgres_dsn)
        await store.open()
        try:
            retried = await store.append("r", "ann", "old", T0 + 1, Retry("ann", "k"), [1])
            assert (retried.duplicate, retried.message.id, retried.message.data) == (True, 1, None)
            assert (await store.append("r", "ann", "new", T0 + 2, data={"a": 1})).message.id == 2
            rows = await connection.fetch(
                old_append,
                ["r", "r"],
                ["bob", "ann"],
                ["by old", "again"],
                [T0 + 3] * 2,
                [None, "s:k"],
                300_000,
            )
            assert [tuple(row) for row in rows] == [(3, False), (1, True)]
            page = await store.history("r", None, 10)
            assert [(m.content, m.data) for m in page.messages] == [
                ("old", None),
                ("new", {"a": 1}),
                ("by old", None),
            ]
        finally:
            await store.close()
    finally:
        await connection.close()


async def test_messages_ids_and_retries_survive_reopening(postgres_dsn: str) -> None:
    first = PostgresStore(postgres_dsn)
    await first.open()
    for n in range(3):
        await first.append("r", "ann", f"m{n}", T0 + n)
    await first.append("r", "ann", "retried", T0 + 3, Retry("ann", "k"))
    await first.close()
    second = PostgresStore(postgres_dsn)
    await second.open()
    try:
        history = (await second.history("r", None, 10)).messages
        assert [m.content for m in history] == ["m0", "m1", "m2", "retried"]
        assert (await second.append("r", "ann", "next", T0 + 5)).message.id == 5
        again = await second.append("r", "ann", "other", T0 + 6, Retry("ann", "k"))
        assert again.duplicate
        assert (again.message.id, again.message.content) == (4, "retried")
    finally:
        await second.close()


@pytest.mark.parametrize(
    "content",
    [
        "  leading and trailing whitespace \t\n",
        "\n",
        "emoji 🦜, combining é, RTL שלום, and a lone \r",
        "x" * 60_000,
        "\x01\x1f\x7f control characters other than NUL",
    ],
)
async def test_content_is_stored_exactly(store: PostgresStore, content: str) -> None:
    appended = await store.append("r", "ann", content, T0)
    [stored] = (await store.history("r", None, 1)).messages
    assert stored.content == content == appended.message.content


async def test_what_text_cannot_hold_is_refused_clearly_and_alone(store: PostgresStore) -> None:
    """PostgreSQL's text cannot hold U+0000 or a lone surrogate: that message fails with
    a ValueError naming it, and the messages beside it in the batch are stored."""
    outcomes: list[Appended | Exception] = []
    done = asyncio.get_running_loop().create_future()

    def stored(outcome: Appended | Exception) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 5:
            done.set_result(None)

    store.submit("r", "ann", "before", T0, None, stored)
    store.submit("r", "ann", "nul \x00 inside", T0 + 1, None, stored)
    store.submit("r", "ann", "ref with nul", T0 + 2, Retry("ann", "a\x00b"), stored)
    store.submit("r", "ann", "lone \ud800 surrogate", T0 + 3, None, stored)
    store.submit("r", "ann", "after", T0 + 4, None, stored)
    async with asyncio.timeout(10):
        await done
    before, nul, nul_ref, surrogate, after = outcomes
    assert isinstance(nul, ValueError)
    assert "U+0000 (NUL) in content" in str(nul)
    assert isinstance(nul_ref, ValueError)
    assert "U+0000 (NUL) in ref" in str(nul_ref)
    assert isinstance(surrogate, ValueError)
    assert "lone surrogate in content" in str(surrogate)
    assert isinstance(before, Appended)
    assert isinstance(after, Appended)
    assert (before.message.id, after.message.id) == (1, 2)
    assert [m.content for m in (await store.history("r", None, 10)).messages] == [
        "before",
        "after",
    ]


async def test_a_retry_within_one_batch_is_answered_with_the_first_message(
    store: PostgresStore,
) -> None:
    outcomes: list[Appended | Exception] = []
    done = asyncio.get_running_loop().create_future()

    def stored(outcome: Appended | Exception) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 3:
            done.set_result(None)

    store.submit("r", "ann", "first", T0, Retry("ann", 1), stored)
    store.submit("r", "ann", "between", T0 + 1, None, stored)
    store.submit("r", "ann", "retry", T0 + 2, Retry("ann", 1), stored)
    async with asyncio.timeout(10):
        await done
    first, between, retry = outcomes
    assert isinstance(first, Appended)
    assert isinstance(between, Appended)
    assert isinstance(retry, Appended)
    assert retry.duplicate
    assert retry.message == first.message
    assert between.message.id == 2


async def test_a_retry_whose_first_message_was_pruned_keeps_its_id(store: PostgresStore) -> None:
    """The content is gone with the message: the retry's own is answered then."""
    first = await store.append("r", "ann", "hello", T0, Retry("ann", "m1"))
    await store.append("r", "ann", "newer", T0 + 1)
    await store.prune(Retention(max_per_room=1, max_age_ms=10**12), T0 + 10)
    again = await store.append("r", "ann", "hello", T0 + 20, Retry("ann", "m1"))
    assert again.duplicate
    assert (again.message.id, again.message.timestamp_ms) == (1, first.message.timestamp_ms)


async def test_killed_connections_are_unavailable_or_replaced_then_recovered(
    postgres_database: str, postgres_dsn: str
) -> None:
    application = f"hubbub_{secrets.token_hex(4)}"
    store = PostgresStore(f"{postgres_dsn}&application_name={application}", pool_size=3)
    await store.open()
    try:
        await asyncio.gather(*(store.append("r", "ann", f"m{n}", T0 + n) for n in range(5)))
        database = postgres_database.rsplit("/", 1)[1]
        for round_ in range(3):
            assert await terminate_backends(database, application) >= 1
            operations = [
                store.append("r", "ann", f"after kill {round_}", T0 + 100),
                store.history("r", None, 100),
                store.since("r", 0, None, 100),
                store.last_id("r"),
                store.prune(Retention(), T0 + 100),
            ]
            for outcome in await asyncio.gather(*operations, return_exceptions=True):
                assert not isinstance(outcome, BaseException) or isinstance(
                    outcome, StoreUnavailable
                ), repr(outcome)
            assert await store.healthy()
        appended = await store.append("r", "ann", "recovered", T0 + 200)
        ids = [m.id for m in (await store.history("r", None, 100)).messages]
        assert ids == list(range(1, appended.message.id + 1))
    finally:
        await store.close()


async def test_an_outage_is_unavailable_in_order_then_recovers(own_database: str) -> None:
    store = PostgresStore(f"{SERVER}/{own_database}", command_timeout=5.0)
    await store.open()
    try:
        assert (await store.append("r", "ann", "before", T0)).message.id == 1
        await allow_connections(own_database, False)
        await terminate_backends(own_database)
        assert not await store.healthy()
        told: list[Appended | Exception] = []
        done = asyncio.get_running_loop().create_future()

        def stored(outcome: Appended | Exception) -> None:
            told.append(outcome)
            if len(told) == 3:
                done.set_result(None)

        for n in range(3):
            store.submit("r", "ann", f"during {n}", T0 + n, None, stored)
        async with asyncio.timeout(10):
            await done
        assert all(isinstance(outcome, StoreUnavailable) for outcome in told)
        with pytest.raises(StoreUnavailable):
            await store.history("r", None, 10)
        with pytest.raises(StoreUnavailable):
            await store.last_id("r")

        await allow_connections(own_database, True)
        assert await store.healthy()
        assert (await store.append("r", "ann", "after", T0 + 10)).message.id == 2
        assert [m.content for m in (await store.history("r", None, 10)).messages] == [
            "before",
            "after",
        ]
    finally:
        await allow_connections(own_database, True)
        await store.close()


async def test_opening_an_unreachable_database_says_where(own_database: str) -> None:
    await allow_connections(own_database, False)
    store = PostgresStore(f"postgresql://postgres:secret@127.0.0.1:5432/{own_database}")
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:5432/{own_database}") as raised:
        await store.open()
    assert "secret" not in str(raised.value)
    await allow_connections(own_database, True)


async def test_a_read_only_database_is_unavailable_then_recovers(own_database: str) -> None:
    """As a standby answers after a failover: connections work, writes do not."""
    store = PostgresStore(f"{SERVER}/{own_database}")
    await store.open()

    async def read_only(on: bool) -> None:
        connection = await admin()
        try:
            await connection.execute(
                f'ALTER DATABASE "{own_database}" SET default_transaction_read_only = {on}'
            )
        finally:
            await connection.close()
        await terminate_backends(own_database)

    try:
        await store.append("r", "ann", "before", T0)
        await read_only(True)
        with pytest.raises(StoreUnavailable):  # the connection lost, or read-only
            await store.append("r", "ann", "during", T0 + 1)
        with pytest.raises(StoreUnavailable, match="read-only"):
            await store.append("r", "ann", "during", T0 + 2)
        assert not await store.healthy()
        assert [m.content for m in (await store.history("r", None, 10)).messages] == ["before"]
        await read_only(False)
        assert await store.healthy()
        assert (await store.append("r", "ann", "after", T0 + 3)).message.id == 2
    finally:
        await store.close()


async def test_a_stuck_database_is_unhealthy_within_the_health_timeout(
    store: PostgresStore, postgres_dsn: str
) -> None:
    """The probe's write waits behind another transaction's lock: /healthz answers 503
    well before a monitor's own timeout, and 200 again once the write works."""
    assert await store.healthy()
    holder = await asyncpg.connect(postgres_dsn)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE probe IN ACCESS EXCLUSIVE MODE")
            started = asyncio.get_running_loop().time()
            assert not await store.healthy()
            assert asyncio.get_running_loop().time() - started < HEALTH_TIMEOUT + 1
        assert await store.healthy()
    finally:
        await holder.close()
