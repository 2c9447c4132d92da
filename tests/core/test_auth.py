import time

import jwt
import pytest

from hubbub.core.auth import Identity, InvalidToken, issue_token, verify_token

SECRET = "test-secret-with-enough-length-for-hs256"


def later() -> int:
    return int(time.time()) + 3600


def test_sub_is_the_username_and_rooms_limit_joins() -> None:
    identity = verify_token(issue_token(SECRET, "alice", ["general", "dev"], later()), SECRET)
    assert identity == Identity("alice", frozenset({"general", "dev"}))
    assert identity.may_join("dev")
    assert not identity.may_join("secret")


def test_name_claim_is_used_without_sub() -> None:
    token = jwt.encode({"name": "  bob ", "exp": later()}, SECRET, algorithm="HS256")
    assert verify_token(token, SECRET) == Identity("bob")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "required"),
        ("", "required"),
        ("not.a.jwt", "invalid token"),
        (
            jwt.encode({"sub": "eve", "exp": 2_000_000_000}, "other-secret-xxxxxxxxxxxxxxxxxxxxx"),
            "invalid",
        ),
        (jwt.encode({"sub": "eve", "exp": 1}, SECRET, algorithm="HS256"), "expired"),
        (jwt.encode({"sub": "eve"}, SECRET, algorithm="HS256"), "exp"),
        (jwt.encode({"exp": 2_000_000_000}, SECRET, algorithm="HS256"), "'sub'"),
        (jwt.encode({"sub": "x" * 40, "exp": 2_000_000_000}, SECRET, algorithm="HS256"), "claim"),
        (jwt.encode({"sub": "a", "rooms": "general", "exp": 2_000_000_000}, SECRET), "list"),
        (jwt.encode({"sub": "a", "rooms": ["no spaces"], "exp": 2_000_000_000}, SECRET), "claim"),
        (jwt.encode({"sub": "a", "exp": 2_000_000_000}, SECRET * 2, algorithm="HS512"), "invalid"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str | None, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        verify_token(token, SECRET)


def test_unsigned_tokens_are_refused() -> None:
    token = jwt.encode({"sub": "eve", "exp": later()}, key="", algorithm="none")
    with pytest.raises(InvalidToken):
        verify_token(token, SECRET)
