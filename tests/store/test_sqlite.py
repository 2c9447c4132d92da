"""What only the SQLite store does: durability, migrations, failures of the file."""

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from hubbub.store.base import Appended, Retry, StoreUnavailable
from hubbub.store.sqlite import PAGE_SIZE, SqliteStore, _migrations

LATEST = _migrations()[-1][0]
T0 = 1_795_674_063_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "data" / "hubbub.db", busy_timeout_ms=100)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def lock(store: SqliteStore) -> Iterator[sqlite3.Connection]:
    """Another process's connection, able to hold the database's write lock."""
    other = sqlite3.connect(store.path, isolation_level=None)
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


async def test_messages_and_ids_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "hubbub.db"
    first = SqliteStore(path)
    await first.open()
    for n in range(3):
        await first.append("r", "ann", f"m{n}", T0 + n)
    await first.append("r", "ann", "retried", T0 + 3, Retry("ann", "k"))
    await first.close()
    second = SqliteStore(path)
    await second.open()
    try:
        assert [m.content for m in (await second.history("r", None, 10)).messages] == [
            "m0",
            "m1",
            "m2",
            "retried",
        ]
        assert (await second.append("r", "ann", "next", T0 + 5)).message.id == 5
        again = await second.append("r", "ann", "edited", T0 + 6, Retry("ann", "k"))
        assert again.duplicate
        assert (again.message.id, again.message.content, again.message.timestamp_ms) == (
            4,
            "retried",
            T0 + 3,
        )
    finally:
        await second.close()


async def test_schema_is_versioned_and_in_wal_mode(store: SqliteStore) -> None:
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("SELECT max(version) FROM schema_version").fetchone() == (LATEST,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)


async def test_reopening_does_not_migrate_twice(tmp_path: Path) -> None:
    path = tmp_path / "hubbub.db"
    for _ in range(2):
        store = SqliteStore(path)
        await store.open()
        await store.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT count(*) FROM schema_version").fetchone() == (
            len(_migrations()),
        )


async def test_a_version_3_database_is_migrated_and_keeps_messages_ids_and_retries(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hubbub.db"
    with sqlite3.connect(path, isolation_level=None) as old:
        old.execute("PRAGMA journal_mode = WAL")
        old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, script in _migrations()[:3]:
            old.executescript(f"{script}; INSERT INTO schema_version VALUES ({version});")
        old.execute("INSERT INTO rooms VALUES ('r', 9)")
        old.execute("INSERT INTO messages VALUES ('r', 8, 'ann', 'kept', ?, 's:k')", (T0,))
        old.execute("INSERT INTO retries VALUES ('r', 'ann', 's:k', 8, ?)", (T0,))
    old.close()
    store = SqliteStore(path)
    await store.open()
    try:
        retried = await store.append("r", "ann", "kept", T0 + 1000, Retry("ann", "k"))
        assert retried.duplicate
        assert retried.message.id == 8
        assert (await store.append("r", "ann", "new", T0 + 2000)).message.id == 10
        page = await store.history("r", None, 10)
        assert [(m.id, m.content) for m in page.messages] == [(8, "kept"), (10, "new")]
    finally:
        await store.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT max(version) FROM schema_version").fetchone() == (LATEST,)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_schema")}
        assert "retries" not in tables
        assert "messages_age" not in tables
        assert "messages_room_id" in tables


async def test_a_version_5_database_gets_data_and_keeps_its_messages_without(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hubbub.db"
    with sqlite3.connect(path, isolation_level=None) as old:
        old.execute("PRAGMA journal_mode = WAL")
        old.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, script in _migrations()[:5]:
            old.executescript(f"{script}; INSERT INTO schema_version VALUES ({version});")
        old.execute(
            "INSERT INTO messages (room, id, sender, content, ts_ms, retry_key)"
            " VALUES ('r', 1, 'ann', 'old', ?, 's:k')",
            (T0,),
        )
    old.close()
    store = SqliteStore(path)
    await store.open()
    try:
        retried = await store.append("r", "ann", "old", T0 + 1000, Retry("ann", "k"), {"x": 1})
        assert retried.duplicate
        assert retried.message.data is None
        await store.append("r", "ann", "new", T0 + 2000, data={"x": [1, 2]})
        page = await store.history("r", None, 10)
        assert [(m.content, m.data) for m in page.messages] == [
            ("old", None),
            ("new", {"x": [1, 2]}),
        ]
    finally:
        await store.close()


async def test_locked_database_is_unavailable_then_recovers(
    store: SqliteStore, lock: sqlite3.Connection
) -> None:
    await store.append("r", "ann", "before", T0)
    lock.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreUnavailable):
        await store.append("r", "ann", "while locked", T0 + 1)
    assert not await store.healthy()
    assert [m.content for m in (await store.history("r", None, 10)).messages] == ["before"]
    lock.execute("ROLLBACK")
    assert await store.healthy()
    assert (await store.append("r", "ann", "after", T0 + 2)).message.id == 2


async def test_only_writes_that_stored_something_are_timed(
    store: SqliteStore, lock: sqlite3.Connection
) -> None:
    """A failed write is an error to the client, not a latency: it stays out of the
    histogram, so a locked database does not pass for a fast disk."""
    await store.append("r", "ann", "before", T0)
    assert (store.write_times.writes, store.write_times.messages) == (1, 1)
    lock.execute("BEGIN EXCLUSIVE")
    with pytest.raises(StoreUnavailable):
        await store.append("r", "ann", "while locked", T0 + 1)
    assert (store.write_times.writes, store.write_times.messages) == (1, 1)
    lock.execute("ROLLBACK")
    await store.append("r", "ann", "after", T0 + 2)
    assert (store.write_times.writes, store.write_times.messages) == (2, 2)


async def test_sqlite_runs_off_the_event_loop_thread(store: SqliteStore) -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = store._connect

    def spy() -> sqlite3.Connection:
        seen.append(threading.get_ident())
        return original()

    store._connect = spy  # type: ignore[method-assign]
    await store.history("r", None, 10)
    await store.since("r", 0, None, 10)
    assert seen
    assert loop_thread not in seen


async def test_a_writer_that_dies_leaves_no_append_unanswered(store: SqliteStore) -> None:
    """A BaseException escapes the writer's guard and ends its thread, as a bug would:
    what it held and what waited behind it are answered `unavailable`, not forgotten."""
    started, release = threading.Event(), threading.Event()

    def stall_then_die(connection: sqlite3.Connection) -> None:
        started.set()
        release.wait(10)
        raise SystemExit("a bug in the writer")

    dying = asyncio.ensure_future(store._write(stall_then_die))
    assert await asyncio.to_thread(started.wait, 10)
    outcomes: list[object] = []
    all_answered = asyncio.Event()

    def stored(outcome: object) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 3:
            all_answered.set()

    for n in range(3):
        store.submit("r", "ann", f"waiting {n}", T0 + n, None, stored)
    release.set()
    async with asyncio.timeout(10):
        await all_answered.wait()
        with pytest.raises(StoreUnavailable):
            await dying
    assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes), outcomes
    with pytest.raises(StoreUnavailable):
        await store.append("r", "ann", "after", T0 + 10)
    assert not await store.healthy()


async def test_appends_within_the_commit_delay_share_one_commit_in_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "hubbub.db", commit_delay=0.5)
    await store.open()
    batches: list[int] = []
    original = store._append_all

    def counting(connection: sqlite3.Connection, appends: list[Any]) -> list[Any]:
        batches.append(len(appends))
        return original(connection, appends)

    store._append_all = counting  # type: ignore[method-assign]
    try:
        await store.append("r", "ann", "first", T0)
        following = []
        for n in range(10):
            following.append(asyncio.ensure_future(store.append("r", "ann", f"m{n}", T0 + n)))
            await asyncio.sleep(0)
        async with asyncio.timeout(10):
            stored = await asyncio.gather(*following)
        assert [appended.message.id for appended in stored] == list(range(2, 12))
        assert batches == [1, 10]
    finally:
        await store.close()


async def test_closing_stores_the_appends_still_waiting_for_the_commit_delay(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hubbub.db"
    store = SqliteStore(path, commit_delay=60.0)
    await store.open()
    await store.append("r", "ann", "first", T0)
    outcomes: list[Appended | Exception] = []
    for n in range(3):
        store.submit("r", "ann", f"waiting {n}", T0 + n, None, outcomes.append)
    async with asyncio.timeout(10):
        await store.close()
    ids = [o.message.id if isinstance(o, Appended) else o for o in outcomes]
    assert ids == [2, 3, 4]
    reopened = SqliteStore(path)
    await reopened.open()
    try:
        page = await reopened.history("r", None, 10)
        assert [m.content for m in page.messages] == [
            "first",
            "waiting 0",
            "waiting 1",
            "waiting 2",
        ]
    finally:
        await reopened.close()


async def test_appends_waiting_for_the_commit_delay_when_the_writer_dies_are_answered(
    tmp_path: Path,
) -> None:
    """They reach the writer's queue only after it stopped: `unavailable`, not silence."""
    store = SqliteStore(tmp_path / "hubbub.db", commit_delay=0.3)
    await store.open()
    try:
        await store.append("r", "ann", "first", T0)
        outcomes: list[Appended | Exception] = []
        all_answered = asyncio.Event()

        def stored(outcome: Appended | Exception) -> None:
            outcomes.append(outcome)
            if len(outcomes) == 2:
                all_answered.set()

        for n in range(2):
            store.submit("r", "ann", f"waiting {n}", T0 + n, None, stored)

        def die(connection: sqlite3.Connection) -> None:
            raise SystemExit("a bug in the writer")

        with pytest.raises(StoreUnavailable):
            await store._write(die)
        assert outcomes == []
        async with asyncio.timeout(10):
            await all_answered.wait()
        assert all(isinstance(outcome, StoreUnavailable) for outcome in outcomes), outcomes
    finally:
        await store.close()


@pytest.mark.parametrize(("synchronous", "level"), [("FULL", 2), ("NORMAL", 1)])
async def test_the_writer_commits_at_the_chosen_synchronous_level(
    tmp_path: Path, synchronous: str, level: int
) -> None:
    store = SqliteStore(tmp_path / "hubbub.db", synchronous=synchronous)
    await store.open()
    try:

        def read_level(connection: sqlite3.Connection) -> int:
            return int(connection.execute("PRAGMA synchronous").fetchone()[0])

        assert await store._write(read_level) == level
    finally:
        await store.close()
