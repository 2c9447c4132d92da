import struct
import zlib

import pytest

from hubbub.protocol.codecs import MSGPACK
from hubbub.protocol.events import ChatMessage, TypingNotice
from hubbub.server.frames import PING, Deflater, Frame, frame_of


@pytest.mark.parametrize(("size", "header"), [(5, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_wire_is_an_unmasked_rfc6455_frame(size: int, header: int) -> None:
    frame = Frame(b"x" * size, binary=False)
    wire = frame.wire
    assert wire[0] == 0x81
    assert not wire[1] & 0x80
    length = wire[1] & 0x7F
    if header == 4:
        assert length == 126
        assert struct.unpack("!H", wire[2:4])[0] == len(frame.payload)
    elif header == 10:
        assert length == 127
        assert struct.unpack("!Q", wire[2:10])[0] == len(frame.payload)
    else:
        assert length == len(frame.payload)
    assert wire[header:] == frame.payload


def test_msgpack_frames_are_binary_and_typing_is_sheddable() -> None:
    frame = frame_of(TypingNotice("ann", "r"), MSGPACK)
    assert frame.wire[0] == 0x82
    assert frame.sheddable
    assert frame.message is None
    message = frame_of(ChatMessage(7, "r", "ann", "hi", 0), MSGPACK)
    assert message.message == ("r", 7)
    assert not message.sheddable
    assert message.wire is message.wire


def inflate_alone(wire: bytes, window_bits: int) -> bytes:
    """The payload of one compressed server frame, inflated with a fresh inflater."""
    length = wire[1] & 0x7F
    start = {126: 4, 127: 10}.get(length, 2)
    return zlib.decompressobj(wbits=-window_bits).decompress(wire[start:] + b"\x00\x00\xff\xff")


def test_a_deflated_frame_is_compressed_once_and_stands_alone() -> None:
    deflater = Deflater(15)
    first = frame_of(ChatMessage(1, "r", "ann", "again " * 100, 0), MSGPACK)
    second = frame_of(ChatMessage(2, "r", "ann", "again " * 100, 0), MSGPACK)
    wire = first.deflated_wire(deflater)
    assert wire[0] == 0x80 | 0x40 | 0x02
    assert len(wire) < len(first.wire)
    assert first.deflated_wire(deflater) is wire
    assert inflate_alone(wire, 15) == first.payload
    assert inflate_alone(second.deflated_wire(deflater), 15) == second.payload


def test_other_window_sizes_get_their_own_compression_and_pings_none() -> None:
    frame = Frame(b"x" * 5000, binary=False)
    default = frame.deflated_wire(Deflater(15))
    small = frame.deflated_wire(Deflater(9))
    assert inflate_alone(small, 9) == frame.payload
    assert frame.deflated_wire(Deflater(15)) == default
    assert PING.deflated_wire(Deflater(15)) == PING.wire == b"\x89\x00"
