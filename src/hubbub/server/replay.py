"""Replay: a joining connection's missed messages, read from the store ahead of live ones."""

from dataclasses import dataclass

from hubbub.server.connection import Connection
from hubbub.store.base import MessageStore

REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True)
class Replayed:
    count: int
    truncated: bool
    """Retention had removed messages after `since`."""
    last: int
    """The last id replayed: live messages up to it are dropped on release."""
    reset: bool
    """`since` was beyond the room's newest id: the client must forget its ids."""


async def replay(store: MessageStore, connection: Connection, room: str, since: int) -> Replayed:
    """Deliver every stored message after `since`, page by page, ahead of live frames.

    A `since` beyond the room's newest id (a memory store restarted, a store
    restored from an older backup) replays nothing and resets the client's
    position. Then nothing replayed can repeat a live message, so the floor is
    0: every message broadcast since the join reaches the client, held ones too.
    """
    count, truncated, last = 0, False, since
    while True:
        page = await store.since(room, last, None, REPLAY_PAGE)
        truncated = truncated or page.truncated
        for message in page.messages:
            if connection.half_full():
                await connection.drained()
            if connection.closing:
                return Replayed(count, truncated, last, False)
            connection.deliver(message)
            count += 1
            last = message.id
        if not page.has_more:
            if count == 0 and since > await store.last_id(room):
                return Replayed(0, False, 0, True)
            return Replayed(count, truncated, last, False)
