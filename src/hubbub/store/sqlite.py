"""The SQLite store, the embedded default: one file, WAL mode, grouped commits.

No SQLite call runs on the event loop. One writer thread owns the write
connection and takes every append waiting in its queue into one
transaction, so a burst costs one commit (one fsync), not one per message;
with a commit delay, busy rooms' appends are handed to it in groups
(`CommitPacer`) so that a steady stream is grouped too. A small pool of
reader threads serves history and replay, which WAL lets run beside the
writer. Results go back to the loop in order, one callback per batch, so the
server broadcasts messages in id order.

A batch of appends is one statement in autocommit mode: every row goes in
through `json_each`, so SQLite parses, inserts and commits the whole batch
in a single step with the GIL released. Python's sqlite3 gives the GIL up
around every step, and a writer thread that has to win it back from a busy
event loop several times per batch spent most of its time waiting; one step
is one wait. The same thinking keeps per-message page writes down: rows are
stored in arrival order, so a batch fills a few pages at the end of the table,
plus one page of the (room, id) index per busy room.
Retry keys are looked up in memory (`RecentRetries`), rooms' counters are
cached by the writer, and `rooms.last_id` is written only when retention
deletes, so an id is never handed out twice even after a room was emptied.
"""

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import orjson

from hubbub.protocol.events import ChatMessage
from hubbub.store.base import (
    DEDUPE_WINDOW_MS,
    Appended,
    Page,
    Retention,
    Retry,
    Stored,
    StoreUnavailable,
    submitted,
)
from hubbub.store.commit_pacer import CommitPacer
from hubbub.store.recent import RecentRetries, RetryKey
from hubbub.store.write_times import WriteTimes

log = logging.getLogger("hubbub.store")

T = TypeVar("T")

_Result = tuple["asyncio.Future[Any] | Stored", Any, Exception | None]
"""Whom to tell (a job's future, or an append's callback) and what: a value, or an error."""

MAX_BATCH = 1000
CHECKPOINT_INTERVAL_SECONDS = 1.0
PRUNE_CHUNK = 5000
PAGE_SIZE = 1024
"""Bytes per page of a new database. A commit writes every page it touched to the
WAL whole, and a batch touches one index page per busy room: small pages keep
that write (and its checksum) small. Existing databases keep their page size."""
MIN_FREE_BYTES = 256 * 1024
"""Below this much free space on the database's filesystem the store calls itself
unhealthy. The probe's own write can land in WAL space allocated earlier, so its
success alone does not show that the disk has room for the next batch."""


def _migrations() -> list[tuple[int, str]]:
    """Numbered SQL scripts in `migrations/`, in order: `001_name.sql` is version 1."""
    scripts = []
    for entry in files("hubbub.store.migrations").iterdir():
        if entry.name.endswith(".sql"):
            scripts.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(scripts)


def _unavailable(error: sqlite3.Error) -> bool:
    """Errors of the storage (locked, full, read-only, corrupt), as opposed to our bugs."""
    return isinstance(error, sqlite3.OperationalError) or type(error) is sqlite3.DatabaseError


@dataclass(slots=True)
class _Job:
    """Anything but an append: runs in a transaction of its own."""

    run: Callable[[sqlite3.Connection], Any]
    future: "asyncio.Future[Any]"


@dataclass(slots=True)
class _Append:
    """One message to store; appends waiting together share one transaction."""

    room: str
    sender: str
    content: str
    timestamp_ms: int
    key: str | None
    stored: Stored
    data: object = None
    """The message's `data` as given (None: it has none)."""
    data_text: str | None = None
    """The same encoded as JSON, as stored."""


_Queued: TypeAlias = _Job | list[_Append] | None
"""What the writer's queue holds: a job, appends handed over together, or the end."""


@dataclass
class SqliteStore:
    path: Path
    busy_timeout_ms: int = 5000
    synchronous: str = "FULL"
    commit_delay: float = 0.0
    """Seconds an append may wait to share a commit with others (see `CommitPacer`)."""
    _jobs: "queue.SimpleQueue[_Queued]" = field(default_factory=queue.SimpleQueue)
    _pacer: CommitPacer["_Append"] | None = None
    _writer: threading.Thread | None = None
    _writing: bool = False
    """True while the writer thread takes jobs (cheaper to read than `is_alive()`)."""
    _readers: ThreadPoolExecutor | None = None
    _local: threading.local = field(default_factory=threading.local)
    _reader_connections: list[sqlite3.Connection] = field(default_factory=list)
    _failing: bool = False
    _checkpointer: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _recent: RecentRetries = field(default_factory=RecentRetries)
    """Owned by the writer thread once it started."""
    _last_ids: dict[str, int] = field(default_factory=dict)
    """Each room's highest stored id, as far as the writer has seen it; writer-owned."""
    write_times: WriteTimes = field(default_factory=WriteTimes)
    """Recorded by the writer thread."""

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        connection.execute(f"PRAGMA synchronous = {self.synchronous}")
        connection.execute("PRAGMA temp_store = MEMORY")
        return connection

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pacer = CommitPacer(self._put, self.commit_delay)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._writer = threading.Thread(
            target=self._write_loop, args=(loop, ready), name="sqlite-writer", daemon=True
        )
        self._writer.start()
        await ready
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sqlite-reader")
        self._stopping.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="sqlite-checkpointer", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database beside the writer, never in its way.

        SQLite's automatic checkpoint runs inside a commit, so every message
        waiting on that commit would wait for the database file's fsync too
        (stalls of hundreds of milliseconds under load). A passive checkpoint
        from another connection takes no lock writers need."""
        connection = self._connect()
        try:
            while not self._stopping.wait(CHECKPOINT_INTERVAL_SECONDS):
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.OperationalError as error:
                    log.debug("checkpoint skipped: %s", error)
        finally:
            connection.close()

    def _migrate(self, connection: sqlite3.Connection) -> None:
        connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = connection.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        for version, script in _migrations():
            if version <= current:
                continue
            log.info("migrating %s to schema version %d", self.path, version)
            try:
                connection.executescript(
                    f"BEGIN IMMEDIATE; {script};"
                    f" INSERT INTO schema_version (version) VALUES ({version}); COMMIT;"
                )
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    # --- the writer thread -------------------------------------------------------------

    def _write_loop(self, loop: asyncio.AbstractEventLoop, ready: "asyncio.Future[None]") -> None:
        try:
            connection = self._connect()
            self._migrate(connection)
            connection.execute("PRAGMA wal_autocheckpoint = 0")
            _load_recent_retries(connection, self._recent)
        except Exception as error:
            opened: list[_Result] = [(ready, None, error)]
            loop.call_soon_threadsafe(_settle, opened)
            return
        self._writing = True
        opened = [(ready, None, None)]
        loop.call_soon_threadsafe(_settle, opened)
        carried: list[_Queued] = []
        in_hand: list[_Job | _Append] = []
        """Taken from the queue, not yet answered."""
        try:
            while (job := carried.pop() if carried else self._jobs.get()) is not None:
                if isinstance(job, _Job):
                    in_hand = [job]
                    value, failure = self._in_transaction(connection, job.run)
                    results: list[_Result] = [(job.future, value, failure)]
                else:
                    appends = self._waiting_appends(job, carried)
                    in_hand = list(appends)
                    results = self._append_all(connection, appends)
                loop.call_soon_threadsafe(_settle, results)
                in_hand = []
        except BaseException:
            # The thread ends here either way; what it held is answered below.
            log.exception("the message store's writer stopped")
        finally:
            self._writing = False
            connection.close()
            stranded = [*in_hand, *_flattened(carried)]
            stranded += _take_all(self._jobs)
            if stranded:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, _failed(stranded))

    def _put(self, item: "_Job | list[_Append]") -> None:
        self._jobs.put(item)
        if not self._writing:
            # The writer stopped between the caller's check and the put: answer here.
            stranded = _take_all(self._jobs)
            if stranded:
                asyncio.get_running_loop().call_soon(_settle, _failed(stranded))

    def _waiting_appends(self, first: list[_Append], carried: list[_Queued]) -> list[_Append]:
        """`first` and the appends queued right behind it, up to about `MAX_BATCH`
        (anything else is carried over)."""
        appends = first
        while len(appends) < MAX_BATCH:
            try:
                following = self._jobs.get_nowait()
            except queue.Empty:
                break
            if not isinstance(following, list):
                carried.append(following)
                break
            appends += following
        return appends

    def _append_all(self, connection: sqlite3.Connection, appends: list[_Append]) -> list[_Result]:
        def store(c: sqlite3.Connection) -> _Stored:
            return _store_appends(c, appends, self._recent, self._last_ids)

        started = time.perf_counter()
        done, failure = self._guarded(connection, store)
        if done is None:
            return [(append.stored, None, failure) for append in appends]
        self.write_times.record(time.perf_counter() - started, len(appends))
        self._recent.remember(done.firsts)
        self._last_ids.update(done.last_ids)
        return [(a.stored, value, None) for a, value in zip(appends, done.results, strict=True)]

    def _in_transaction(
        self, connection: sqlite3.Connection, run: Callable[[sqlite3.Connection], T]
    ) -> tuple[T | None, Exception | None]:
        """Run `run` in one transaction: its value, or the error to fail its callers with."""

        def transaction(connection: sqlite3.Connection) -> T:
            connection.execute("BEGIN IMMEDIATE")
            try:
                value = run(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            return value

        return self._guarded(connection, transaction)

    def _guarded(
        self, connection: sqlite3.Connection, run: Callable[[sqlite3.Connection], T]
    ) -> tuple[T | None, Exception | None]:
        """Run `run`: its value, or the error to fail its callers with (storage errors
        become `StoreUnavailable`, logged once per outage)."""
        try:
            value = run(connection)
        except Exception as error:
            failure: Exception = error
            if isinstance(error, sqlite3.Error) and _unavailable(error):
                if not self._failing:
                    log.error("message store unavailable: %s", error)
                self._failing = True
                failure = StoreUnavailable(str(error))
            return None, failure
        if self._failing:
            log.info("message store available again")
        self._failing = False
        return value, None

    async def _write(self, run: Callable[[sqlite3.Connection], T]) -> T:
        if not self._writing:
            raise StoreUnavailable("store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._put(_Job(run, future))
        return await future

    async def _read(self, run: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise StoreUnavailable("store is not open")

        def in_thread() -> T:
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = self._connect()
                self._reader_connections.append(connection)
            try:
                return run(connection)
            except sqlite3.Error as error:
                if _unavailable(error):
                    raise StoreUnavailable(str(error)) from error
                raise

        return await asyncio.get_running_loop().run_in_executor(self._readers, in_thread)

    # --- the interface -----------------------------------------------------------------

    async def append(
        self,
        room: str,
        sender: str,
        content: str,
        timestamp_ms: int,
        retry: Retry | None = None,
        data: object = None,
    ) -> Appended:
        return await submitted(self.submit, room, sender, content, timestamp_ms, retry, data)

    def submit(
        self,
        room: str,
        sender: str,
        content: str,
        timestamp_ms: int,
        retry: Retry | None,
        stored: Stored,
        data: object = None,
    ) -> None:
        if not self._writing or self._pacer is None:
            stored(StoreUnavailable("store is not open"))
            return
        key = retry.key() if retry is not None else None
        text = None if data is None else orjson.dumps(data).decode()
        self._pacer.add(room, _Append(room, sender, content, timestamp_ms, key, stored, data, text))

    async def history(self, room: str, before: int | None, limit: int) -> Page:
        def run(connection: sqlite3.Connection) -> Page:
            rows = connection.execute(
                "SELECT id, sender, content, ts_ms, data FROM messages WHERE room = ? AND id < ?"
                " ORDER BY id DESC LIMIT ?",
                (room, before if before is not None else 2**63 - 1, limit + 1),
            ).fetchall()
            newest = rows[:limit]
            newest.reverse()
            return Page(_messages(room, newest), has_more=len(rows) > limit)

        return await self._read(run)

    async def since(self, room: str, after: int, upto: int | None, limit: int) -> Page:
        def run(connection: sqlite3.Connection) -> Page:
            rows = connection.execute(
                "SELECT id, sender, content, ts_ms, data FROM messages"
                " WHERE room = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
                (room, after, upto if upto is not None else 2**63 - 1, limit + 1),
            ).fetchall()
            oldest, last = connection.execute(
                f"SELECT (SELECT min(id) FROM messages WHERE room = :room), {_last_id_of(':room')}",
                {"room": room},
            ).fetchone()
            oldest_kept = oldest if oldest is not None else last + 1
            truncated = after + 1 < oldest_kept and after < last
            return Page(_messages(room, rows[:limit]), len(rows) > limit, truncated)

        return await self._read(run)

    async def last_id(self, room: str) -> int:
        def run(connection: sqlite3.Connection) -> int:
            return int(
                connection.execute(f"SELECT {_last_id_of(':room')}", {"room": room}).fetchone()[0]
            )

        return await self._read(run)

    async def prune(self, retention: Retention, now_ms: int) -> int:
        """Delete in chunks, each its own transaction, so appends are never held up for long."""
        removed = 0
        cutoff = now_ms - retention.max_age_ms
        rooms = await self._read(_rooms_with_messages)
        for room in rooms:

            def bounds(connection: sqlite3.Connection, room: str = room) -> tuple[int, int | None]:
                """The room's newest id, and its oldest message young enough to keep
                (found walking from the oldest: ids grow with time)."""
                last, kept = connection.execute(
                    "SELECT (SELECT max(id) FROM messages WHERE room = :room),"
                    " (SELECT id FROM messages WHERE room = :room AND ts_ms >= :cutoff"
                    " ORDER BY id LIMIT 1)",
                    {"room": room, "cutoff": cutoff},
                ).fetchone()
                return last or 0, kept

            last, kept = await self._read(bounds)
            floor = max(last - retention.max_per_room, last if kept is None else kept - 1)

            def by_count(
                connection: sqlite3.Connection, room: str = room, floor: int = floor
            ) -> int:
                connection.execute(
                    "INSERT INTO rooms (name, last_id)"
                    " SELECT room, max(id) FROM messages WHERE room = :room GROUP BY room"
                    " ON CONFLICT (name) DO UPDATE SET last_id = max(last_id, excluded.last_id)",
                    {"room": room},
                )
                return connection.execute(
                    "DELETE FROM messages WHERE (room, id) IN (SELECT room, id FROM messages"
                    " WHERE room = ? AND id <= ? LIMIT ?)",
                    (room, floor, PRUNE_CHUNK),
                ).rowcount

            if floor > 0:
                while (count := await self._write(by_count)) > 0:
                    removed += count
        return removed

    async def healthy(self) -> bool:
        def probe(connection: sqlite3.Connection) -> bool:
            connection.execute(
                "INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?)", (time.time_ns() // 1000,)
            )
            space = os.statvfs(self.path.parent)
            return space.f_bavail * space.f_frsize >= MIN_FREE_BYTES

        try:
            return await self._write(probe)
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        self._stopping.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        if self._pacer is not None:
            self._pacer.flush()
            self._pacer = None
        if self._writer is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._readers is not None:
            readers = self._readers
            self._readers = None
            await asyncio.to_thread(readers.shutdown)
            for connection in self._reader_connections:
                connection.close()


@dataclass(slots=True)
class _Stored:
    results: list[Appended]
    firsts: dict[RetryKey, tuple[int, int]]
    """New retry keys, to remember once the batch is stored."""
    last_ids: dict[str, int]
    """Rooms' highest ids after the batch, to cache once it is stored."""


def _store_appends(
    connection: sqlite3.Connection,
    batch: list[_Append],
    recent: RecentRetries,
    cached_last_ids: dict[str, int],
) -> _Stored:
    """Store a batch in one statement (so in one transaction, in autocommit mode): ids
    from each room's counter, retries (earlier, or in this batch) answered with the first
    message. Changes no state: the caller applies `_Stored` once it is stored."""
    unknown = [room for room in {a.room for a in batch} if room not in cached_last_ids]
    last_ids = _last_ids(connection, unknown) if unknown else {}
    fresh: dict[RetryKey, ChatMessage] = {}
    results: list[Appended] = []
    rows: list[_Row] = []
    for append in batch:
        room = append.room
        key = (room, append.sender, append.key or "")
        if append.key is not None:
            earlier = fresh.get(key)
            if (
                earlier is not None
                and append.timestamp_ms - earlier.timestamp_ms < DEDUPE_WINDOW_MS
            ):
                results.append(Appended(earlier, duplicate=True))
                continue
            first = recent.first(key, append.timestamp_ms)
            if first is not None:
                results.append(Appended(_first_message(connection, append, first), True))
                continue
        last = last_ids[room] if room in last_ids else cached_last_ids[room]
        message_id = last_ids[room] = last + 1
        message = ChatMessage(
            message_id, room, append.sender, append.content, append.timestamp_ms, append.data
        )
        rows.append(
            (
                room,
                append.sender,
                message_id,
                append.content,
                append.timestamp_ms,
                append.key,
                append.data_text,
            )
        )
        if append.key is not None:
            fresh[key] = message
        results.append(Appended(message))
    if rows:
        _insert(connection, rows)
    firsts = {key: (message.id, message.timestamp_ms) for key, message in fresh.items()}
    return _Stored(results, firsts, last_ids)


_Row: TypeAlias = tuple[str, str, int, str, int, str | None, str | None]
"""(room, sender, id, content, ts_ms, retry_key, data), in the columns' order."""

_INSERT = "INSERT INTO messages (room, sender, id, content, ts_ms, retry_key, data)"


def _insert(connection: sqlite3.Connection, rows: list[_Row]) -> None:
    """Insert a batch in one statement, through `json_each`; rows with a NUL in their text
    one by one in a transaction instead, since SQLite's JSON functions end text at a NUL."""
    if any("\x00" in row[1] or "\x00" in row[3] or "\x00" in (row[5] or "") for row in rows):
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(f"{_INSERT} VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return
    connection.execute(
        f"{_INSERT} SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,"
        " value ->> 5, value ->> 6 FROM json_each(?)",
        (orjson.dumps(rows).decode(),),
    )


def _first_message(
    connection: sqlite3.Connection, retry: _Append, first: tuple[int, int]
) -> ChatMessage:
    """The stored message a retry repeats. Once retention removed it, only its id and
    time are known (the retry is still recognised): its content and data are then the
    retry's."""
    message_id, timestamp = first
    row = connection.execute(
        "SELECT content, data FROM messages WHERE room = ? AND id = ?", (retry.room, message_id)
    ).fetchone()
    if row is None:
        content, data = retry.content, retry.data
    else:
        content, data = row[0], _data(row[1])
    return ChatMessage(message_id, retry.room, retry.sender, content, timestamp, data)


def _last_id_of(room: str) -> str:
    """SQL for a room's highest id ever: its newest message's, or what retention recorded
    when it deleted (`rooms.last_id` is written only then). `room` is an SQL expression."""
    return (
        f"max(coalesce((SELECT last_id FROM rooms WHERE name = {room}), 0),"
        f" coalesce((SELECT max(id) FROM messages WHERE room = {room}), 0))"
    )


def _last_ids(connection: sqlite3.Connection, rooms: list[str]) -> dict[str, int]:
    query = f"SELECT value, {_last_id_of('value')} FROM json_each(?)"
    return dict(connection.execute(query, (orjson.dumps(rooms).decode(),)).fetchall())


def _load_recent_retries(connection: sqlite3.Connection, recent: RecentRetries) -> None:
    """Remember the retry keys stored within the window before the newest message.

    The window is measured on the stored timestamps rather than the clock, so
    a server that was down for a while still recognises what was sent just
    before it stopped. Each room is read from its newest message backwards."""
    rooms = _rooms_with_messages(connection)
    newest = 0
    for room in rooms:
        row = connection.execute(
            "SELECT ts_ms FROM messages WHERE room = ? ORDER BY id DESC LIMIT 1", (room,)
        ).fetchone()
        if row is not None:
            newest = max(newest, int(row[0]))
    cutoff = newest - recent.window_ms
    found: list[tuple[int, RetryKey, tuple[int, int]]] = []
    for room in rooms:
        for sender, retry_key, message_id, timestamp in connection.execute(
            "SELECT sender, retry_key, id, ts_ms FROM messages WHERE room = ? ORDER BY id DESC",
            (room,),
        ):
            if timestamp <= cutoff:
                break
            if retry_key is not None:
                found.append((timestamp, (room, sender, retry_key), (message_id, timestamp)))
    found.sort(key=lambda entry: entry[0])
    recent.remember({key: first for _, key, first in found[-recent.capacity :]})


def _rooms_with_messages(connection: sqlite3.Connection) -> list[str]:
    """Every room with a stored message, one primary-key seek per room (no full scan)."""
    return [
        row[0]
        for row in connection.execute(
            "WITH RECURSIVE r (room) AS (SELECT min(room) FROM messages UNION ALL"
            " SELECT (SELECT min(room) FROM messages WHERE room > r.room) FROM r"
            " WHERE r.room IS NOT NULL) SELECT room FROM r WHERE room IS NOT NULL"
        )
    ]


def _messages(room: str, rows: list[Any]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(row[0], room, row[1], row[2], row[3], _data(row[4])) for row in rows)


def _data(stored: str | None) -> object:
    """A message's `data` from its stored JSON text (None: the message has none)."""
    return None if stored is None else orjson.loads(stored)


def _take_all(jobs: "queue.SimpleQueue[_Queued]") -> list["_Job | _Append"]:
    taken: list[_Queued] = []
    while True:
        try:
            taken.append(jobs.get_nowait())
        except queue.Empty:
            return _flattened(taken)


def _flattened(items: list[_Queued]) -> list["_Job | _Append"]:
    flat: list[_Job | _Append] = []
    for item in items:
        if isinstance(item, list):
            flat += item
        elif item is not None:
            flat.append(item)
    return flat


def _failed(stranded: list["_Job | _Append"]) -> list[_Result]:
    """Answers for work the writer will never do: the store is unavailable."""
    error = StoreUnavailable("the message store's writer stopped")
    return [(job.future if isinstance(job, _Job) else job.stored, None, error) for job in stranded]


def _settle(results: list[_Result]) -> None:
    for whom, value, error in results:
        if not isinstance(whom, asyncio.Future):
            try:
                whom(error if error is not None else value)
            except Exception:
                log.exception("a caller failed handling a stored message")
        elif whom.cancelled():
            continue
        elif error is not None:
            whom.set_exception(error)
        else:
            whom.set_result(value)
