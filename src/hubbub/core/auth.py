"""Who a connection is, from an HS256 JWT: `sub` (or `name`) is the username,
an optional `rooms` claim lists the rooms it may join, `exp` is required.

Pure: verifying a signature is computation, not I/O.
"""

from dataclasses import dataclass

import jwt

from hubbub.protocol.errors import Refusal
from hubbub.protocol.validation import valid_room, valid_username

ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The token is missing, forged, expired or malformed (HTTP 401 before the upgrade)."""


@dataclass(frozen=True, slots=True)
class Identity:
    username: str
    rooms: frozenset[str] | None = None
    """The rooms this identity may join; None means any room."""

    def may_join(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms


def verify_token(token: str | None, secret: str) -> Identity:
    if not token:
        raise InvalidToken("a token is required (query parameter 'token')")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError as error:
        raise InvalidToken("token expired") from error
    except jwt.InvalidTokenError as error:
        raise InvalidToken(f"invalid token: {error}") from error
    name = claims.get("sub", claims.get("name"))
    if not isinstance(name, str):
        raise InvalidToken("token has no 'sub' or 'name' claim")
    try:
        username = valid_username(name)
        rooms = claims.get("rooms")
        if rooms is None:
            return Identity(username)
        if not isinstance(rooms, list):
            raise InvalidToken("'rooms' claim must be a list of room names")
        return Identity(username, frozenset(valid_room(room) for room in rooms))
    except Refusal as refusal:
        raise InvalidToken(f"invalid claim: {refusal.message}") from refusal


def issue_token(secret: str, subject: str, rooms: list[str] | None, expires_at: int) -> str:
    """A token for `hubbub token` and for tests."""
    claims: dict[str, object] = {"sub": subject, "exp": expires_at}
    if rooms is not None:
        claims["rooms"] = rooms
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
