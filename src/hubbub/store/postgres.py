"""The PostgreSQL store: one database shared by every node of a cluster.

The store orders, the broker carries. Ids are handed out by each room's
counter row, updated in the transaction that inserts the messages
(`hubbub_append`, in pg_migrations/), so the row lock makes ids gap-free in
commit order whichever node appends, and a message is committed before the
node hears of it. Retry keys live in the database too, so a retry sent to
another node is recognised.

One writer task per store takes every append waiting when it is free and
stores them with one call of `hubbub_append`: one round trip, one
transaction, one commit, however many messages and rooms. What arrives while
a batch commits goes with the next, so a busy node commits in groups by
itself. Outcomes are told in submission order, one batch after the other.

Reads go through the same small pool of connections. A connection that
PostgreSQL closed (restart, `pg_terminate_backend`, failover) is replaced on
the next use; while none can be had, every operation raises
`StoreUnavailable`.

An append whose connection is lost during its commit is answered
`StoreUnavailable` although it may have been stored: PostgreSQL cannot say.
A retry with the same `ref` is then answered with the stored message.
"""

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import TypeAlias, TypeVar
from urllib.parse import urlsplit

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

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
from hubbub.store.write_times import WriteTimes

log = logging.getLogger("hubbub.store")

T = TypeVar("T")
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

MAX_BATCH = 1000
MIGRATION_LOCK = 0x4855_4242_0001
"""Advisory lock held while migrating, so nodes starting together migrate once."""
HEALTH_TIMEOUT = 3.0
"""Seconds the health probe may take: a database slower than that is not healthy."""
MIGRATION_TIMEOUT = 600.0
"""Seconds a migration (or waiting for another node's) may take at start."""
PRUNE_LOCK = 0x4855_4242_0002
"""Advisory lock held while pruning: one node prunes at a time, the others skip."""
PRUNE_ROOMS = 500
"""Rooms pruned per statement (each statement its own transaction)."""
ATTEMPTS = 3
"""Tries of a batch that certainly stored nothing (see `_retryable`)."""
_UNAVAILABLE_CLASSES = ("08", "25006", "28", "3D", "40", "53", "55", "57", "58")
"""SQLSTATE classes (and codes) of the storage's failures: connection, read-only (a
standby), authorization, missing database, rolled back, resources, lock not available,
operator intervention, system; as opposed to our bugs."""


def _migrations() -> list[tuple[int, str]]:
    """Numbered SQL scripts in `pg_migrations/`, in order: `001_name.sql` is version 1."""
    scripts = []
    for entry in files("hubbub.store.pg_migrations").iterdir():
        if entry.name.endswith(".sql"):
            scripts.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(scripts)


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, ValueError):
        return False  # asyncpg could not encode an argument: our bug
    if isinstance(error, asyncpg.PostgresError):
        return error.sqlstate is not None and error.sqlstate.startswith(_UNAVAILABLE_CLASSES)
    return isinstance(
        error, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError
    )


def _connection_lost(error: BaseException) -> bool:
    return isinstance(
        error,
        asyncpg.PostgresConnectionError
        | asyncpg.AdminShutdownError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | ConnectionError,
    )


def _retryable(error: BaseException) -> bool:
    """Whether a batch that failed so certainly stored nothing, and may be tried again:
    PostgreSQL rolled it back (deadlock, serialization), or asyncpg refused to send it
    on a connection it found closed or stuck (after `pg_terminate_backend`)."""
    if isinstance(error, asyncpg.DeadlockDetectedError | asyncpg.SerializationError):
        return True
    if isinstance(error, ValueError):
        return False
    if isinstance(error, asyncpg.InternalClientError):
        return str(error).startswith("cannot switch to state")
    return isinstance(error, asyncpg.InterfaceError)


def where(dsn: str) -> str:
    """The server and database of a URL, without user or password (for messages)."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


@dataclass(slots=True)
class _Append:
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


class PostgresStore:
    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
    ) -> None:
        self.dsn = dsn
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        """Seconds an operation (with getting its connection) may take before it is
        `StoreUnavailable`."""
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._append_pool: asyncpg.Pool[asyncpg.Record] | None = None
        """The writer's own connection, so that reads never keep appends waiting."""
        self._queue: deque[_Append] = deque()
        self._in_hand: list[_Append] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._failing = False
        self.write_times = WriteTimes()

    # --- opening and closing -----------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await self._create_pool(self.pool_size)
            async with self._pool.acquire(timeout=self.connect_timeout) as connection:
                await _migrate(connection)
            self._append_pool = await self._create_pool(1)
        except Exception as error:
            for pool in (self._pool, self._append_pool):
                if pool is not None:
                    pool.terminate()
            self._pool = self._append_pool = None
            if _unavailable(error):
                raise StoreUnavailable(
                    f"cannot use PostgreSQL at {where(self.dsn)}: {error}"
                ) from error
            raise
        self._closing = False
        self._writer = asyncio.create_task(self._write_loop(), name="postgres-writer")

    async def _create_pool(self, size: int) -> "asyncpg.Pool[asyncpg.Record]":
        return await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=size,
            timeout=self.connect_timeout,
            command_timeout=self.command_timeout,
        )

    async def close(self) -> None:
        """Store what was submitted (bounded by the command timeout), then let go."""
        self._closing = True
        self._wakeup.set()
        if self._writer is not None:
            writer = self._writer
            try:
                await asyncio.wait_for(asyncio.shield(writer), self.command_timeout * 2)
            except TimeoutError:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            self._writer = None
        stranded, self._in_hand = [*self._in_hand, *self._queue], []
        self._queue.clear()
        for append in stranded:
            _tell(append.stored, StoreUnavailable("the message store closed"))
        pools = [pool for pool in (self._append_pool, self._pool) if pool is not None]
        self._pool = self._append_pool = None
        for pool in pools:
            try:
                await asyncio.wait_for(pool.close(), self.command_timeout)
            except TimeoutError:
                pool.terminate()

    # --- appending ---------------------------------------------------------------------

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
        if self._writer is None:
            stored(StoreUnavailable("store is not open"))
            return
        key = retry.key() if retry is not None else None
        text = None if data is None else orjson.dumps(data).decode()
        self._queue.append(_Append(room, sender, content, timestamp_ms, key, stored, data, text))
        self._wakeup.set()

    async def _write_loop(self) -> None:
        """Store what waits, a batch at a time, and tell each outcome in order."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                count = min(len(self._queue), MAX_BATCH)
                batch = self._in_hand = [self._queue.popleft() for _ in range(count)]
                outcomes = await self._store(batch)
                self._in_hand = []
                for append, outcome in zip(batch, outcomes, strict=True):
                    _tell(append.stored, outcome)
            if self._closing:
                return

    async def _store(self, batch: list[_Append]) -> list[Appended | Exception]:
        refusals = [_refusal(append) for append in batch]
        storable = [append for append, refusal in zip(batch, refusals, strict=True) if not refusal]
        stored: list[Appended | Exception] = []
        if storable:
            started = time.perf_counter()
            try:
                stored = await self._append_all(storable)
            except Exception as error:
                stored = [self._failure(error)] * len(storable)
            else:
                self.write_times.record(time.perf_counter() - started, len(storable))
                self._available()
        answers = iter(stored)
        return [refusal or next(answers) for refusal in refusals]

    async def _append_all(self, batch: list[_Append]) -> list[Appended | Exception]:
        columns = (
            [a.room for a in batch],
            [a.sender for a in batch],
            [a.content for a in batch],
            [a.timestamp_ms for a in batch],
            [a.key for a in batch],
            [a.data_text for a in batch],
        )

        async def run(connection: Connection) -> list[asyncpg.Record]:
            return await connection.fetch(
                "SELECT message_id, duplicate, first_ts, first_content, first_data"
                " FROM hubbub_append($1, $2, $3, $4, $5, $6, $7)",
                *columns,
                DEDUPE_WINDOW_MS,
            )

        for attempt in range(1, ATTEMPTS + 1):
            try:
                rows = await self._on_connection(run, appending=True)
                break
            except Exception as error:
                if attempt == ATTEMPTS or not _retryable(error):
                    raise
                log.debug("append batch not stored (%s); trying again", error)
        outcomes: list[Appended | Exception] = []
        for append, (message_id, duplicate, first_ts, first_content, first_data) in zip(
            batch, rows, strict=True
        ):
            if duplicate:
                # The first message's content and data, unless retention already removed it.
                content, data = (
                    (append.content, append.data)
                    if first_content is None
                    else (first_content, _data(first_data))
                )
                message = ChatMessage(
                    message_id, append.room, append.sender, content, first_ts, data
                )
            else:
                message = ChatMessage(
                    message_id,
                    append.room,
                    append.sender,
                    append.content,
                    append.timestamp_ms,
                    append.data,
                )
            outcomes.append(Appended(message, duplicate=duplicate))
        return outcomes

    # --- reading -----------------------------------------------------------------------

    async def history(self, room: str, before: int | None, limit: int) -> Page:
        async def run(connection: Connection) -> Page:
            rows = await connection.fetch(
                "SELECT id, sender, content, ts_ms, data FROM messages WHERE room = $1 AND id < $2"
                " ORDER BY id DESC LIMIT $3",
                room,
                before if before is not None else 2**63 - 1,
                limit + 1,
            )
            newest = rows[:limit]
            newest.reverse()
            return Page(_messages(room, newest), has_more=len(rows) > limit)

        return await self._use(run)

    async def since(self, room: str, after: int, upto: int | None, limit: int) -> Page:
        async def run(connection: Connection) -> Page:
            rows = await connection.fetch(
                "SELECT id, sender, content, ts_ms, data FROM messages"
                " WHERE room = $1 AND id > $2 AND id <= $3 ORDER BY id LIMIT $4",
                room,
                after,
                upto if upto is not None else 2**63 - 1,
                limit + 1,
            )
            # Read after the rows: retention running in between can only make this
            # say `truncated` too readily, never hide a gap.
            bounds = await connection.fetchrow(
                "SELECT (SELECT min(id) FROM messages WHERE room = $1),"
                " coalesce((SELECT last_id FROM rooms WHERE name = $1), 0)",
                room,
            )
            assert bounds is not None
            oldest, last = bounds
            oldest_kept = oldest if oldest is not None else last + 1
            truncated = after + 1 < oldest_kept and after < last
            return Page(_messages(room, rows[:limit]), len(rows) > limit, truncated)

        return await self._use(run)

    async def last_id(self, room: str) -> int:
        async def run(connection: Connection) -> int:
            found = await connection.fetchval("SELECT last_id FROM rooms WHERE name = $1", room)
            return int(found or 0)

        return await self._use(run)

    # --- maintenance -------------------------------------------------------------------

    async def prune(self, retention: Retention, now_ms: int) -> int:
        """Apply retention, a page of rooms per transaction; 0 when another node is at it."""

        async def run(connection: Connection) -> int:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", PRUNE_LOCK):
                return 0
            try:
                return await _prune(connection, retention, now_ms)
            finally:
                await connection.execute("SELECT pg_advisory_unlock($1)", PRUNE_LOCK)

        return await self._use(run, bounded=False)

    async def healthy(self) -> bool:
        async def probe(connection: Connection) -> None:
            await connection.execute(
                "INSERT INTO probe (id, at) VALUES (1, $1)"
                " ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                time.time_ns() // 1_000_000,
            )

        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                await self._use(probe)
        except (StoreUnavailable, TimeoutError):
            return False
        return True

    # --- failures ----------------------------------------------------------------------

    async def _use(self, run: Callable[[Connection], Awaitable[T]], bounded: bool = True) -> T:
        """Run `run` (which may run twice: reads, idempotent work) on a connection of the
        pool; storage failures raise `StoreUnavailable`. A run that met a lost connection
        is tried once more, on a new one."""
        try:
            try:
                value = await self._on_connection(run, bounded)
            except Exception as error:
                if not _connection_lost(error):
                    raise
                value = await self._on_connection(run, bounded)
        except Exception as error:
            failure = self._failure(error)
            if failure is error:
                raise
            raise failure from error
        self._available()
        return value

    async def _on_connection(
        self,
        run: Callable[[Connection], Awaitable[T]],
        bounded: bool = True,
        appending: bool = False,
    ) -> T:
        """Run `run` on a connection of the pool (the writer's, when `appending`). The
        command timeout bounds the whole of it, or when not `bounded` each statement."""
        pool = self._append_pool if appending else self._pool
        if pool is None:
            raise StoreUnavailable("store is not open")
        async with (
            asyncio.timeout(self.command_timeout if bounded else None),
            pool.acquire(timeout=self.command_timeout) as connection,
        ):
            try:
                return await run(connection)
            except Exception as error:
                if _unavailable(error):
                    await _discard(pool, connection, error)
                raise

    def _failure(self, error: Exception) -> Exception:
        """What to fail callers with: `StoreUnavailable` for the storage's failures
        (logged once per outage), the error itself for anything else."""
        if isinstance(error, StoreUnavailable):
            return error
        if not _unavailable(error):
            return error
        if not self._failing:
            log.error("message store unavailable: %s", error or type(error).__name__)
        self._failing = True
        return StoreUnavailable(str(error) or type(error).__name__)

    def _available(self) -> None:
        if self._failing:
            log.info("message store available again")
        self._failing = False


async def _migrate(connection: Connection) -> None:
    """Apply the migrations this database lacks, each in a transaction of its own, under
    an advisory lock so that nodes starting together do not race."""
    await connection.execute(
        "SELECT pg_advisory_lock($1)", MIGRATION_LOCK, timeout=MIGRATION_TIMEOUT
    )
    try:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY)"
        )
        current = await connection.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        for version, script in _migrations():
            if version <= current:
                continue
            log.info("migrating PostgreSQL store to schema version %d", version)
            async with connection.transaction():
                await connection.execute(script, timeout=MIGRATION_TIMEOUT)
                await connection.execute("INSERT INTO schema_version VALUES ($1)", version)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def _prune(connection: Connection, retention: Retention, now_ms: int) -> int:
    """Delete what retention removes, a page of rooms per statement. A room keeps its
    newest `max_per_room` messages from the oldest one young enough to keep onwards
    (ids grow with time), and its counter, so ids are never reused."""
    removed = 0
    after = ""
    while True:
        row = await connection.fetchrow(
            "WITH chosen AS (SELECT name, last_id FROM rooms WHERE name > $1"
            "  ORDER BY name LIMIT $2),"
            " floors AS (SELECT c.name,"
            "  greatest(c.last_id - $3, coalesce(young.id - 1, c.last_id)) AS floor"
            "  FROM chosen AS c LEFT JOIN LATERAL (SELECT m.id FROM messages AS m"
            "   WHERE m.room = c.name AND m.ts_ms >= $4 ORDER BY m.id LIMIT 1) AS young ON true),"
            " gone AS (DELETE FROM messages AS m USING floors AS f"
            "  WHERE m.room = f.name AND m.id <= f.floor RETURNING 1)"
            " SELECT (SELECT max(name) FROM chosen), (SELECT count(*) FROM gone)",
            after,
            PRUNE_ROOMS,
            retention.max_per_room,
            now_ms - retention.max_age_ms,
        )
        assert row is not None
        last_room, count = row
        removed += int(count)
        if last_room is None:
            break
        after = last_room
    # Retry keys past the window, locked in the order appends lock them (no deadlock).
    await connection.execute(
        "DELETE FROM retries WHERE (room, sender, retry_key) IN"
        " (SELECT room, sender, retry_key FROM retries WHERE ts_ms < $1"
        "  ORDER BY room, sender, retry_key FOR UPDATE)",
        now_ms - DEDUPE_WINDOW_MS,
    )
    return removed


async def _discard(
    pool: "asyncpg.Pool[asyncpg.Record]", connection: Connection, error: Exception
) -> None:
    """Let go of a connection that failed: asyncpg can leave one killed under it in a
    state it never leaves (its issue 1069). When it was lost, the pool's other idle
    connections most likely were too (a restart, a failover): they are replaced on their
    next use rather than each failing one operation first."""
    with contextlib.suppress(asyncpg.InterfaceError):  # already released when it closed
        if not connection.is_closed():
            connection.terminate()
    if _connection_lost(error):
        await pool.expire_connections()


def _refusal(append: _Append) -> ValueError | None:
    """A message PostgreSQL's text cannot hold is refused, alone (not its whole batch):
    one with U+0000 (NUL), or a lone surrogate (not UTF-8)."""
    for name, text in (
        ("content", append.content),
        ("room", append.room),
        ("sender", append.sender),
        ("ref", append.key or ""),
    ):
        if "\0" in text:
            return ValueError(f"PostgreSQL cannot store the character U+0000 (NUL) in {name}")
        if not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                return ValueError(f"PostgreSQL cannot store a lone surrogate in {name}")
    return None


def _messages(room: str, rows: list[asyncpg.Record]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(row[0], room, row[1], row[2], row[3], _data(row[4])) for row in rows)


def _data(stored: str | None) -> object:
    """A message's `data` from its stored JSON text (None: the message has none)."""
    return None if stored is None else orjson.loads(stored)


def _tell(stored: Stored, outcome: Appended | Exception) -> None:
    try:
        stored(outcome)
    except Exception:
        log.exception("a caller failed handling a stored message")
