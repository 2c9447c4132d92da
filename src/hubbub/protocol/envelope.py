"""Room events as they travel between nodes: an exact, versioned round trip.

A node publishes a room event once, encoded here; every other node decodes it
back into the same event object and fans it out to its own members, encoding
it for their codecs as if it had been published locally. The wire form is a
MessagePack array, smaller and faster to read than the client-facing maps:
`[version, origin node, excluded connection id or nil, kind, *fields]`.
A chat message's `data` (protocol 1.1) is one more field, present only when
the message has one, so a message without it is the same bytes as before.

Malformed input raises `BadEnvelope`: it comes from another node, so it is a
bug or a version mismatch to log, never a client's fault.
"""

from dataclasses import dataclass
from typing import Any

import msgpack

from hubbub.protocol.events import ChatMessage, OnlineUsers, TypingNotice, UserJoined, UserLeft

ENVELOPE_VERSION = 1

RoomEvent = ChatMessage | UserJoined | UserLeft | TypingNotice | OnlineUsers
"""The events a room's members receive from a broadcast."""


class BadEnvelope(ValueError):
    """Bytes from another node that are not an envelope this version can read."""


@dataclass(frozen=True, slots=True)
class Envelope:
    room: str
    event: RoomEvent
    origin: str
    """The node that published it (a node skips its own: it delivered them already)."""
    exclude: str | None = None
    """The connection id that must not receive it (the typing user's own connection)."""


def _fields(event: RoomEvent) -> list[Any]:
    match event:
        case ChatMessage(message_id, room, sender, content, timestamp_ms, data):
            fields = ["m", message_id, room, sender, content, timestamp_ms]
            if data is not None:
                fields.append(data)
            return fields
        case UserJoined(username, room):
            return ["j", username, room]
        case UserLeft(username, room):
            return ["l", username, room]
        case TypingNotice(username, room):
            return ["t", username, room]
        case OnlineUsers(room, users, count):
            return ["o", room, list(users), count]


def encode(envelope: Envelope) -> bytes:
    head = [ENVELOPE_VERSION, envelope.origin, envelope.exclude]
    packed: bytes = msgpack.packb(head + _fields(envelope.event), use_bin_type=True)
    return packed


def decode(data: bytes) -> Envelope:
    try:
        items = msgpack.unpackb(data, raw=False, use_list=True)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise BadEnvelope(f"not one MessagePack value: {exc}") from exc
    if not isinstance(items, list) or len(items) < 4:
        raise BadEnvelope("not an envelope array")
    version, origin, exclude, kind, *rest = items
    if version != ENVELOPE_VERSION:
        raise BadEnvelope(f"envelope version {version!r}, this node reads {ENVELOPE_VERSION}")
    if not isinstance(origin, str) or not (exclude is None or isinstance(exclude, str)):
        raise BadEnvelope("origin and exclude must be strings")
    event = _event(kind, rest)
    return Envelope(event.room, event, origin, exclude)


def _event(kind: object, rest: list[Any]) -> RoomEvent:
    match kind, rest:
        case (
            "m",
            [int() as message_id, str() as room, str() as sender, str() as content, int() as ms],
        ):
            return ChatMessage(message_id, room, sender, content, ms)
        case (
            "m",
            [
                int() as message_id,
                str() as room,
                str() as sender,
                str() as content,
                int() as ms,
                data,
            ],
        ) if data is not None:
            return ChatMessage(message_id, room, sender, content, ms, data)
        case "j", [str() as username, str() as room]:
            return UserJoined(username, room)
        case "l", [str() as username, str() as room]:
            return UserLeft(username, room)
        case "t", [str() as username, str() as room]:
            return TypingNotice(username, room)
        case "o", [str() as room, list() as users, int() as count] if all(
            isinstance(user, str) for user in users
        ):
            return OnlineUsers(room, tuple(users), count)
    raise BadEnvelope(f"no event of kind {kind!r} with these fields")
