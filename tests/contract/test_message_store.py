"""One contract for every `MessageStore`: the guarantees written on the interface."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from hubbub.store.base import DEDUPE_WINDOW_MS, Appended, MessageStore, Retention, Retry
from hubbub.store.memory import MemoryStore
from hubbub.store.postgres import PostgresStore
from hubbub.store.sqlite import SqliteStore

T0 = 1_795_674_063_000

StoreFactory = Callable[[], Awaitable[MessageStore]]


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores of one kind; for a durable kind each call reopens the same data."""
    opened: list[MessageStore] = []
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgresql" else ""

    async def factory() -> MessageStore:
        store: MessageStore
        if request.param == "memory":
            store = MemoryStore()
        elif request.param == "sqlite":
            store = SqliteStore(tmp_path / "hubbub.db")
        else:
            store = PostgresStore(dsn)
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> MessageStore:
    return await make_store()


async def fill(store: MessageStore, room: str, count: int, start_ms: int = T0) -> list[int]:
    return [
        (await store.append(room, "ann", f"{room}-{n}", start_ms + n)).message.id
        for n in range(count)
    ]


async def test_ids_start_at_1_and_increase_per_room(store: MessageStore) -> None:
    assert await fill(store, "a", 3) == [1, 2, 3]
    assert await fill(store, "b", 2) == [1, 2]
    assert await fill(store, "a", 1) == [4]
    assert await store.last_id("a") == 4
    assert await store.last_id("never") == 0


async def test_appended_message_has_what_was_given(store: MessageStore) -> None:
    appended = await store.append("r", "bob", "hi there", T0)
    assert not appended.duplicate
    message = appended.message
    assert (message.room, message.sender, message.content, message.timestamp_ms) == (
        "r",
        "bob",
        "hi there",
        T0,
    )
    [stored] = (await store.history("r", None, 10)).messages
    assert stored == message


async def test_history_pages_backwards_each_page_oldest_first(store: MessageStore) -> None:
    ids = await fill(store, "r", 7)
    newest = await store.history("r", None, 3)
    assert [m.id for m in newest.messages] == ids[4:]
    assert newest.has_more
    older = await store.history("r", newest.messages[0].id, 3)
    assert [m.id for m in older.messages] == ids[1:4]
    assert older.has_more
    oldest = await store.history("r", older.messages[0].id, 3)
    assert [m.id for m in oldest.messages] == ids[:1]
    assert not oldest.has_more
    assert (await store.history("empty", None, 5)).messages == ()


async def test_since_returns_newer_messages_in_order(store: MessageStore) -> None:
    ids = await fill(store, "r", 6)
    page = await store.since("r", 2, None, 100)
    assert [m.id for m in page.messages] == ids[2:]
    assert not page.has_more
    assert not page.truncated
    bounded = await store.since("r", 2, 4, 100)
    assert [m.id for m in bounded.messages] == [3, 4]
    limited = await store.since("r", 0, None, 2)
    assert [m.id for m in limited.messages] == [1, 2]
    assert limited.has_more
    assert (await store.since("r", 6, None, 10)).messages == ()


async def test_retention_by_count_keeps_the_newest(store: MessageStore) -> None:
    await fill(store, "r", 10)
    await fill(store, "other", 2)
    removed = await store.prune(Retention(max_per_room=4, max_age_ms=10**12), T0 + 100)
    assert removed == 6
    assert [m.id for m in (await store.history("r", None, 100)).messages] == [7, 8, 9, 10]
    assert len((await store.history("other", None, 100)).messages) == 2


async def test_retention_by_age(store: MessageStore) -> None:
    await fill(store, "r", 5, start_ms=T0)
    await store.append("r", "ann", "fresh", T0 + 10_000)
    removed = await store.prune(Retention(max_per_room=100, max_age_ms=5_000), T0 + 12_000)
    assert removed == 5
    assert [m.content for m in (await store.history("r", None, 100)).messages] == ["fresh"]


async def test_since_reports_truncation_by_retention(store: MessageStore) -> None:
    await fill(store, "r", 10)
    await store.prune(Retention(max_per_room=3, max_age_ms=10**12), T0)
    page = await store.since("r", 2, None, 100)
    assert page.truncated
    assert [m.id for m in page.messages] == [8, 9, 10]
    assert not (await store.since("r", 7, None, 100)).truncated
    assert not (await store.since("r", 10, None, 100)).truncated


async def test_ids_are_never_reused_after_everything_was_pruned(store: MessageStore) -> None:
    await fill(store, "r", 3)
    await store.prune(Retention(max_per_room=100, max_age_ms=1), T0 + 10_000)
    assert (await store.history("r", None, 10)).messages == ()
    assert (await store.since("r", 1, None, 10)).truncated
    assert (await store.append("r", "ann", "again", T0 + 10_001)).message.id == 4


EXACT_CONTENTS = [
    "    indented\n\tcode\n",
    "  spaces around  ",
    "\r\nwindows\r\n",
    "\x1b[31mred\x07\x7f\x85",
    "\u202eright to left \U0001f600",
]


async def test_content_is_kept_exactly_whatever_its_characters(store: MessageStore) -> None:
    """A store keeps what it is given: the server refuses control characters, but the
    store must not be what changes a message after it was acknowledged."""
    for n, content in enumerate(EXACT_CONTENTS):
        appended = await store.append("r", "ann", content, T0 + n, Retry("ann", f"k{n}"))
        assert appended.message.content == content
    history = await store.history("r", None, 100)
    assert [m.content for m in history.messages] == EXACT_CONTENTS
    replay = await store.since("r", 0, None, 100)
    assert [m.content for m in replay.messages] == EXACT_CONTENTS
    for n in range(len(EXACT_CONTENTS)):
        again = await store.append("r", "ann", "retried", T0 + 100 + n, Retry("ann", f"k{n}"))
        assert again.duplicate
        assert again.message == history.messages[n]
    batch = await asyncio.gather(
        *(store.append("b", "bob", content, T0 + n) for n, content in enumerate(EXACT_CONTENTS))
    )
    assert [(a.message.id, a.message.content) for a in batch] == list(
        enumerate(EXACT_CONTENTS, start=1)
    )
    assert [m.content for m in (await store.history("b", None, 100)).messages] == EXACT_CONTENTS


async def test_a_nul_is_kept_exactly_or_refused_never_cut(store: MessageStore) -> None:
    """SQLite's JSON functions end text at a NUL: "before\\u0000after" was acked and then
    kept as "before". A store that cannot hold a NUL (PostgreSQL's text) must refuse the
    message instead; either way what is kept is what was given."""
    contents = ["before\x00after", "\x00", "a\x00b\x00c"]
    kept: list[str] = []
    for n, content in enumerate(contents):
        try:
            appended = await store.append("r", "ann", content, T0 + n, Retry("ann", f"n{n}"))
        except Exception:
            continue
        assert appended.message.content == content
        kept.append(content)
    assert [m.content for m in (await store.history("r", None, 100)).messages] == kept
    assert [m.content for m in (await store.since("r", 0, None, 100)).messages] == kept
    outcomes = await asyncio.gather(
        *(store.append("b", "bob", content, T0 + n) for n, content in enumerate(contents)),
        store.append("b", "bob", "plain", T0 + 10),
        return_exceptions=True,
    )
    stored = [o.message.content for o in outcomes if isinstance(o, Appended)]
    assert "plain" in stored
    assert set(stored) - {"plain"} <= set(contents)
    assert [m.content for m in (await store.history("b", None, 100)).messages] == stored


DATA_VALUES: list[object] = [
    {"symbol": "AAPL", "price": 191.2, "change": -0.004},
    {"z": 1, "a": 2, "m": {"y": [], "b": {}}},
    [1, "two", 3.5, True, False, None, {"nested": [[[]]]}],
    "a string \x00 with a NUL, \u202e bidi and \U0001f600",
    0,
    -(2**63),
    2**64 - 1,
    1e-300,
    True,
    False,
    {},
    [],
    {"": "empty key", "\x00": "NUL key", "é": "accented"},
]
"""Values of every JSON kind, keys in no sorted order, extremes of numbers, characters a
text column cannot hold raw (a NUL)."""


def encoded(value: object) -> bytes:
    """The JSON text of a value: equal only when key order and number forms are too."""
    return orjson.dumps(value)


async def test_data_is_kept_with_its_message_and_read_back_unchanged(
    make_store: StoreFactory,
) -> None:
    store = await make_store()
    for n, data in enumerate(DATA_VALUES):
        appended = await store.append("r", "ann", f"m{n}", T0 + n, Retry("ann", f"d{n}"), data)
        assert encoded(appended.message.data) == encoded(data)
    plain = await store.append("r", "ann", "no data", T0 + 100)
    assert plain.message.data is None
    expected = [encoded(data) for data in DATA_VALUES] + [encoded(None)]
    readers = [store]
    if not isinstance(store, MemoryStore):
        readers.append(await make_store())
    for reader in readers:
        history = await reader.history("r", None, 100)
        assert [encoded(m.data) for m in history.messages] == expected
        replay = await reader.since("r", 0, None, 100)
        assert [encoded(m.data) for m in replay.messages] == expected
        assert replay.messages[-1].data is None


async def test_a_retry_answers_the_first_messages_data(store: MessageStore) -> None:
    first = await store.append("r", "ann", "v1", T0, Retry("ann", "k"), {"version": 1})
    again = await store.append("r", "ann", "v2", T0 + 10, Retry("ann", "k"), {"version": 2})
    assert again.duplicate
    assert again.message == first.message
    assert again.message.data == {"version": 1}
    batch = await asyncio.gather(
        store.append("b", "ann", "x", T0, Retry("ann", "k"), ["first"]),
        store.append("b", "ann", "y", T0 + 1, Retry("ann", "k"), ["second"]),
    )
    assert [a.message.data for a in batch] == [["first"], ["first"]]
    assert [m.data for m in (await store.history("b", None, 10)).messages] == [["first"]]


async def test_retry_with_the_same_ref_is_stored_once(store: MessageStore) -> None:
    first = await store.append("r", "ann", "hello", T0, Retry("ann", "m1"))
    again = await store.append("r", "ann", "hello, edited", T0 + 1000, Retry("ann", "m1"))
    assert again.duplicate
    assert again.message == first.message
    assert [m.content for m in (await store.history("r", None, 10)).messages] == ["hello"]


async def test_retry_keys_are_per_user_room_and_typed_ref(store: MessageStore) -> None:
    await store.append("r", "ann", "a", T0, Retry("ann", "5"))
    other_user = await store.append("r", "bob", "b", T0, Retry("bob", "5"))
    other_room = await store.append("s", "ann", "c", T0, Retry("ann", "5"))
    int_ref = await store.append("r", "ann", "d", T0, Retry("ann", 5))
    assert not any(x.duplicate for x in (other_user, other_room, int_ref))
    assert (await store.last_id("r")) == 3


async def test_retry_after_the_window_is_a_new_message(store: MessageStore) -> None:
    first = await store.append("r", "ann", "hi", T0, Retry("ann", "x"))
    later = await store.append("r", "ann", "hi", T0 + DEDUPE_WINDOW_MS + 1, Retry("ann", "x"))
    assert not later.duplicate
    assert later.message.id == first.message.id + 1


async def test_concurrent_appends_get_distinct_gapless_ids(store: MessageStore) -> None:
    results = await asyncio.gather(
        *(store.append(f"room{n % 3}", "ann", f"m{n}", T0 + n) for n in range(300))
    )
    for room in ("room0", "room1", "room2"):
        ids = [r.message.id for r in results if r.message.room == room]
        assert sorted(ids) == list(range(1, 101))
        assert ids == sorted(ids)


async def test_healthy_when_usable(store: MessageStore) -> None:
    assert await store.healthy()


async def test_retry_is_recognised_after_retention_removed_the_first(store: MessageStore) -> None:
    first = await store.append("r", "ann", "hello", T0, Retry("ann", "m1"))
    await fill(store, "r", 3, start_ms=T0 + 1)
    await store.prune(Retention(max_per_room=1, max_age_ms=10**12), T0 + 10)
    again = await store.append("r", "ann", "hello", T0 + 20, Retry("ann", "m1"))
    assert again.duplicate
    assert again.message.id == first.message.id


async def test_submitted_messages_are_reported_in_submission_order(store: MessageStore) -> None:
    outcomes: list[Appended | Exception] = []
    all_reported = asyncio.get_running_loop().create_future()

    def stored(outcome: Appended | Exception) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 200 and not all_reported.done():
            all_reported.set_result(None)

    for n in range(200):
        retry = Retry("ann", n % 150)
        store.submit(f"room{n % 2}", "ann", f"m{n}", T0 + n, retry, stored)
    async with asyncio.timeout(10):
        await all_reported
    assert all(isinstance(outcome, Appended) for outcome in outcomes)
    appended = [outcome for outcome in outcomes if isinstance(outcome, Appended)]
    assert [a.message.content for a in appended[:150]] == [f"m{n}" for n in range(150)]
    assert all(a.duplicate for a in appended[150:])
    assert [a.message for a in appended[150:]] == [a.message for a in appended[:50]]
    for room in ("room0", "room1"):
        ids = [a.message.id for a in appended if a.message.room == room and not a.duplicate]
        assert ids == list(range(1, 76))


async def test_every_write_is_timed_with_the_messages_it_carried(store: MessageStore) -> None:
    times = store.write_times
    before_writes, before_messages = times.writes, times.messages
    await fill(store, "timed", 3)
    assert times.writes - before_writes == 3  # awaited one at a time: one write each
    assert times.messages - before_messages == 3
    assert sum(times.counts) == times.writes
    assert times.seconds > 0

    reported = asyncio.get_running_loop().create_future()
    outcomes: list[Appended | Exception] = []

    def stored(outcome: Appended | Exception) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 50 and not reported.done():
            reported.set_result(None)

    for n in range(50):
        store.submit("timed", "ann", f"burst {n}", T0 + 10 + n, None, stored)
    async with asyncio.timeout(10):
        await reported
    assert times.messages - before_messages == 53
    assert 4 <= times.writes - before_writes <= 53  # a store may write a burst together
