"""The SQLite store, the embedded default: one file, WAL mode, grouped commits.

No SQLite call runs on the event loop. One writer thread owns the write
connection and takes every append waiting in its queue into one
transaction, so a burst costs one commit (one fsync), not one per message;
a small pool of reader threads serves history and replay, which WAL lets
run beside the writer. Results go back to the loop in order, one callback
per batch, so the server broadcasts messages in id order.
"""

import asyncio
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from hubbub.protocol.events import ChatMessage
from hubbub.store.base import (
    DEDUPE_WINDOW_MS,
    Appended,
    Page,
    Retention,
    Retry,
    StoreUnavailable,
)

log = logging.getLogger("hubbub.store")

T = TypeVar("T")

_Result = tuple["asyncio.Future[Any]", Any, BaseException | None]
"""A job's future and what to settle it with: a value, or an error."""

MAX_BATCH = 1000
CHECKPOINT_INTERVAL_SECONDS = 1.0
PRUNE_CHUNK = 5000


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
    future: "asyncio.Future[Appended]"


@dataclass
class SqliteStore:
    path: Path
    busy_timeout_ms: int = 5000
    synchronous: str = "FULL"
    _jobs: "queue.SimpleQueue[_Job | _Append | None]" = field(default_factory=queue.SimpleQueue)
    _writer: threading.Thread | None = None
    _readers: ThreadPoolExecutor | None = None
    _local: threading.local = field(default_factory=threading.local)
    _reader_connections: list[sqlite3.Connection] = field(default_factory=list)
    _failing: bool = False
    _checkpointer: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        connection.execute(f"PRAGMA synchronous = {self.synchronous}")
        return connection

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
        except BaseException as error:
            opened: list[_Result] = [(ready, None, error)]
            loop.call_soon_threadsafe(_settle, opened)
            return
        opened = [(ready, None, None)]
        loop.call_soon_threadsafe(_settle, opened)
        carried: list[_Job | _Append | None] = []
        while (job := carried.pop() if carried else self._jobs.get()) is not None:
            if isinstance(job, _Job):
                value, failure = self._in_transaction(connection, job.run)
                results: list[_Result] = [(job.future, value, failure)]
            else:
                results = self._append_all(connection, self._waiting_appends(job, carried))
            loop.call_soon_threadsafe(_settle, results)
        connection.close()

    def _waiting_appends(
        self, first: _Append, carried: list[_Job | _Append | None]
    ) -> list[_Append]:
        """`first` and the appends queued right behind it (anything else is carried over)."""
        appends = [first]
        while len(appends) < MAX_BATCH:
            try:
                following = self._jobs.get_nowait()
            except queue.Empty:
                break
            if not isinstance(following, _Append):
                carried.append(following)
                break
            appends.append(following)
        return appends

    def _append_all(self, connection: sqlite3.Connection, appends: list[_Append]) -> list[_Result]:
        def store(c: sqlite3.Connection) -> list[Appended]:
            return _store_appends(c, appends)

        stored, failure = self._in_transaction(connection, store)
        if stored is None:
            return [(append.future, None, failure) for append in appends]
        return [(a.future, value, None) for a, value in zip(appends, stored, strict=True)]

    def _in_transaction(
        self, connection: sqlite3.Connection, run: Callable[[sqlite3.Connection], T]
    ) -> tuple[T | None, Exception | None]:
        """Run `run` in one transaction: its value, or the error to fail its callers with."""
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                value = run(connection)
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
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
        if self._writer is None or not self._writer.is_alive():
            raise StoreUnavailable("store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Job(run, future))
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
        self, room: str, sender: str, content: str, timestamp_ms: int, retry: Retry | None = None
    ) -> Appended:
        if self._writer is None or not self._writer.is_alive():
            raise StoreUnavailable("store is not open")
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        key = retry.key() if retry is not None else None
        self._jobs.put(_Append(room, sender, content, timestamp_ms, key, future))
        return await future

    async def history(self, room: str, before: int | None, limit: int) -> Page:
        def run(connection: sqlite3.Connection) -> Page:
            rows = connection.execute(
                "SELECT id, sender, content, ts_ms FROM messages WHERE room = ? AND id < ?"
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
                "SELECT id, sender, content, ts_ms FROM messages"
                " WHERE room = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
                (room, after, upto if upto is not None else 2**63 - 1, limit + 1),
            ).fetchall()
            oldest, last = connection.execute(
                "SELECT (SELECT min(id) FROM messages WHERE room = ?),"
                " (SELECT last_id FROM rooms WHERE name = ?)",
                (room, room),
            ).fetchone()
            last = last or 0
            oldest_kept = oldest if oldest is not None else last + 1
            truncated = after + 1 < oldest_kept and after < last
            return Page(_messages(room, rows[:limit]), len(rows) > limit, truncated)

        return await self._read(run)

    async def last_id(self, room: str) -> int:
        def run(connection: sqlite3.Connection) -> int:
            row = connection.execute("SELECT last_id FROM rooms WHERE name = ?", (room,)).fetchone()
            return int(row[0]) if row else 0

        return await self._read(run)

    async def prune(self, retention: Retention, now_ms: int) -> int:
        """Delete in chunks, each its own transaction, so appends are never held up for long."""
        removed = 0
        cutoff = now_ms - retention.max_age_ms

        def by_age(connection: sqlite3.Connection) -> int:
            return connection.execute(
                "DELETE FROM messages WHERE (room, id) IN"
                " (SELECT room, id FROM messages WHERE ts_ms < ? LIMIT ?)",
                (cutoff, PRUNE_CHUNK),
            ).rowcount

        while (count := await self._write(by_age)) > 0:
            removed += count

        def old_retries(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM retries WHERE ts_ms < ?", (now_ms - DEDUPE_WINDOW_MS,))

        await self._write(old_retries)
        rooms = await self._read(
            lambda connection: connection.execute("SELECT name, last_id FROM rooms").fetchall()
        )
        for room, last in rooms:
            floor = last - retention.max_per_room

            def by_count(
                connection: sqlite3.Connection, room: str = room, floor: int = floor
            ) -> int:
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
        def probe(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?)", (time.time_ns() // 1000,)
            )

        try:
            await self._write(probe)
        except StoreUnavailable:
            return False
        return True

    async def close(self) -> None:
        self._stopping.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
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


def _store_appends(connection: sqlite3.Connection, batch: list[_Append]) -> list[Appended]:
    """Store a batch with a few set-wise statements: ids from each room's counter, retries
    (earlier in the database or in this batch) answered with the first message's id."""
    firsts = _recent_retries(connection, batch)
    rooms = list({append.room for append in batch})
    last_ids: dict[str, int] = dict(
        connection.execute(
            f"SELECT name, last_id FROM rooms WHERE name IN ({_marks(len(rooms))})", rooms
        ).fetchall()
    )
    results: list[Appended] = []
    rows: list[tuple[str, str, int, str, int, str | None]] = []
    retries: list[tuple[str, str, str, int, int]] = []
    for append in batch:
        retry = (append.room, append.sender, append.key or "")
        first = firsts.get(retry) if append.key is not None else None
        if first is not None and append.timestamp_ms - first[1] < DEDUPE_WINDOW_MS:
            message = ChatMessage(first[0], append.room, append.sender, append.content, first[1])
            results.append(Appended(message, duplicate=True))
            continue
        message_id = last_ids[append.room] = last_ids.get(append.room, 0) + 1
        message = ChatMessage(
            message_id, append.room, append.sender, append.content, append.timestamp_ms
        )
        rows.append((*retry[:2], message_id, append.content, append.timestamp_ms, append.key))
        if append.key is not None:
            firsts[retry] = (message_id, append.timestamp_ms)
            retries.append((*retry, message_id, append.timestamp_ms))
        results.append(Appended(message))
    connection.executemany(
        "INSERT INTO messages (room, sender, id, content, ts_ms, retry_key)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    connection.executemany(
        "INSERT INTO rooms (name, last_id) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET last_id = excluded.last_id",
        [(room, last_ids[room]) for room in rooms if room in last_ids],
    )
    connection.executemany(
        "INSERT OR REPLACE INTO retries (room, sender, retry_key, id, ts_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        retries,
    )
    return results


RETRY_LOOKUP_CHUNK = 300
"""Keys per lookup statement (three variables each, well under SQLite's limit)."""


def _recent_retries(
    connection: sqlite3.Connection, batch: list[_Append]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """The (id, timestamp) of each retry key in the batch seen within the window."""
    keys = list({(a.room, a.sender, a.key) for a in batch if a.key is not None})
    since = min(a.timestamp_ms for a in batch) - DEDUPE_WINDOW_MS
    found: dict[tuple[str, str, str], tuple[int, int]] = {}
    for start in range(0, len(keys), RETRY_LOOKUP_CHUNK):
        chunk = keys[start : start + RETRY_LOOKUP_CHUNK]
        rows = connection.execute(
            "WITH wanted (room, sender, retry_key) AS"
            f" (VALUES {', '.join(['(?, ?, ?)'] * len(chunk))})"
            " SELECT r.room, r.sender, r.retry_key, r.id, r.ts_ms"
            " FROM wanted JOIN retries AS r USING (room, sender, retry_key)"
            " WHERE r.ts_ms > ?",
            [*(value for key in chunk for value in key), since],
        ).fetchall()
        for room, sender, key, message_id, timestamp in rows:
            found[(room, sender, key)] = (message_id, timestamp)
    return found


def _marks(count: int) -> str:
    return ", ".join(["?"] * count)


def _messages(room: str, rows: list[Any]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(row[0], room, row[1], row[2], row[3]) for row in rows)


def _settle(results: list[_Result]) -> None:
    for future, value, error in results:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
