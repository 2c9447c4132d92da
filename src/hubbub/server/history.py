"""Reading a page of a room's stored messages: the one path for the `history` event and
for `GET /rooms/{name}/messages`."""

from hubbub.protocol.errors import ErrorCode, Refusal
from hubbub.store.base import MessageStore, Page, StoreUnavailable


async def read_page(
    store: MessageStore, room: str, before: int | None, after: int | None, limit: int
) -> Page:
    """The newest `limit` messages below `before`; with `after`, the oldest above it (and
    below `before` when both are given). A failing store is refused as `unavailable`."""
    try:
        if after is None:
            return await store.history(room, before, limit)
        return await store.since(room, after, None if before is None else before - 1, limit)
    except StoreUnavailable as error:
        raise Refusal(ErrorCode.UNAVAILABLE, "message store unavailable; retry") from error
