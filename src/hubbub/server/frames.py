"""Encoded events, shared by every member that gets them.

A broadcast encodes its event once per codec into a `Frame`; connections
without compression also share the serialized WebSocket frame (header and
payload), built once on first use, so fan-out is a list append per member.
"""

from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

from hubbub.protocol.codecs import Codec
from hubbub.protocol.events import SHEDDABLE, ChatMessage, ServerEvent


class Frame:
    __slots__ = ("_wire", "message", "opcode", "payload", "sheddable")

    def __init__(
        self,
        payload: bytes,
        binary: bool,
        sheddable: bool = False,
        message: tuple[str, int] | None = None,
        opcode: Opcode | None = None,
    ) -> None:
        self.payload = payload
        self.opcode = opcode if opcode is not None else Opcode.BINARY if binary else Opcode.TEXT
        self.sheddable = sheddable
        self.message = message
        """(room, id) when the event is a chat message."""
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """The whole uncompressed WebSocket frame, as a server sends it (unmasked)."""
        if self._wire is None:
            self._wire = WireFrame(self.opcode, self.payload).serialize(mask=False)
        return self._wire


PING = Frame(b"", binary=True, opcode=Opcode.PING)


def frame_of(event: ServerEvent, codec: Codec) -> Frame:
    message = (event.room, event.id) if isinstance(event, ChatMessage) else None
    return Frame(codec.encode(event.to_wire()), codec.binary, isinstance(event, SHEDDABLE), message)
