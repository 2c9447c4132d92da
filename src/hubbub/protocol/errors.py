"""Error codes the server sends, and the exception that carries one.

Following h11's split: a `Refusal` is the peer's fault. The server answers it
with an `error` event to that connection and keeps serving; it never closes
the connection and never touches another one. Our own bugs are ordinary
exceptions and surface as `internal`.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"
    BAD_ENCODING = "bad_encoding"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FIELD = "invalid_field"
    NOT_IN_ROOM = "not_in_room"
    RATE_LIMITED = "rate_limited"
    ROOM_FULL = "room_full"
    UNAUTHORIZED = "unauthorized"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS = {
    ErrorCode.BAD_JSON: 400,
    ErrorCode.BAD_ENCODING: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.INVALID_FIELD: 400,
    ErrorCode.NOT_IN_ROOM: 403,
    ErrorCode.UNAUTHORIZED: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.ROOM_FULL: 409,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}
"""The HTTP status of a refusal answered over HTTP instead of as an `error` event."""

Ref = str | int


class Refusal(Exception):
    """A client event the server will not accept, with the reason to tell the client."""

    def __init__(self, code: ErrorCode, message: str, ref: Ref | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.ref = ref

    def with_ref(self, ref: Ref | None) -> "Refusal":
        return Refusal(self.code, self.message, ref)
