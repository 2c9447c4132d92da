from typing import Any

import msgpack
import pytest

from hubbub.protocol.commands import History, Join, Leave, Ping, Post, Publication, Typing
from hubbub.protocol.errors import ErrorCode, Refusal
from hubbub.protocol.validation import (
    MAX_DATA_BYTES,
    MAX_DATA_DEPTH,
    parse_command,
    parse_publication,
)


def refused(event: object) -> Refusal:
    with pytest.raises(Refusal) as caught:
        parse_command(event)
    return caught.value


def test_seed_events_parse_with_their_fields() -> None:
    assert parse_command({"type": "join", "room": "general", "username": "john"}) == Join(
        "general", "john"
    )
    assert parse_command({"type": "message", "content": "Hello!", "room": "general"}) == Post(
        "Hello!", "general"
    )
    assert parse_command({"type": "leave", "room": "general"}) == Leave("general")
    assert parse_command({"type": "typing", "room": "general"}) == Typing("general")


def test_room_may_be_omitted_where_the_seed_omits_it() -> None:
    assert parse_command({"type": "message", "content": "hi"}) == Post("hi", None)
    assert parse_command({"type": "typing"}) == Typing(None)
    assert parse_command({"type": "leave"}) == Leave(None)


def test_history_and_ping() -> None:
    assert parse_command({"type": "history", "room": "a", "before": 10, "limit": 5}) == History(
        "a", 10, 5
    )
    assert parse_command({"type": "history", "room": "a"}) == History("a", None, 50)
    assert parse_command({"type": "ping", "ref": 7}) == Ping(7)


def test_join_username_is_trimmed_and_blank_means_guest() -> None:
    assert parse_command({"type": "join", "room": "r", "username": "  ann  "}) == Join("r", "ann")
    assert parse_command({"type": "join", "room": "r", "username": "   "}) == Join("r", None)
    assert parse_command({"type": "join", "room": "r"}) == Join("r", None)


@pytest.mark.parametrize("username", ["x" * 33, "bell\x07", 3, ["ann"]])
def test_invalid_join_username_is_reported_not_refused(username: object) -> None:
    """Only a connection's first join uses the username: the session decides."""
    join = parse_command({"type": "join", "room": "ok", "username": username})
    assert isinstance(join, Join)
    assert join.username is None
    assert join.username_error is not None


def test_join_since_is_kept() -> None:
    assert parse_command({"type": "join", "room": "r", "since": 41}) == Join("r", None, 41)


def test_unknown_fields_are_ignored() -> None:
    assert parse_command({"type": "ping", "extra": [1, 2]}) == Ping()


@pytest.mark.parametrize(
    "content",
    ["  hi \n", "    def f():\n\treturn 1\n", "\r\n  line\r\n", "\u202eevil", "x" * 4000 + "   "],
)
def test_content_is_kept_exactly_as_sent(content: str) -> None:
    """Trimming only decides whether content is valid: indentation, trailing spaces and
    newlines are the user's."""
    assert parse_command({"type": "message", "content": content}) == Post(content, None)


@pytest.mark.parametrize(
    "control", ["\x00", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f", "\x80", "\x9f"]
)
def test_content_with_a_control_character_is_refused(control: str) -> None:
    refusal = refused({"type": "message", "content": f"before{control}after", "ref": 1})
    assert refusal.code is ErrorCode.INVALID_FIELD
    assert f"U+{ord(control):04X}" in refusal.message
    assert "control characters" in refusal.message
    assert refusal.ref == 1


def test_content_made_only_of_control_characters_is_refused() -> None:
    assert refused({"type": "message", "content": "\x1b[31m"}).code is ErrorCode.INVALID_FIELD


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ([1, 2], ErrorCode.BAD_JSON),
        ("join", ErrorCode.BAD_JSON),
        ({"room": "a"}, ErrorCode.INVALID_FIELD),
        ({"type": 5}, ErrorCode.INVALID_FIELD),
        ({"type": "dance"}, ErrorCode.UNKNOWN_TYPE),
        ({"type": "join"}, ErrorCode.INVALID_FIELD),
        ({"type": "join", "room": ""}, ErrorCode.INVALID_FIELD),
        ({"type": "join", "room": "a" * 65}, ErrorCode.INVALID_FIELD),
        ({"type": "join", "room": "no spaces"}, ErrorCode.INVALID_FIELD),
        ({"type": "join", "room": "ok", "since": -1}, ErrorCode.INVALID_FIELD),
        ({"type": "join", "room": "ok", "since": True}, ErrorCode.INVALID_FIELD),
        ({"type": "join", "room": "ok", "since": 2**63}, ErrorCode.INVALID_FIELD),
        ({"type": "history", "room": "ok", "before": 2**63}, ErrorCode.INVALID_FIELD),
        ({"type": "message"}, ErrorCode.INVALID_FIELD),
        ({"type": "message", "content": "   "}, ErrorCode.INVALID_FIELD),
        ({"type": "message", "content": "x" * 4001}, ErrorCode.INVALID_FIELD),
        ({"type": "message", "content": "hi", "room": 1}, ErrorCode.INVALID_FIELD),
        ({"type": "history", "room": "a", "limit": 0}, ErrorCode.INVALID_FIELD),
        ({"type": "history", "room": "a", "limit": 101}, ErrorCode.INVALID_FIELD),
        ({"type": "history", "room": "a", "before": "1"}, ErrorCode.INVALID_FIELD),
        ({"type": "ping", "ref": "x" * 65}, ErrorCode.INVALID_FIELD),
        ({"type": "ping", "ref": 1.5}, ErrorCode.INVALID_FIELD),
        ({"type": "ping", "ref": False}, ErrorCode.INVALID_FIELD),
    ],
)
def test_invalid_events_are_refused_with_the_exact_code(event: object, code: ErrorCode) -> None:
    assert refused(event).code is code


def test_content_of_4000_characters_is_accepted() -> None:
    assert parse_command({"type": "message", "content": "x" * 4000}) == Post("x" * 4000, None)


def test_a_ref_that_is_a_whole_float_is_the_integer_it_equals() -> None:
    assert refused({"type": "nope", "ref": 7.0}).ref == 7
    assert type(refused({"type": "nope", "ref": -8373.0}).ref) is int
    # Beyond 2^53 a float stands for many integers: refused rather than merged.
    assert refused({"type": "ping", "ref": float(2**64)}).code is ErrorCode.INVALID_FIELD


def test_a_refusal_carries_the_events_ref() -> None:
    event: dict[str, Any] = {"type": "message", "content": "", "ref": "abc"}
    assert refused(event).ref == "abc"
    assert refused({"type": "nope", "ref": 9}).ref == 9


def test_not_an_object_code_depends_on_the_codec() -> None:
    with pytest.raises(Refusal) as caught:
        parse_command([1], ErrorCode.BAD_ENCODING)
    assert caught.value.code is ErrorCode.BAD_ENCODING


def nested(depth: int) -> object:
    """`depth` containers, alternating arrays and objects, around a number."""
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_data_of_every_json_kind_is_accepted_as_given() -> None:
    for data in (
        {"symbol": "AAPL", "price": 191.2},
        [1, "two", None, False],
        "text",
        3,
        -2.5,
        True,
        False,
        {},
        [],
        nested(MAX_DATA_DEPTH),
        "x" * (MAX_DATA_BYTES - 2),
    ):
        post = parse_command({"type": "message", "content": "c", "data": data})
        assert post == Post("c", None, None, data)


def test_null_data_is_no_data() -> None:
    assert parse_command({"type": "message", "content": "c", "data": None}) == Post("c", None)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (nested(MAX_DATA_DEPTH + 1), "nested at most 32"),
        (nested(500), "nested at most 32"),
        ("x" * (MAX_DATA_BYTES - 1), "at most 16384 bytes"),
        ({"k": "é" * (MAX_DATA_BYTES // 2)}, "at most 16384 bytes"),
        (float("nan"), "finite"),
        ({"a": [float("inf")]}, "finite"),
        (b"bytes", "JSON value"),
        ({1: "integer key"}, "JSON value"),
        ([2**64], "JSON value"),
        (msgpack.ExtType(1, b"x"), "JSON value"),
    ],
)
def test_data_too_deep_too_large_or_not_json_is_an_invalid_field(data: object, why: str) -> None:
    refusal = refused({"type": "message", "content": "c", "data": data, "ref": "r1"})
    assert refusal.code is ErrorCode.INVALID_FIELD
    assert why in refusal.message
    assert refusal.ref == "r1"


def test_a_publication_takes_from_content_data_and_ref() -> None:
    body = {"from": "  shop ", "content": " Order 7 shipped ", "data": {"o": 7}, "ref": 9}
    assert parse_publication(body) == Publication("shop", " Order 7 shipped ", {"o": 7}, 9)
    assert parse_publication({"from": "b", "content": "c", "extra": 1}) == Publication("b", "c")


@pytest.mark.parametrize(
    ("body", "code", "why"),
    [
        ([], ErrorCode.BAD_JSON, "object"),
        ("text", ErrorCode.BAD_JSON, "object"),
        ({"content": "c"}, ErrorCode.INVALID_FIELD, "from"),
        ({"content": "c", "from": ""}, ErrorCode.INVALID_FIELD, "from"),
        ({"content": "c", "from": "x" * 33}, ErrorCode.INVALID_FIELD, "from"),
        ({"content": "c", "from": "a\nb"}, ErrorCode.INVALID_FIELD, "from"),
        ({"from": "b"}, ErrorCode.INVALID_FIELD, "content"),
        ({"from": "b", "content": ""}, ErrorCode.INVALID_FIELD, "content"),
        ({"from": "b", "content": "c", "data": float("inf")}, ErrorCode.INVALID_FIELD, "data"),
        ({"from": "b", "content": "c", "ref": True}, ErrorCode.INVALID_FIELD, "ref"),
    ],
)
def test_an_invalid_publication_is_refused(body: object, code: ErrorCode, why: str) -> None:
    with pytest.raises(Refusal) as caught:
        parse_publication(body)
    assert caught.value.code is code
    assert why in caught.value.message


def test_join_watch_is_a_boolean() -> None:
    assert parse_command({"type": "join", "room": "r", "watch": True}) == Join(
        "r", None, watch=True
    )
    assert parse_command({"type": "join", "room": "r", "watch": False}) == Join("r", None)
    assert parse_command({"type": "join", "room": "r", "watch": None}) == Join("r", None)


@pytest.mark.parametrize("watch", [1, 0, "true", "yes", [], {}])
def test_join_watch_of_another_type_is_refused(watch: object) -> None:
    refusal = refused({"type": "join", "room": "r", "watch": watch, "ref": "j"})
    assert (refusal.code, refusal.ref) == (ErrorCode.INVALID_FIELD, "j")
    assert "watch" in refusal.message
