"""Two stores on one PostgreSQL database, as two nodes of a cluster use it: the
guarantees of `MessageStore` hold across them."""

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from hubbub.store.base import Appended, Retention, Retry
from hubbub.store.postgres import PRUNE_LOCK, PostgresStore

pytestmark = pytest.mark.postgres

T0 = 1_795_674_063_000


@pytest.fixture
async def stores(postgres_dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    await asyncio.gather(first.open(), second.open())
    yield first, second
    await asyncio.gather(first.close(), second.close())


async def submit_all(
    store: PostgresStore, messages: Sequence[tuple[str, str, int, Retry | None]]
) -> list[Appended | Exception]:
    """Submit in one loop turn (so they may share a batch); the outcomes as told."""
    outcomes: list[Appended | Exception] = []
    done = asyncio.get_running_loop().create_future()

    def stored(outcome: Appended | Exception) -> None:
        outcomes.append(outcome)
        if len(outcomes) == len(messages):
            done.set_result(None)

    for room, content, timestamp, retry in messages:
        store.submit(room, "ann", content, timestamp, retry, stored)
    async with asyncio.timeout(30):
        await done
    return outcomes


async def test_ids_are_gap_free_and_increasing_under_concurrent_appends_from_both(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    rooms = ["a", "b", "c"]
    rng = random.Random(7)

    async def burst(store: PostgresStore, name: str, rounds: int) -> list[Appended | Exception]:
        told: list[Appended | Exception] = []
        for n in range(rounds):
            batch = [
                (rng.choice(rooms), f"{name}-{n}-{k}", T0 + n, None)
                for k in range(rng.randint(1, 20))
            ]
            told += await submit_all(store, batch)
        return told

    from_first, from_second = await asyncio.gather(
        burst(stores[0], "x", 30), burst(stores[1], "y", 30)
    )
    for told in (from_first, from_second):
        assert all(isinstance(outcome, Appended) for outcome in told)
    appended = [o for o in [*from_first, *from_second] if isinstance(o, Appended)]
    for room in rooms:
        for told in (from_first, from_second):
            ids = [o.message.id for o in told if isinstance(o, Appended) and o.message.room == room]
            assert ids == sorted(ids), "one node's ids in a room increase in submission order"
        mine = sorted(a.message.id for a in appended if a.message.room == room)
        assert mine == list(range(1, len(mine) + 1))
        page = await stores[1].since(room, 0, None, 10_000)
        assert [m.id for m in page.messages] == mine
        by_id = {a.message.id: a.message.content for a in appended if a.message.room == room}
        assert [m.content for m in page.messages] == [by_id[m.id] for m in page.messages]


async def test_batches_crossing_rooms_and_refs_in_opposite_orders_all_succeed(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    """Each batch locks room counters and retry keys; two nodes taking them in opposite
    orders must not deadlock into `unavailable`."""
    rooms = [f"r{n}" for n in range(6)]

    async def run(store: PostgresStore, order: list[str]) -> list[Appended | Exception]:
        told: list[Appended | Exception] = []
        for n in range(40):
            batch = [(room, f"{room}-{n}", T0 + n, Retry("ann", f"{room}-{n}")) for room in order]
            told += await submit_all(store, batch)
        return told

    first, second = await asyncio.gather(
        run(stores[0], rooms), run(stores[1], list(reversed(rooms)))
    )
    outcomes = [*first, *second]
    assert all(isinstance(outcome, Appended) for outcome in outcomes)
    fresh = [o for o in outcomes if isinstance(o, Appended) and not o.duplicate]
    assert len(fresh) == 40 * len(rooms), "each (room, ref) stored once, by one of the two"
    for room in rooms:
        assert await stores[0].last_id(room) == 40


async def test_a_retry_to_the_other_store_is_recognised_with_the_first_content(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    first = await stores[0].append("r", "ann", "hello", T0, Retry("ann", "m1"))
    again = await stores[1].append("r", "ann", "hello, edited", T0 + 1000, Retry("ann", "m1"))
    assert again.duplicate
    assert again.message == first.message
    assert [m.content for m in (await stores[1].history("r", None, 10)).messages] == ["hello"]


async def test_the_same_retry_on_both_at_once_is_stored_once(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    for n in range(20):
        retry = Retry("ann", n)
        one, other = await asyncio.gather(
            stores[0].append("r", "ann", f"m{n}", T0 + n, retry),
            stores[1].append("r", "ann", f"m{n}", T0 + n, retry),
        )
        assert sorted([one.duplicate, other.duplicate]) == [False, True]
        assert one.message.id == other.message.id == n + 1


async def test_a_message_is_readable_on_the_other_store_when_its_append_returns(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    for n in range(20):
        appended = await stores[n % 2].append("r", "ann", f"m{n}", T0 + n)
        reader = stores[(n + 1) % 2]
        assert await reader.last_id("r") == appended.message.id
        [seen] = (await reader.since("r", appended.message.id - 1, None, 10)).messages
        assert seen == appended.message


async def test_retention_is_applied_by_one_store_at_a_time(
    stores: tuple[PostgresStore, PostgresStore], postgres_dsn: str
) -> None:
    for n in range(10):
        await stores[n % 2].append("r", "ann", f"m{n}", T0 + n)
    retention = Retention(max_per_room=4, max_age_ms=10**12)
    holder = await asyncpg.connect(postgres_dsn)
    try:
        assert await holder.fetchval("SELECT pg_try_advisory_lock($1)", PRUNE_LOCK)
        assert await stores[0].prune(retention, T0 + 100) == 0
        assert len((await stores[0].history("r", None, 100)).messages) == 10
        await holder.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK)
    finally:
        await holder.close()
    removed = await asyncio.gather(*(store.prune(retention, T0 + 100) for store in stores))
    assert sum(removed) == 6
    assert [m.id for m in (await stores[1].history("r", None, 100)).messages] == [7, 8, 9, 10]
    assert (await stores[1].append("r", "ann", "next", T0 + 200)).message.id == 11


async def test_stores_opening_together_migrate_once(postgres_dsn: str) -> None:
    stores = [PostgresStore(postgres_dsn) for _ in range(4)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        ids = [(await store.append("r", "ann", "hi", T0)).message.id for store in stores]
        assert ids == [1, 2, 3, 4]
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    connection = await asyncpg.connect(postgres_dsn)
    try:
        versions = await connection.fetch("SELECT version FROM schema_version ORDER BY version")
    finally:
        await connection.close()
    assert [row[0] for row in versions] == list(range(1, len(versions) + 1))


async def test_data_stored_by_one_node_is_read_and_recognised_by_the_other(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    data = {"symbol": "AAPL", "price": 191.2, "history": [1, 2.5, None, "x"]}
    first = await stores[0].append("r", "ann", "AAPL 191.20", T0, Retry("ann", "t1"), data)
    again = await stores[1].append("r", "ann", "AAPL 191.30", T0 + 5, Retry("ann", "t1"), {})
    assert again.duplicate
    assert again.message == first.message
    page = await stores[1].since("r", 0, None, 10)
    assert [m.data for m in page.messages] == [data]
