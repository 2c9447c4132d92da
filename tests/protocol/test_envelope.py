"""Envelopes: every room event survives the trip between nodes exactly."""

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.protocol.envelope import (
    ENVELOPE_VERSION,
    BadEnvelope,
    Envelope,
    RoomEvent,
    decode,
    encode,
)
from hubbub.protocol.events import ChatMessage, OnlineUsers, TypingNotice, UserJoined, UserLeft

names = st.text(min_size=1, max_size=32)
rooms = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
ids = st.integers(min_value=1, max_value=2**63 - 1)
millis = st.integers(min_value=0, max_value=2**53)

json_values: st.SearchStrategy[object] = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
"""`data` payloads: any JSON value but null (which is no data)."""

events: st.SearchStrategy[RoomEvent] = st.one_of(
    st.builds(ChatMessage, ids, rooms, names, st.text(max_size=4000), millis),
    st.builds(ChatMessage, ids, rooms, names, st.text(max_size=40), millis, json_values),
    st.builds(UserJoined, names, rooms),
    st.builds(UserLeft, names, rooms),
    st.builds(TypingNotice, names, rooms),
    st.builds(
        OnlineUsers,
        rooms,
        st.lists(names, max_size=20).map(lambda users: tuple(sorted(set(users)))),
        st.integers(min_value=0, max_value=10**6),
    ),
)


@given(events, st.text(min_size=1, max_size=16), st.none() | st.text(max_size=16))
def test_round_trip_is_exact(event: RoomEvent, origin: str, exclude: str | None) -> None:
    envelope = Envelope(event.room, event, origin, exclude)
    assert decode(encode(envelope)) == envelope


def test_content_is_kept_byte_for_byte() -> None:
    content = "  indented\n\tcode \u202e\U0001f600  "
    message = ChatMessage(7, "r", "ann", content, 1_795_674_063_123)
    decoded = decode(encode(Envelope("r", message, "n1")))
    assert isinstance(decoded.event, ChatMessage)
    assert decoded.event.content == content


def test_a_message_without_data_travels_as_before_data_existed() -> None:
    """Nodes of the version before `data` read it: the same six fields, the same bytes."""
    message = ChatMessage(7, "r", "ann", "hi", 1_795_674_063_123)
    assert encode(Envelope("r", message, "n1")) == msgpack.packb(
        [ENVELOPE_VERSION, "n1", None, "m", 7, "r", "ann", "hi", 1_795_674_063_123],
        use_bin_type=True,
    )


def test_data_keeps_its_key_order_and_number_kinds() -> None:
    data = {"z": 1, "a": [1.0, 2, "3"], "m": {"y": True, "b": None}}
    decoded = decode(encode(Envelope("r", ChatMessage(7, "r", "ann", "hi", 0, data), "n1")))
    assert isinstance(decoded.event, ChatMessage)
    assert list(decoded.event.data) == ["z", "a", "m"]
    assert [type(x) for x in decoded.event.data["a"]] == [float, int, str]
    assert decoded.event.data == data


@pytest.mark.parametrize(
    "items",
    [
        [ENVELOPE_VERSION + 1, "n1", None, "j", "ann", "r"],
        [ENVELOPE_VERSION, "n1", None, "x", "ann", "r"],
        [ENVELOPE_VERSION, "n1", None, "j", "ann"],
        [ENVELOPE_VERSION, "n1", None, "m", "1", "r", "ann", "hi", 0],
        [ENVELOPE_VERSION, "n1", None, "m", 1, "r", "ann", "hi", 0, None],
        [ENVELOPE_VERSION, "n1", None, "m", 1, "r", "ann", "hi", 0, {}, "extra"],
        [ENVELOPE_VERSION, 5, None, "j", "ann", "r"],
        [ENVELOPE_VERSION, "n1", None, "o", "r", ["ann", 3], 2],
        {"type": "message"},
    ],
)
def test_malformed_envelopes_are_refused(items: object) -> None:
    with pytest.raises(BadEnvelope):
        decode(msgpack.packb(items))


def test_bytes_that_are_not_msgpack_are_refused() -> None:
    with pytest.raises(BadEnvelope):
        decode(b"\xc1")
    with pytest.raises(BadEnvelope):
        decode(msgpack.packb([1]) + b"\x01")
