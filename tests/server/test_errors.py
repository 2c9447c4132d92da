"""Bad input: the sender gets the exact error, keeps its connection, and nobody else notices."""

from typing import Any

import pytest

from hubbub.client import ChatClient, ServerError
from tests.conftest import Connect


async def chat_pair(connect: Connect) -> tuple[ChatClient, ChatClient]:
    offender, bystander = await connect(), await connect()
    await offender.join("r", "offender")
    await bystander.join("r", "bystander")
    await bystander.expect("user_joined", username="bystander")
    return offender, bystander


async def assert_unharmed(offender: ChatClient, bystander: ChatClient) -> None:
    """Both still chat, the bystander saw nothing of the bad event, and no message was lost."""
    sent = await offender.say("after the bad event", room="r")
    event = await bystander.expect("message")
    assert event["id"] == sent
    assert event["content"] == "after the bad event"
    assert not bystander.pending("error")
    assert not bystander.pending("message")
    assert (await bystander.say("bystander too", room="r")) == sent + 1
    assert offender.close_code is None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2, 3]", "bad_json"),
        ('"just a string"', "bad_json"),
        ('{"type": "explode"}', "unknown_type"),
        ('{"type": 42}', "invalid_field"),
        ('{"no_type": true}', "invalid_field"),
        ('{"type": "join", "room": "has space"}', "invalid_field"),
        ('{"type": "message", "content": "   ", "room": "r"}', "invalid_field"),
        ('{"type": "message", "content": "' + "y" * 4001 + '", "room": "r"}', "invalid_field"),
        ('{"type": "message", "content": "hi", "room": "elsewhere"}', "not_in_room"),
        ('{"type": "typing", "room": "elsewhere"}', "not_in_room"),
        ('{"type": "leave", "room": "elsewhere"}', "not_in_room"),
        ('{"type": "history", "room": "r", "limit": 1000}', "invalid_field"),
    ],
)
async def test_bad_text_frame_gets_its_error_code(connect: Connect, raw: str, code: str) -> None:
    offender, bystander = await chat_pair(connect)
    await offender.ws.send_str(raw)
    error = await offender.expect("error")
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    await assert_unharmed(offender, bystander)


async def test_invalid_username_refuses_a_first_join(connect: Connect) -> None:
    newcomer = await connect()
    with pytest.raises(ServerError) as caught:
        await newcomer.join("r", "x" * 40)
    assert caught.value.code == "invalid_field"
    assert (await newcomer.join("r", "fine"))["type"] == "ack"


async def test_username_of_a_later_join_is_ignored_even_if_invalid(connect: Connect) -> None:
    ann = await connect()
    await ann.join("a", "ann")
    await ann.join("b", "x" * 40)
    assert (await ann.expect("user_joined", room="b"))["username"] == "ann"


async def test_error_echoes_the_ref(connect: Connect) -> None:
    offender, bystander = await chat_pair(connect)
    await offender.send({"type": "message", "content": "x", "room": "nope", "ref": "mine-7"})
    refused = await offender.expect("error", ref="mine-7")
    assert refused["code"] == "not_in_room"
    await assert_unharmed(offender, bystander)


async def test_binary_frame_on_a_json_connection_is_bad_encoding(connect: Connect) -> None:
    offender, bystander = await chat_pair(connect)
    await offender.ws.send_bytes(b'{"type": "ping"}')
    assert (await offender.expect("error"))["code"] == "bad_encoding"
    await assert_unharmed(offender, bystander)


@pytest.mark.parametrize("payload", [b"\xc1", b"\x81\xa4type\xa4nope", b"\x93\x01\x02\x03"])
async def test_bad_msgpack_frames(connect: Connect, payload: bytes) -> None:
    offender = await connect(msgpack=True)
    bystander = await connect()
    await offender.join("r", "offender")
    await bystander.join("r", "bystander")
    await offender.ws.send_bytes(payload)
    error = await offender.expect("error")
    assert error["code"] in ("bad_encoding", "unknown_type")
    expected = "unknown_type" if payload.startswith(b"\x81") else "bad_encoding"
    assert error["code"] == expected
    await assert_unharmed(offender, bystander)


async def test_text_frame_on_a_msgpack_connection_is_bad_encoding(connect: Connect) -> None:
    offender = await connect(msgpack=True)
    await offender.ws.send_str('{"type": "ping"}')
    assert (await offender.expect("error"))["code"] == "bad_encoding"
    await offender.send({"type": "ping"})
    assert await offender.expect("pong")


async def test_rooms_omitted_with_several_rooms_is_invalid_field(connect: Connect) -> None:
    offender, bystander = await chat_pair(connect)
    await offender.join("second", "offender")
    payload: dict[str, Any] = {"type": "message", "content": "which room?"}
    with pytest.raises(ServerError) as caught:
        await offender.request(payload)
    assert caught.value.code == "invalid_field"
    await assert_unharmed(offender, bystander)


async def test_message_before_any_join_is_not_in_room(connect: Connect) -> None:
    lonely = await connect()
    with pytest.raises(ServerError) as caught:
        await lonely.say("hello?")
    assert caught.value.code == "not_in_room"
