"""Fan-out to this node's members of a room: the event encoded once per codec, and
the same frame queued to each member without awaiting."""

from collections.abc import Iterable

from hubbub.protocol.codecs import Codec
from hubbub.protocol.events import ServerEvent
from hubbub.server.connection import Connection
from hubbub.server.frames import Frame, frame_of


def deliver_local(
    members: Iterable[Connection], event: ServerEvent, exclude: str | None = None
) -> int:
    """Queue `event` to every member but the connection with id `exclude`; returns how
    many got it. Runs once per member per event: the loop touches only the member."""
    frames: dict[Codec, Frame] = {}
    last_codec: Codec | None = None
    frame: Frame
    delivered = 0
    for member in members:
        if exclude is not None and member.id == exclude:
            continue
        codec = member.codec
        if codec is not last_codec:
            last_codec = codec
            frame = frames.get(codec) or frames.setdefault(codec, frame_of(event, codec))
        member.enqueue(frame)
        delivered += 1
    return delivered
