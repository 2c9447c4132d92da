"""The in-memory store: fast, and forgets everything on restart."""

import time
from bisect import bisect_left, bisect_right
from collections import defaultdict

from hubbub.protocol.events import ChatMessage
from hubbub.store.base import DEDUPE_WINDOW_MS, Appended, Page, Retention, Retry, Stored
from hubbub.store.write_times import WriteTimes


class MemoryStore:
    def __init__(self) -> None:
        self._rooms: defaultdict[str, list[ChatMessage]] = defaultdict(list)
        self._last_ids: defaultdict[str, int] = defaultdict(int)
        self._retries: dict[tuple[str, str, str], ChatMessage] = {}
        self.write_times = WriteTimes()

    async def open(self) -> None:
        return None

    async def append(
        self,
        room: str,
        sender: str,
        content: str,
        timestamp_ms: int,
        retry: Retry | None = None,
        data: object = None,
    ) -> Appended:
        return self._append(room, sender, content, timestamp_ms, retry, data)

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
        stored(self._append(room, sender, content, timestamp_ms, retry, data))

    def _append(
        self,
        room: str,
        sender: str,
        content: str,
        timestamp_ms: int,
        retry: Retry | None,
        data: object,
    ) -> Appended:
        started = time.perf_counter()
        try:
            if retry is not None:
                first = self._retries.get((room, retry.sender, retry.key()))
                if first is not None and timestamp_ms - first.timestamp_ms < DEDUPE_WINDOW_MS:
                    return Appended(first, duplicate=True)
            self._last_ids[room] += 1
            message = ChatMessage(self._last_ids[room], room, sender, content, timestamp_ms, data)
            self._rooms[room].append(message)
            if retry is not None:
                self._retries[(room, retry.sender, retry.key())] = message
            return Appended(message)
        finally:
            self.write_times.record(time.perf_counter() - started, 1)

    async def history(self, room: str, before: int | None, limit: int) -> Page:
        messages = self._rooms.get(room, [])
        end = len(messages) if before is None else bisect_left(messages, before, key=_id)
        start = max(0, end - limit)
        return Page(tuple(messages[start:end]), has_more=start > 0)

    async def since(self, room: str, after: int, upto: int | None, limit: int) -> Page:
        messages = self._rooms.get(room, [])
        start = bisect_right(messages, after, key=_id)
        end = len(messages) if upto is None else bisect_right(messages, upto, key=_id)
        stop = min(end, start + limit)
        oldest_kept = messages[0].id if messages else self._last_ids[room] + 1
        truncated = after + 1 < oldest_kept and after < self._last_ids[room]
        return Page(tuple(messages[start:stop]), has_more=stop < end, truncated=truncated)

    async def last_id(self, room: str) -> int:
        return self._last_ids.get(room, 0)

    async def prune(self, retention: Retention, now_ms: int) -> int:
        cutoff = now_ms - retention.max_age_ms
        removed = 0
        for messages in self._rooms.values():
            keep_from = max(
                len(messages) - retention.max_per_room,
                bisect_left(messages, cutoff, key=_timestamp),
                0,
            )
            removed += keep_from
            del messages[:keep_from]
        dedupe_cutoff = now_ms - DEDUPE_WINDOW_MS
        for key, message in list(self._retries.items()):
            if message.timestamp_ms < dedupe_cutoff:
                del self._retries[key]
        return removed

    async def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def _id(message: ChatMessage) -> int:
    return message.id


def _timestamp(message: ChatMessage) -> int:
    return message.timestamp_ms
