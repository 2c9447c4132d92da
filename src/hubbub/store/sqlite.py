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
    run: Callable[[sqlite3.Connection], Any]
    future: "asyncio.Future[Any]"
    batchable: bool = False
    """Appends: run together in one transaction with the others waiting."""


@dataclass
class SqliteStore:
    path: Path
    busy_timeout_ms: int = 5000
    synchronous: str = "FULL"
    _jobs: "queue.SimpleQueue[_Job | None]" = field(default_factory=queue.SimpleQueue)
    _writer: threading.Thread | None = None
    _readers: ThreadPoolExecutor | None = None
    _local: threading.local = field(default_factory=threading.local)
    _reader_connections: list[sqlite3.Connection] = field(default_factory=list)
    _failing: bool = False

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
        except BaseException as error:
            opened: list[_Result] = [(ready, None, error)]
            loop.call_soon_threadsafe(_settle, opened)
            return
        opened = [(ready, None, None)]
        loop.call_soon_threadsafe(_settle, opened)
        carried: list[_Job | None] = []
        while (job := carried.pop() if carried else self._jobs.get()) is not None:
            batch = [job]
            while job.batchable and len(batch) < MAX_BATCH:
                try:
                    following = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if following is None or not following.batchable:
                    carried.append(following)
                    break
                batch.append(following)
            loop.call_soon_threadsafe(_settle, self._run_batch(connection, batch))
        connection.close()

    def _run_batch(self, connection: sqlite3.Connection, batch: list[_Job]) -> list[_Result]:
        """Run the jobs in one transaction; every job fails alike if the commit fails."""
        results: list[_Result] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                for job in batch:
                    results.append((job.future, job.run(connection), None))
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
            return [(job.future, None, failure) for job in batch]
        if self._failing:
            log.info("message store available again")
        self._failing = False
        return results

    async def _write(self, run: Callable[[sqlite3.Connection], T], batchable: bool = False) -> T:
        if self._writer is None or not self._writer.is_alive():
            raise StoreUnavailable("store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Job(run, future, batchable))
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
        key = retry.key() if retry is not None else None

        def run(connection: sqlite3.Connection) -> Appended:
            if retry is not None:
                first = connection.execute(
                    "SELECT id, sender, content, ts_ms FROM messages"
                    " WHERE room = ? AND sender = ? AND retry_key = ? AND ts_ms > ?"
                    " ORDER BY id DESC LIMIT 1",
                    (room, retry.sender, key, timestamp_ms - DEDUPE_WINDOW_MS),
                ).fetchone()
                if first is not None:
                    return Appended(ChatMessage(first[0], room, *first[1:]), duplicate=True)
            (message_id,) = connection.execute(
                "INSERT INTO rooms (name, last_id) VALUES (?, 1)"
                " ON CONFLICT (name) DO UPDATE SET last_id = last_id + 1 RETURNING last_id",
                (room,),
            ).fetchone()
            connection.execute(
                "INSERT INTO messages (room, id, sender, content, ts_ms, retry_key)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (room, message_id, sender, content, timestamp_ms, key),
            )
            return Appended(ChatMessage(message_id, room, sender, content, timestamp_ms))

        return await self._write(run, batchable=True)

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
        if not self._failing:
            return self._writer is not None and self._writer.is_alive()

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
