"""Encoded events, shared by every member that gets them.

A broadcast encodes its event once per codec into a `Frame`, which builds
the serialized WebSocket frame (header and payload) once, so fan-out queues
a reference per member. Compressed members share frames too:
the server answers every permessage-deflate offer with
`server_no_context_takeover`, so a message compressed on its own is valid for
every member that negotiated the same window size, and a `Deflater` compresses
each frame once for all of them.
"""

import zlib

from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

from hubbub.protocol.codecs import Codec
from hubbub.protocol.events import SHEDDABLE, ChatMessage, ServerEvent

COMPRESSION_LEVEL = 1
"""zlib's fastest level, as aiohttp uses: chat events are short, and the CPU matters more."""
_RSV1 = 0x40
"""The first header byte's bit that marks a compressed message (RFC 7692 section 6)."""
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
"""The empty block a flush ends with, left out on the wire (RFC 7692 section 7.2.1)."""


class Frame:
    __slots__ = (
        "_deflated",
        "_deflated_bits",
        "message",
        "opcode",
        "payload",
        "sheddable",
        "size",
        "wire",
    )

    def __init__(
        self,
        payload: bytes,
        binary: bool,
        sheddable: bool = False,
        message: tuple[str, int] | None = None,
        opcode: Opcode | None = None,
    ) -> None:
        self.payload = payload
        self.size = len(payload)
        """The payload's length: what the frame counts for in a connection's queue."""
        self.opcode = opcode if opcode is not None else Opcode.BINARY if binary else Opcode.TEXT
        self.sheddable = sheddable
        self.message = message
        """(room, id) when the event is a chat message."""
        self.wire = WireFrame(self.opcode, payload).serialize(mask=False)
        """The whole uncompressed WebSocket frame, as a server sends it (unmasked): built
        once here, a plain attribute rather than a property, as fan-out reads it per member."""
        self._deflated: bytes | None = None
        self._deflated_bits = 0

    def deflated_wire(self, deflater: "Deflater") -> bytes:
        """The whole frame compressed by `deflater` (kept for the next member with
        the same window size); a control frame is never compressed.

        Runs per member: the kept frame is looked for first, as reading an enum's
        `value` costs more than the rest of the call."""
        deflated = self._deflated
        if deflated is not None and self._deflated_bits == deflater.window_bits:
            return deflated
        if self.opcode.value >= Opcode.CLOSE.value:
            return self.wire
        deflated = deflater.frame(self.opcode, self.payload)
        if self._deflated is None:
            self._deflated, self._deflated_bits = deflated, deflater.window_bits
        return deflated


PING = Frame(b"", binary=True, opcode=Opcode.PING)


def frame_of(event: ServerEvent, codec: Codec) -> Frame:
    message = (event.room, event.id) if isinstance(event, ChatMessage) else None
    return Frame(codec.encode(event.to_wire()), codec.binary, isinstance(event, SHEDDABLE), message)


class Deflater:
    """Compresses frames for the members that negotiated one window size.

    One compressor serves them all: a full flush after each message resets its
    state, so every message stands alone, as `server_no_context_takeover`
    promises. `Frame.deflated_wire` keeps the result, so a broadcast is
    compressed once, not once per member.
    """

    def __init__(self, window_bits: int) -> None:
        self.window_bits = window_bits
        self._compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, -window_bits)

    def frame(self, opcode: Opcode, payload: bytes) -> bytes:
        """A whole compressed data frame (header with RSV1 set, and the deflated payload)."""
        compressor = self._compressor
        data = compressor.compress(payload) + compressor.flush(zlib.Z_FULL_FLUSH)
        frame = bytearray(WireFrame(opcode, data.removesuffix(_DEFLATE_TAIL)).serialize(mask=False))
        frame[0] |= _RSV1
        return bytes(frame)
