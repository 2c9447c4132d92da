import struct

import pytest

from hubbub.protocol.codecs import MSGPACK
from hubbub.protocol.events import ChatMessage, TypingNotice
from hubbub.server.frames import Frame, frame_of


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
