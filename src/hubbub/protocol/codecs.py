"""The two encodings of protocol v1: JSON in text frames, MessagePack in binary frames.

A connection speaks exactly one, chosen by the `msgpack` subprotocol at the
upgrade. Decoding failures become `Refusal`s with `bad_json` or
`bad_encoding`; a frame of the wrong kind (binary on a JSON connection, text
on a MessagePack one) is `bad_encoding`.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack
import orjson

from hubbub.protocol.errors import ErrorCode, Refusal

MSGPACK_SUBPROTOCOL = "msgpack"
JSON_SUBPROTOCOL = "json"


@dataclass(frozen=True, slots=True)
class Codec:
    name: str
    binary: bool
    """True when events travel in binary frames."""

    def encode(self, wire: dict[str, Any]) -> bytes:
        if self.binary:
            return msgpack.packb(wire, use_bin_type=True)
        return orjson.dumps(wire)

    def decode(self, data: bytes | str, binary_frame: bool) -> Any:
        if binary_frame != self.binary:
            expected = "binary MessagePack" if self.binary else "text JSON"
            raise Refusal(ErrorCode.BAD_ENCODING, f"this connection speaks {expected} frames")
        if self.binary:
            assert isinstance(data, bytes)
            try:
                return msgpack.unpackb(data, raw=False, strict_map_key=False)
            except (ValueError, TypeError) as exc:
                raise Refusal(ErrorCode.BAD_ENCODING, "frame is not one MessagePack value") from exc
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise Refusal(ErrorCode.BAD_JSON, f"frame is not valid JSON: {exc.msg}") from exc

    @property
    def not_an_object(self) -> ErrorCode:
        return ErrorCode.BAD_ENCODING if self.binary else ErrorCode.BAD_JSON


JSON = Codec(JSON_SUBPROTOCOL, binary=False)
MSGPACK = Codec(MSGPACK_SUBPROTOCOL, binary=True)


def choose_subprotocol(offered: Iterable[str]) -> str | None:
    """`msgpack` whenever the client offers it, whatever its order; else `json` if offered."""
    names = set(offered)
    for name in (MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL):
        if name in names:
            return name
    return None


def codec_for(subprotocol: str | None) -> Codec:
    return MSGPACK if subprotocol == MSGPACK_SUBPROTOCOL else JSON
