"""The `MessageStore` interface and the guarantees every implementation gives.

Guarantees (checked by tests/contract/test_message_store.py for every store):
- `append` assigns ids strictly increasing per room, starting at 1, never
  reused, also across restarts of a durable store.
- When `append` returns, the message is durable (for a durable store): it is
  in `history` and `since` until retention removes it.
- A repeated `append` with the same `Retry` key within `DEDUPE_WINDOW_MS`
  stores nothing and returns the first message (its id, time and content, not
  the retry's), marked `duplicate`. Should retention have removed the first
  message already, a store may know only its id and time.
- A message's `data` (any JSON value, or None) is kept with it and read back
  equal (`==`, so `1.0` and `1` may come back as each other's JSON text but
  never as a different value); a message without it reads back without it.
- Content is kept exactly as given, whatever its characters; a store that
  cannot hold a character (PostgreSQL's text and NUL) refuses that append
  with an error rather than keep something else.
- Retention removes the oldest messages of a room first; `since` reports
  `truncated` when messages after the asked-for id are gone.
- `submit` reports results in the order messages were submitted, so a
  server can broadcast without waiting and still keep each room in id order.
- Any failure of the underlying storage raises `StoreUnavailable`, never
  something else, so the server can answer `unavailable`; the store recovers
  by itself when the storage does.
- Every write of messages that succeeds is recorded in `write_times` (its time
  and how many messages it carried), for /metrics.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from hubbub.protocol.errors import Ref
from hubbub.protocol.events import ChatMessage
from hubbub.store.write_times import WriteTimes

DEDUPE_WINDOW_MS = 5 * 60 * 1000


class StoreUnavailable(Exception):
    """The store cannot serve now (disk full, read-only, locked, unreachable); retry later."""


@dataclass(frozen=True, slots=True)
class Retry:
    """What makes two appends the same message: one user's `ref` in one room."""

    sender: str
    ref: Ref

    def key(self) -> str:
        """The ref as stored: typed, so the int 5 and the string "5" stay different."""
        kind = "i" if isinstance(self.ref, int) else "s"
        return f"{kind}:{self.ref}"


@dataclass(frozen=True, slots=True)
class Appended:
    message: ChatMessage
    duplicate: bool = False
    """True when this was a retry: nothing was stored, and `message.id` is the first one's."""


@dataclass(frozen=True, slots=True)
class Page:
    messages: tuple[ChatMessage, ...]
    """Oldest first."""
    has_more: bool
    """For `history`: older messages exist. For `since`: newer ones exist past `limit`."""
    truncated: bool = False
    """For `since`: retention already removed messages after the asked-for id."""


@dataclass(frozen=True, slots=True)
class Retention:
    max_per_room: int = 10_000
    max_age_ms: int = 30 * 24 * 3600 * 1000


Stored = Callable[["Appended | Exception"], None]
"""Told the outcome of a `submit`: the stored message, or the error (`StoreUnavailable`
when the storage failed)."""


class MessageStore(Protocol):
    write_times: WriteTimes
    """How long each write of messages took (see `write_times`)."""

    async def open(self) -> None:
        """Create or migrate what the store needs; called once before use."""
        ...

    async def append(
        self,
        room: str,
        sender: str,
        content: str,
        timestamp_ms: int,
        retry: Retry | None = None,
        data: object = None,
    ) -> Appended:
        """Store a message (once per `retry` key) and return it with its id."""
        ...

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
        """`append` without awaiting: `stored` is called on the event loop once the
        message is stored (or failed), possibly before `submit` returns; calls come in
        the order of the submits. Lets a connection have several messages in one batch
        without a task for each."""
        ...

    async def history(self, room: str, before: int | None, limit: int) -> Page:
        """Up to `limit` of the newest messages with ids below `before` (all when None)."""
        ...

    async def since(self, room: str, after: int, upto: int | None, limit: int) -> Page:
        """Up to `limit` of the oldest messages with `after < id <= upto` (no upper bound
        when `upto` is None)."""
        ...

    async def last_id(self, room: str) -> int:
        """The highest id ever assigned in `room` (0 when none)."""
        ...

    async def prune(self, retention: Retention, now_ms: int) -> int:
        """Apply retention; returns how many messages were removed."""
        ...

    async def healthy(self) -> bool:
        """True when the store can take writes now (a durable store really writes to tell)."""
        ...

    async def close(self) -> None: ...


class Submit(Protocol):
    def __call__(
        self,
        room: str,
        sender: str,
        content: str,
        timestamp_ms: int,
        retry: Retry | None,
        stored: Stored,
        data: object = None,
    ) -> None: ...


async def submitted(
    submit: Submit,
    room: str,
    sender: str,
    content: str,
    timestamp_ms: int,
    retry: "Retry | None",
    data: object = None,
) -> Appended:
    """`append` for a store whose work is done by `submit`: its outcome, awaited."""
    future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()

    def stored(outcome: Appended | Exception) -> None:
        if future.done():
            return
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    submit(room, sender, content, timestamp_ms, retry, stored, data)
    return await future
