"""Turn a decoded event (any value) into a `Command`, or refuse it with the exact code.

Rules (PROTOCOL.md, "Validation"): `room` is 1..64 of letters, digits, `-`,
`_`, `.`; `username` 1..32 printable characters after trimming; `content`
1..4000 characters after trimming, without control characters other than tab,
newline and carriage return, and kept exactly as sent (trimming only decides
validity); `ref` a string or int of at most 64 characters; `data` (protocol
1.1) any JSON value of at most 16 KiB encoded and nesting depth 32. Unknown
fields are ignored.
"""

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from hubbub.protocol.commands import (
    Command,
    History,
    Join,
    Leave,
    Ping,
    Post,
    Publication,
    Typing,
)
from hubbub.protocol.errors import ErrorCode, Ref, Refusal

ROOM_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_USERNAME = 32
MAX_CONTENT = 4000
MAX_REF = 64
MAX_HISTORY_LIMIT = 100
DEFAULT_HISTORY_LIMIT = 50
MAX_DATA_BYTES = 16 * 1024
"""A message's `data`, encoded as compact JSON (UTF-8)."""
MAX_DATA_DEPTH = 32
"""Objects and arrays nested in a message's `data`: `{"a": [1]}` has depth 2."""
EXACT_FLOAT = 2**53
"""Floats hold every integer up to this exactly."""
MAX_ID = 2**63 - 1
"""Ids are signed 64-bit integers in every store."""
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""C0 controls but tab, LF and CR; DEL; C1 controls. Pages show them as boxes and
terminals act on them (BEL, ANSI escapes); nobody types them. Bidi controls (Cf, such as
U+202E) are not among them: scripts need them, and the page isolates them."""


def _invalid(message: str) -> Refusal:
    return Refusal(ErrorCode.INVALID_FIELD, message)


def parse_ref(value: object) -> Ref | None:
    """A ref as given; a float with no fraction (`7.0`) is the integer it equals, as JSON
    Schema's `integer` and JavaScript's numbers have it, while it is exact (up to 2^53:
    JSON parsers read larger integers than 64 bits as floats, which would merge refs)."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) <= EXACT_FLOAT:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _invalid("ref must be a string or an integer")
    too_long = (
        len(value) > MAX_REF if isinstance(value, str) else not -(10**63) < value < 10**MAX_REF
    )
    if too_long:
        raise _invalid(f"ref must be at most {MAX_REF} characters")
    return value


def valid_room(value: object) -> str:
    if not isinstance(value, str) or ROOM_PATTERN.fullmatch(value) is None:
        raise _invalid("room must be 1 to 64 letters, digits, '-', '_' or '.'")
    return value


def _optional_room(event: Mapping[str, Any]) -> str | None:
    value = event.get("room")
    return None if value is None else valid_room(value)


def valid_username(value: str) -> str:
    name = value.strip()
    if not 1 <= len(name) <= MAX_USERNAME or not name.isprintable():
        raise _invalid(f"username must be 1 to {MAX_USERNAME} printable characters")
    return name


def _join_username(event: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The requested username (None when missing or blank: the session picks a guest name),
    or why it is invalid."""
    value = event.get("username")
    if value is None:
        return None, None
    if not isinstance(value, str):
        return None, "username must be a string"
    if not value.strip():
        return None, None
    try:
        return valid_username(value), None
    except Refusal as refusal:
        return None, refusal.message


def _content(event: Mapping[str, Any]) -> str:
    value = event.get("content")
    if not isinstance(value, str):
        raise _invalid("content must be a string")
    if not 1 <= len(value.strip()) <= MAX_CONTENT:
        raise _invalid(f"content must be 1 to {MAX_CONTENT} characters after trimming")
    control = CONTROL_CHARACTERS.search(value)
    if control is not None:
        raise _invalid(
            f"content must not contain control characters (found U+{ord(control[0]):04X});"
            " tab, newline and carriage return are allowed"
        )
    return value


def valid_data(value: object) -> object:
    """A message's `data` as given, or None when absent (a `null` is no data).

    Any JSON value: objects with string keys, arrays, strings, finite numbers, booleans
    (MessagePack can carry more: bytes, extension types, integer keys, NaN; none of that
    survives a JSON client or the stores, so it is refused). At most `MAX_DATA_BYTES`
    encoded as JSON and `MAX_DATA_DEPTH` containers deep."""
    if value is None:
        return None
    depth = _depth(value, 0)
    if depth > MAX_DATA_DEPTH:
        raise _invalid(f"data must be nested at most {MAX_DATA_DEPTH} levels deep")
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        raise _invalid(f"data must be a JSON value ({error})") from None
    if len(encoded) > MAX_DATA_BYTES:
        raise _invalid(
            f"data must be at most {MAX_DATA_BYTES} bytes encoded as JSON ({len(encoded)} given)"
        )
    return value


def _depth(value: object, depth: int) -> int:
    """How deep containers nest in `value` (stopping once past the limit), refusing
    floats that JSON cannot write (NaN and the infinities would become null)."""
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        if isinstance(value, float) and not math.isfinite(value):
            raise _invalid("data must be a JSON value (a number must be finite)")
        return depth
    depth += 1
    if depth > MAX_DATA_DEPTH:
        return depth
    deepest = depth
    for item in items:
        if deepest > MAX_DATA_DEPTH:
            break
        deepest = max(deepest, _depth(item, depth))
    return deepest


def _optional_id(event: Mapping[str, Any], field: str) -> int | None:
    value = event.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise _invalid(f"{field} must be a message id, 0 to 2^63-1")
    return value


def _limit(event: Mapping[str, Any]) -> int:
    value = event.get("limit")
    if value is None:
        return DEFAULT_HISTORY_LIMIT
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid("limit must be an integer")
    if not 1 <= value <= MAX_HISTORY_LIMIT:
        raise _invalid(f"limit must be 1 to {MAX_HISTORY_LIMIT}")
    return value


def _watch(event: Mapping[str, Any]) -> bool:
    value = event.get("watch")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _invalid("watch must be true or false")
    return value


def _join(event: Mapping[str, Any], ref: Ref | None) -> Command:
    username, problem = _join_username(event)
    room, since, watch = valid_room(event.get("room")), _optional_id(event, "since"), _watch(event)
    return Join(room, username, since, ref, problem, watch)


def _post(event: Mapping[str, Any], ref: Ref | None) -> Command:
    return Post(_content(event), _optional_room(event), ref, valid_data(event.get("data")))


def _leave(event: Mapping[str, Any], ref: Ref | None) -> Command:
    return Leave(_optional_room(event), ref)


def _typing(event: Mapping[str, Any], ref: Ref | None) -> Command:
    return Typing(_optional_room(event), ref)


def _history(event: Mapping[str, Any], ref: Ref | None) -> Command:
    return History(valid_room(event.get("room")), _optional_id(event, "before"), _limit(event), ref)


def _ping(event: Mapping[str, Any], ref: Ref | None) -> Command:
    return Ping(ref)


_PARSERS: dict[str, Callable[[Mapping[str, Any], Ref | None], Command]] = {
    "join": _join,
    "message": _post,
    "leave": _leave,
    "typing": _typing,
    "history": _history,
    "ping": _ping,
}


def parse_command(event: object, not_an_object: ErrorCode = ErrorCode.BAD_JSON) -> Command:
    """Validate one decoded event.

    Raises `Refusal`, carrying the event's `ref` when it had a valid one.
    """
    if not isinstance(event, Mapping):
        raise Refusal(not_an_object, "an event must be an object with a 'type' field")
    ref = parse_ref(event.get("ref"))
    kind = event.get("type")
    if not isinstance(kind, str):
        raise Refusal(ErrorCode.INVALID_FIELD, "type must be a string", ref)
    parser = _PARSERS.get(kind)
    if parser is None:
        raise Refusal(ErrorCode.UNKNOWN_TYPE, f"unknown event type {kind[:64]!r}", ref)
    try:
        return parser(event, ref)
    except Refusal as refusal:
        raise refusal.with_ref(ref) from None


def parse_publication(body: object) -> Publication:
    """Validate the body of `POST /rooms/{name}/messages`: `from` follows the username
    rules (and is trimmed like a username), `content`, `data` and `ref` those of a
    `message` event. Raises `Refusal` (`bad_json` for a body that is not an object)."""
    if not isinstance(body, Mapping):
        raise Refusal(ErrorCode.BAD_JSON, "the body must be a JSON object")
    sender = body.get("from")
    if not isinstance(sender, str):
        raise _invalid("from must be a string (the sender's name)")
    try:
        name = valid_username(sender)
    except Refusal:
        raise _invalid(f"from must be 1 to {MAX_USERNAME} printable characters") from None
    return Publication(
        name, _content(body), valid_data(body.get("data")), parse_ref(body.get("ref"))
    )
