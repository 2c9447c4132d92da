import msgpack
import pytest

from hubbub.protocol.codecs import JSON, MSGPACK, codec_for
from hubbub.protocol.errors import ErrorCode, Refusal


def test_subprotocol_selects_the_codec() -> None:
    assert codec_for("msgpack") is MSGPACK
    assert codec_for("json") is JSON
    assert codec_for(None) is JSON


def test_both_codecs_round_trip_the_same_map() -> None:
    wire = {"type": "message", "id": 3, "from": "ann", "content": "héllo ✓", "room": "r"}
    assert JSON.decode(JSON.encode(wire), binary_frame=False) == wire
    assert MSGPACK.decode(MSGPACK.encode(wire), binary_frame=True) == wire
    assert msgpack.unpackb(MSGPACK.encode(wire)) == wire


def test_invalid_json_is_bad_json() -> None:
    with pytest.raises(Refusal) as caught:
        JSON.decode("{nope", binary_frame=False)
    assert caught.value.code is ErrorCode.BAD_JSON


@pytest.mark.parametrize(
    "data", [b"\xc1", b"\x92\x01", b"\xa2\xff\xfe", b"\x01\x02", b"\x81\x91\x01\x01"]
)
def test_invalid_msgpack_is_bad_encoding(data: bytes) -> None:
    with pytest.raises(Refusal) as caught:
        MSGPACK.decode(data, binary_frame=True)
    assert caught.value.code is ErrorCode.BAD_ENCODING


def test_a_frame_of_the_wrong_kind_is_bad_encoding() -> None:
    with pytest.raises(Refusal) as caught:
        JSON.decode(b"{}", binary_frame=True)
    assert caught.value.code is ErrorCode.BAD_ENCODING
    with pytest.raises(Refusal) as caught:
        MSGPACK.decode("{}", binary_frame=False)
    assert caught.value.code is ErrorCode.BAD_ENCODING
