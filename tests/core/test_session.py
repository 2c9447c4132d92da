import itertools
from collections.abc import Sequence

import pytest

from hubbub.core.actions import Close, Enter, Exit, FetchHistory, Notify, Publish, Reply
from hubbub.core.auth import Identity
from hubbub.core.ratelimit import RateLimiter
from hubbub.core.session import Session
from hubbub.protocol.commands import History, Join, Leave, Ping, Post, Typing
from hubbub.protocol.errors import ErrorCode, Refusal
from hubbub.protocol.events import Ack, Error, Pong, TypingNotice


def make_session(rate: float = 1000, burst: int = 1000, abuse: int = 100) -> Session:
    guests = (f"User-{n:08x}" for n in itertools.count())
    return Session(RateLimiter(rate, burst, abuse), lambda: next(guests))


def error_code(actions: Sequence[object]) -> ErrorCode:
    [reply] = actions
    assert isinstance(reply, Reply)
    assert isinstance(reply.event, Error)
    return reply.event.code


def test_first_join_sets_the_username_and_later_ones_ignore_it() -> None:
    session = make_session()
    assert session.handle(Join("a", "ann", None, "r1"), 0) == [Enter("a", "ann", None, "r1")]
    assert session.handle(Join("b", "bob"), 0) == [Enter("b", "ann", None, None)]
    assert session.username == "ann"
    assert list(session.rooms) == ["a", "b"]


def test_invalid_username_refuses_the_first_join_only() -> None:
    session = make_session()
    bad = Join("a", None, None, "j", username_error="username must be 1 to 32 characters")
    assert error_code(session.handle(bad, 0)) is ErrorCode.INVALID_FIELD
    assert session.username is None
    assert not session.rooms
    session.handle(Join("a", "ann"), 0)
    assert session.handle(bad, 0) == [Enter("a", "ann", None, "j")]


def test_first_join_without_username_gets_a_guest_name() -> None:
    session = make_session()
    [enter] = session.handle(Join("a", None), 0)
    assert isinstance(enter, Enter)
    assert enter.username == "User-00000000"


def test_message_to_a_room_not_joined_is_not_in_room() -> None:
    session = make_session()
    session.handle(Join("a", "ann"), 0)
    assert error_code(session.handle(Post("hi", "b", "x"), 0)) is ErrorCode.NOT_IN_ROOM
    assert error_code(session.handle(Typing("b"), 0)) is ErrorCode.NOT_IN_ROOM
    assert error_code(session.handle(Leave("b"), 0)) is ErrorCode.NOT_IN_ROOM


def test_the_error_carries_the_ref() -> None:
    session = make_session()
    [reply] = session.handle(Post("hi", "b", "x"), 0)
    assert reply == Reply(Error(ErrorCode.NOT_IN_ROOM, "join room 'b' first", "x"))


def test_room_omitted_with_exactly_one_room_uses_it() -> None:
    session = make_session()
    session.handle(Join("a", "ann"), 0)
    assert session.handle(Post("hi", None, 1), 0) == [Publish("a", "ann", "hi", 1)]
    assert session.handle(Typing(None), 0) == [Notify("a", TypingNotice("ann", "a"))]


def test_room_omitted_with_no_room_or_several_is_refused() -> None:
    session = make_session()
    assert error_code(session.handle(Post("hi", None), 0)) is ErrorCode.NOT_IN_ROOM
    session.handle(Join("a", "ann"), 0)
    session.handle(Join("b", "ann"), 0)
    assert error_code(session.handle(Post("hi", None), 0)) is ErrorCode.INVALID_FIELD


def test_leave_without_room_leaves_every_room_then_acks() -> None:
    session = make_session()
    session.handle(Join("a", "ann"), 0)
    session.handle(Join("b", "ann"), 0)
    assert session.handle(Leave(None, "r"), 0) == [Exit("a"), Exit("b"), Reply(Ack("r"))]
    assert not session.rooms


def test_leave_one_room() -> None:
    session = make_session()
    session.handle(Join("a", "ann"), 0)
    session.handle(Join("b", "ann"), 0)
    assert session.handle(Leave("a"), 0) == [Exit("a")]
    assert list(session.rooms) == ["b"]


def test_typing_with_ref_is_acked_after_the_notice() -> None:
    session = make_session()
    session.handle(Join("a", "ann"), 0)
    assert session.handle(Typing("a", "t"), 0) == [
        Notify("a", TypingNotice("ann", "a")),
        Reply(Ack("t")),
    ]


def test_ping_answers_pong_and_history_is_fetched() -> None:
    session = make_session()
    assert session.handle(Ping("p"), 0) == [Reply(Pong()), Reply(Ack("p"))]
    assert session.handle(History("a", 5, 10, "h"), 0) == [FetchHistory("a", 5, 10, "h")]


def test_a_refusal_from_decoding_is_answered_with_its_code() -> None:
    session = make_session()
    actions = session.handle(Refusal(ErrorCode.BAD_JSON, "bad", "q"), 0)
    assert actions == [Reply(Error(ErrorCode.BAD_JSON, "bad", "q"))]


def test_over_the_rate_events_are_dropped_with_rate_limited() -> None:
    session = make_session(rate=2, burst=2)
    assert session.handle(Ping(), 0) == [Reply(Pong())]
    assert session.handle(Ping(), 0) == [Reply(Pong())]
    [limited] = session.handle(Ping("z"), 0)
    assert isinstance(limited, Reply)
    assert isinstance(limited.event, Error)
    assert (limited.event.code, limited.event.ref) == (ErrorCode.RATE_LIMITED, "z")
    assert limited.event.retry_after == 0.5
    assert "0.5 s" in limited.event.message
    assert limited.event.to_wire()["retry_after"] == 0.5
    assert session.handle(Ping(), 0.5) == [Reply(Pong())]


def test_a_client_that_waits_retry_after_is_never_closed() -> None:
    session = make_session(rate=20, burst=2, abuse=3)
    now, refusals = 0.0, 0
    for _ in range(400):
        actions = session.handle(Ping(), now)
        assert not any(isinstance(action, Close) for action in actions)
        reply = actions[0]
        assert isinstance(reply, Reply)
        if isinstance(reply.event, Error):
            assert reply.event.retry_after is not None
            refusals += 1
            now += reply.event.retry_after
    assert refusals > 3


def test_bad_frames_count_against_the_rate_too() -> None:
    session = make_session(rate=1, burst=1)
    session.handle(Refusal(ErrorCode.BAD_JSON, "bad"), 0)
    assert error_code(session.handle(Ping(), 0)) is ErrorCode.RATE_LIMITED


def test_persistent_abuse_closes_with_1008_but_a_burst_does_not() -> None:
    session = make_session(rate=1, burst=1, abuse=5)
    closes = []
    for i in range(20):
        actions = session.handle(Ping(), i * 0.001)
        closes += [action for action in actions if isinstance(action, Close)]
    assert closes
    assert closes[0].code == 1008

    bursty = make_session(rate=1, burst=1, abuse=5)
    for _ in range(5):
        bursty.handle(Ping(), 0.0)
    for second in range(1, 60):
        actions = bursty.handle(Ping(), float(second))
        assert actions == [Reply(Pong())]


def test_a_token_identity_fixes_the_username_and_the_rooms() -> None:
    session = Session(
        RateLimiter(1000, 1000, 100), lambda: "guest", Identity("alice", frozenset({"general"}))
    )
    assert session.handle(Join("general", "mallory"), 0) == [Enter("general", "alice", None, None)]
    assert error_code(session.handle(Join("secret", None, None, "j"), 0)) is ErrorCode.UNAUTHORIZED
    assert error_code(session.handle(History("secret"), 0)) is ErrorCode.UNAUTHORIZED
    assert list(session.rooms) == ["general"]


def test_an_identity_without_rooms_may_join_any() -> None:
    session = Session(RateLimiter(1000, 1000, 100), lambda: "guest", Identity("bob"))
    assert session.handle(Join("anything", None), 0) == [Enter("anything", "bob", None, None)]


@pytest.mark.parametrize(("limit", "said"), [(1, "at most 1 room;"), (2, "at most 2 rooms;")])
def test_the_rooms_limit_is_said_in_good_english(limit: int, said: str) -> None:
    session = Session(RateLimiter(1000, 1000, 100), lambda: "guest", max_rooms=limit)
    for room in ("a", "b")[:limit]:
        session.handle(Join(room, "ann"), 0)
    [refusal] = session.handle(Join("c", "ann"), 0)
    assert isinstance(refusal, Reply)
    assert isinstance(refusal.event, Error)
    assert said in refusal.event.message
    assert refusal.event.message.endswith("leave one to join another")


def test_rooms_per_connection_are_limited() -> None:
    session = Session(RateLimiter(1000, 1000, 100), lambda: "guest", max_rooms=2)
    session.handle(Join("a", "ann"), 0)
    session.handle(Join("b", "ann"), 0)
    assert error_code(session.handle(Join("c", "ann"), 0)) is ErrorCode.ROOM_FULL
    assert session.handle(Join("a", "ann"), 0) == [Enter("a", "ann", None, None)]
    session.forget_room("b")
    assert list(session.rooms) == ["a"]


def test_a_watch_join_enters_as_a_watcher_and_names_the_connection() -> None:
    session = make_session()
    assert session.handle(Join("a", "ann", 5, "j", watch=True), 0) == [
        Enter("a", "ann", 5, "j", watch=True)
    ]
    assert session.username == "ann"
    assert session.rooms == {"a": True}


def test_a_watcher_may_neither_post_nor_type_in_the_room_it_watches() -> None:
    session = make_session()
    session.handle(Join("a", "ann", watch=True), 0)
    for refused in (Post("hi", "a", "p"), Post("hi", None, "p"), Typing("a", "p"), Typing(None)):
        [reply] = session.handle(refused, 0)
        assert isinstance(reply, Reply)
        assert isinstance(reply.event, Error)
        assert reply.event.code is ErrorCode.NOT_IN_ROOM
        assert reply.event.ref == refused.ref
        assert "watch" in reply.event.message
    session.handle(Join("b", "ann"), 0)
    assert session.handle(Post("hi", "b"), 0) == [Publish("b", "ann", "hi", None)]


def test_a_watcher_leaves_and_reads_history_like_a_member() -> None:
    session = make_session()
    session.handle(Join("a", "ann", watch=True), 0)
    assert session.handle(History("a", None, 10, "h"), 0) == [FetchHistory("a", None, 10, "h")]
    assert session.handle(Leave(None, "l"), 0) == [Exit("a"), Reply(Ack("l"))]
    assert session.rooms == {}


def test_joining_again_in_the_other_mode_switches_modes() -> None:
    session = make_session()
    session.handle(Join("a", "ann", watch=True), 0)
    assert session.handle(Join("a", None), 0) == [Enter("a", "ann", None, None)]
    assert session.handle(Post("hi", "a"), 0) == [Publish("a", "ann", "hi", None)]
    assert session.handle(Join("a", None, watch=True), 0) == [
        Enter("a", "ann", None, None, watch=True)
    ]
    assert error_code(session.handle(Post("hi", "a"), 0)) is ErrorCode.NOT_IN_ROOM


def test_a_refused_switch_restores_the_previous_mode() -> None:
    session = make_session()
    session.handle(Join("a", "ann", watch=True), 0)
    session.handle(Join("a", None), 0)
    session.restore_room("a", True)
    assert session.rooms == {"a": True}
    session.handle(Join("b", None, watch=True), 0)
    session.restore_room("b", None)
    assert session.rooms == {"a": True}


def test_watched_rooms_count_toward_the_rooms_of_a_connection() -> None:
    session = Session(RateLimiter(1000, 1000, 100), lambda: "guest", max_rooms=1)
    session.handle(Join("a", "ann", watch=True), 0)
    assert error_code(session.handle(Join("b", None), 0)) is ErrorCode.ROOM_FULL
