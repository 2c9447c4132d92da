"""The in-memory store: fast, and forgets everything on restart."""

from bisect import bisect_left
from collections import defaultdict

from hubbub.protocol.events import ChatMessage
from hubbub.store.base import Page


class MemoryStore:
    def __init__(self) -> None:
        self._rooms: defaultdict[str, list[ChatMessage]] = defaultdict(list)
        self._appended = 0

    async def append(self, room: str, sender: str, content: str, timestamp_ms: int) -> ChatMessage:
        messages = self._rooms[room]
        next_id = messages[-1].id + 1 if messages else 1
        message = ChatMessage(next_id, room, sender, content, timestamp_ms)
        messages.append(message)
        self._appended += 1
        return message

    async def history(self, room: str, before: int | None, limit: int) -> Page:
        messages = self._rooms.get(room, [])
        end = len(messages) if before is None else bisect_left(messages, before, key=_id)
        start = max(0, end - limit)
        return Page(tuple(messages[start:end]), has_more=start > 0)

    async def count(self) -> int:
        return self._appended

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        self._rooms.clear()


def _id(message: ChatMessage) -> int:
    return message.id
