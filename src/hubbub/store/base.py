"""The `MessageStore` interface and the guarantees every implementation gives.

Guarantees (checked by tests/contract/test_message_store.py for every store):
- `append` assigns ids strictly increasing per room, starting at 1, never reused.
- A message `append` returned is in `history` until retention removes it.
- `history` pages go newest-first through the room but each page is oldest first.
- Any failure to reach the underlying storage raises `StoreUnavailable`, never
  something else, so the server can answer `unavailable` and retry later.
"""

from dataclasses import dataclass
from typing import Protocol

from hubbub.protocol.events import ChatMessage


class StoreUnavailable(Exception):
    """The store cannot serve now (disk full, read-only, locked, unreachable); retry later."""


@dataclass(frozen=True, slots=True)
class Page:
    messages: tuple[ChatMessage, ...]
    """Oldest first."""
    has_more: bool
    """True when older messages exist before the first one here."""


class MessageStore(Protocol):
    async def append(self, room: str, sender: str, content: str, timestamp_ms: int) -> ChatMessage:
        """Store a message and return it with its id."""
        ...

    async def history(self, room: str, before: int | None, limit: int) -> Page:
        """Up to `limit` messages with ids below `before` (the newest when None)."""
        ...

    async def count(self) -> int:
        """How many messages were ever appended (for /stats)."""
        ...

    async def healthy(self) -> bool:
        """True when the store can take writes now."""
        ...

    async def close(self) -> None: ...
