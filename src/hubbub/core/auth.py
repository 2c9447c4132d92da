"""Who a connection is, from an HS256 JWT: `sub` (or `name`) is the username,
an optional `rooms` claim lists the rooms it may join, `exp` is required.

Pure: verifying a signature is computation, not I/O.
"""

from dataclasses import dataclass

import jwt

from hubbub.protocol.errors import ErrorCode, Refusal
from hubbub.protocol.validation import valid_room, valid_username

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
"""An HS256 key as long as the hash at least (RFC 7518, section 3.2)."""


class InvalidToken(Exception):
    """The token is missing, forged, expired or malformed (HTTP 401 before the upgrade)."""


@dataclass(frozen=True, slots=True)
class Identity:
    username: str
    rooms: frozenset[str] | None = None
    """The rooms this identity may join; None means any room."""

    def may_join(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms


def check_may_read(identity: Identity | None, room: str) -> None:
    """Refuse (`unauthorized`) a room the identity's token does not allow: for joining
    it, and for reading its history over WebSocket or HTTP alike."""
    if identity is not None and not identity.may_join(room):
        raise Refusal(ErrorCode.UNAUTHORIZED, f"your token does not allow room {room!r}")


def strong_secret(secret: str) -> bool:
    return len(secret.encode()) >= MIN_SECRET_BYTES


def claimed_username(value: object) -> str:
    """The username of a `sub` (or `name`) claim, as the server takes it."""
    if not isinstance(value, str):
        raise InvalidToken("token has no 'sub' or 'name' claim")
    try:
        return valid_username(value)
    except Refusal as refusal:
        raise InvalidToken(f"invalid claim: {refusal.message}") from refusal


def claimed_rooms(value: object) -> frozenset[str] | None:
    """The rooms of a `rooms` claim, as the server takes them (None: any room)."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidToken("'rooms' claim must be a list of room names")
    try:
        return frozenset(valid_room(room) for room in value)
    except Refusal as refusal:
        raise InvalidToken(f"invalid claim: {refusal.message}") from refusal


def verify_token(token: str | None, secret: str) -> Identity:
    if not token:
        raise InvalidToken("a token is required (query parameter 'token')")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError as error:
        raise InvalidToken("token expired") from error
    except jwt.InvalidTokenError as error:
        raise InvalidToken(f"invalid token: {error}") from error
    username = claimed_username(claims.get("sub", claims.get("name")))
    return Identity(username, claimed_rooms(claims.get("rooms")))


def issue_token(secret: str, subject: str, rooms: list[str] | None, expires_at: int) -> str:
    """A token for `hubbub token` and for tests; it is not checked (see `hubbub token`)."""
    claims: dict[str, object] = {"sub": subject, "exp": expires_at}
    if rooms is not None:
        claims["rooms"] = rooms
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
