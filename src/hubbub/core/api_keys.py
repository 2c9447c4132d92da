"""API keys of the HTTP publish route (`POST /rooms/{name}/messages`). Pure.

A request shows a key as `Authorization: Bearer KEY`. Several keys may be
configured at once, so that a deployment can rotate them: add the new key,
move the backends over, remove the old one. Keys are compared as SHA-256
digests with `hmac.compare_digest`, against every configured key whatever
matched first, so the time an answer takes says nothing about how much of a
key was right, nor which one. The keys themselves are kept only as digests
here and never appear in a `repr`, a log line or a metric.
"""

import hashlib
import hmac
import string
from collections.abc import Iterable
from enum import Enum

MIN_KEY_LENGTH = 16
"""Characters a key needs at least; `openssl rand -hex 32` gives 64."""
KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-._~+/=")
"""What a key may be made of: the characters of an RFC 6750 bearer token."""


class Verdict(Enum):
    MISSING = "missing"
    """No `Authorization: Bearer ...` at all: HTTP 401."""
    WRONG = "wrong"
    """A bearer key that is none of the configured ones: HTTP 403."""
    GRANTED = "granted"


def key_problem(key: str) -> str | None:
    """Why `key` cannot be configured as an API key, or None."""
    if len(key) < MIN_KEY_LENGTH:
        return f"must be at least {MIN_KEY_LENGTH} characters each"
    if not set(key) <= KEY_CHARACTERS:
        return "must be made of letters, digits and - . _ ~ + / = (a bearer token)"
    return None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The configured keys (none: the publish route does not exist)."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(key) for key in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._digests)} keys)"

    def check(self, authorization: str | None) -> Verdict:
        """The verdict on an `Authorization` header's value (None when absent)."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            return Verdict.MISSING
        given = _digest(credentials)
        granted = False
        for digest in self._digests:
            granted |= hmac.compare_digest(given, digest)
        return Verdict.GRANTED if granted else Verdict.WRONG
