import orjson

from hubbub.protocol.errors import ErrorCode
from hubbub.protocol.events import (
    Ack,
    ChatMessage,
    Error,
    OnlineUsers,
    Welcome,
    format_timestamp,
)


def test_timestamp_is_rfc3339_utc_with_milliseconds() -> None:
    assert format_timestamp(1_795_674_063_123) == "2026-11-26T06:21:03.123Z"
    assert format_timestamp(5) == "1970-01-01T00:00:00.005Z"


def test_seed_fields_of_message_and_welcome() -> None:
    wire = ChatMessage(7, "general", "john", "Hello!", 1_795_674_063_123).to_wire()
    assert wire == {
        "type": "message",
        "id": 7,
        "room": "general",
        "from": "john",
        "content": "Hello!",
        "timestamp": "2026-11-26T06:21:03.123Z",
    }
    welcome = Welcome("c1").to_wire()
    assert welcome["message"] == "Connected to server"
    assert welcome["protocol"] == 1


def test_a_message_has_data_on_the_wire_only_when_it_carries_some() -> None:
    plain = ChatMessage(7, "general", "john", "Hello!", 1_795_674_063_123)
    assert "data" not in plain.to_wire()
    assert orjson.dumps(plain.to_wire()) == (
        b'{"type":"message","id":7,"room":"general","from":"john","content":"Hello!",'
        b'"timestamp":"2026-11-26T06:21:03.123Z"}'
    )
    data = {"symbol": "AAPL", "price": 191.2}
    wire = ChatMessage(7, "general", "john", "AAPL 191.20", 0, data).to_wire()
    assert wire["data"] == data
    assert wire["content"] == "AAPL 191.20"
    falsy_values: list[object] = [False, 0, "", [], {}]
    for falsy in falsy_values:
        assert ChatMessage(1, "r", "a", "c", 0, falsy).to_wire()["data"] == falsy


def test_online_users_lists_at_most_1000_but_counts_all() -> None:
    names = sorted(f"user{i:05d}" for i in range(1500))
    wire = OnlineUsers.of("big", names).to_wire()
    assert len(wire["users"]) == 1000
    assert wire["users"] == names[:1000]
    assert wire["count"] == 1500


def test_ack_fields_appear_only_when_set() -> None:
    assert Ack("r1").to_wire() == {"type": "ack", "ref": "r1"}
    assert Ack(3, id=9).to_wire() == {"type": "ack", "ref": 3, "id": 9}
    assert Ack("j", replayed=0, truncated=False).to_wire() == {
        "type": "ack",
        "ref": "j",
        "replayed": 0,
        "truncated": False,
    }
    assert Ack("j", replayed=0, truncated=False, reset=True).to_wire() == {
        "type": "ack",
        "ref": "j",
        "replayed": 0,
        "truncated": False,
        "reset": True,
    }


def test_error_has_ref_only_when_given() -> None:
    assert Error(ErrorCode.BAD_JSON, "oops").to_wire() == {
        "type": "error",
        "code": "bad_json",
        "message": "oops",
    }
    assert Error(ErrorCode.NOT_IN_ROOM, "no", "x").to_wire()["ref"] == "x"


def test_error_has_retry_after_only_when_given() -> None:
    assert "retry_after" not in Error(ErrorCode.RATE_LIMITED, "slow down", 1).to_wire()
    assert Error(ErrorCode.RATE_LIMITED, "slow down", 1, 0.05).to_wire() == {
        "type": "error",
        "code": "rate_limited",
        "message": "slow down",
        "ref": 1,
        "retry_after": 0.05,
    }
