"""Properties of the session: random streams of commands and refusals against a model.

The model is PROTOCOL.md restated: a token bucket (`rate`/s, `burst`) decides
`rate_limited` and its `retry_after` (the time until a whole token, rounded up to
the millisecond), a second bucket (`abuse_limit` refused events per ten seconds,
counting only those that came before the previous refusal's `retry_after` had
passed) decides the 1008 close, membership follows joins and leaves, the first join
names the connection, and every event with a `ref` gets exactly one answer.
Times are multiples of 1/8 s and rates powers of two so that the model's
arithmetic and the session's are exactly the same floats.
"""

import itertools
import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.core.actions import Action, Close, Enter, Exit, FetchHistory, Notify, Publish, Reply
from hubbub.core.auth import Identity
from hubbub.core.ratelimit import RateLimiter
from hubbub.core.session import Session
from hubbub.protocol.commands import Command, History, Join, Leave, Ping, Post, Typing
from hubbub.protocol.errors import ErrorCode, Ref, Refusal
from hubbub.protocol.events import Ack, Error, Pong, TypingNotice

FUZZ = settings(max_examples=100, deadline=None, database=None)

ROOMS = ("a", "b", "c", "d")
ABUSE_WINDOW = 10.0
PARSE_CODES = (
    ErrorCode.BAD_JSON,
    ErrorCode.BAD_ENCODING,
    ErrorCode.UNKNOWN_TYPE,
    ErrorCode.INVALID_FIELD,
)
DOCUMENTED = frozenset(ErrorCode)

refs: st.SearchStrategy[Ref | None] = st.one_of(
    st.none(), st.integers(-5, 10**6), st.text(max_size=8)
)
rooms = st.sampled_from(ROOMS)
optional_rooms = st.one_of(st.none(), rooms)

joins = st.builds(
    Join,
    room=rooms,
    username=st.one_of(st.none(), st.sampled_from(["ann", "bob", "\u00e9l\u00e8ve"])),
    since=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    ref=refs,
    username_error=st.one_of(st.none(), st.just("username must be 1 to 32 characters")),
    watch=st.booleans(),
)
commands: st.SearchStrategy[Command] = st.one_of(
    joins,
    joins,
    st.builds(Post, content=st.text(min_size=1, max_size=20), room=optional_rooms, ref=refs),
    st.builds(Leave, room=optional_rooms, ref=refs),
    st.builds(Typing, room=optional_rooms, ref=refs),
    st.builds(
        History,
        room=rooms,
        before=st.one_of(st.none(), st.integers(0, 100)),
        limit=st.integers(1, 100),
        ref=refs,
    ),
    st.builds(Ping, ref=refs),
)
refusals = st.builds(
    lambda code, ref: Refusal(code, "refused by the decoder", ref),
    st.sampled_from(PARSE_CODES),
    refs,
)
inputs: st.SearchStrategy[Command | Refusal] = st.one_of(commands, commands, refusals)
steps = st.lists(st.tuples(st.integers(0, 16), inputs), max_size=60)
"""(eighths of a second since the previous event, the event)"""
identities = st.one_of(
    st.none(),
    st.builds(
        Identity,
        username=st.sampled_from(["tok", "ann"]),
        rooms=st.one_of(st.none(), st.frozensets(rooms)),
    ),
)


@dataclass
class Limits:
    rate: float
    burst: int
    abuse_limit: int
    max_rooms: int


limits = st.builds(
    Limits,
    rate=st.sampled_from([0.5, 1.0, 2.0, 8.0, 1024.0]),
    burst=st.sampled_from([1, 2, 3, 5, 40]),
    abuse_limit=st.sampled_from([5, 10, 20, 40]),
    max_rooms=st.integers(1, 5),
)


@dataclass
class Bucket:
    """A token bucket as the protocol describes it, written without ratelimit.py."""

    rate: float
    capacity: float
    tokens: float = field(init=False)
    last: float | None = None

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    def take(self, now: float) -> bool:
        if self.last is not None:
            self.tokens = min(self.capacity, self.tokens + self.rate * (now - self.last))
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Model:
    limits: Limits
    identity: Identity | None
    rooms: list[str] = field(default_factory=list)
    watched: set[str] = field(default_factory=set)
    username: str | None = None
    guests: int = 0
    bucket: Bucket = field(init=False)
    abuse: Bucket = field(init=False)
    retry_at: float = -math.inf

    def __post_init__(self) -> None:
        self.bucket = Bucket(self.limits.rate, self.limits.burst)
        self.abuse = Bucket(self.limits.abuse_limit / ABUSE_WINDOW, self.limits.abuse_limit)
        if self.identity is not None:
            self.username = self.identity.username

    def expect(self, event: Command | Refusal, now: float) -> list[Action]:
        if not self.bucket.take(now):
            retry_after = math.ceil((1 - self.bucket.tokens) / self.bucket.rate * 1000) / 1000
            limited: list[Action] = [
                Reply(Error(ErrorCode.RATE_LIMITED, "", event.ref, retry_after))
            ]
            told = now < self.retry_at
            self.retry_at = now + retry_after
            if told and not self.abuse.take(now):
                limited.append(Close(1008, ""))
            return limited
        if isinstance(event, Refusal):
            return [Reply(Error(event.code, "", event.ref))]
        try:
            return self._accept(event)
        except Refusal as refusal:
            return [Reply(Error(refusal.code, "", event.ref))]

    def _accept(self, event: Command) -> list[Action]:
        ack: list[Action] = [] if event.ref is None else [Reply(Ack(event.ref))]
        match event:
            case Join():
                self._may_read(event.room)
                if event.room not in self.rooms and len(self.rooms) >= self.limits.max_rooms:
                    raise Refusal(ErrorCode.ROOM_FULL, "")
                if self.username is None:
                    if event.username_error is not None:
                        raise Refusal(ErrorCode.INVALID_FIELD, "")
                    self.username = event.username or self._guest()
                if event.room not in self.rooms:
                    self.rooms.append(event.room)
                if event.watch:
                    self.watched.add(event.room)
                else:
                    self.watched.discard(event.room)
                return [Enter(event.room, self.username, event.since, event.ref, event.watch)]
            case Post():
                target = self._target(event.room, posting=True)
                assert self.username is not None
                return [Publish(target, self.username, event.content, event.ref)]
            case Typing():
                target = self._target(event.room, posting=True)
                assert self.username is not None
                return [Notify(target, TypingNotice(self.username, target)), *ack]
            case Leave(room=None):
                left: list[Action] = [Exit(room) for room in self.rooms]
                self.rooms.clear()
                self.watched.clear()
                return [*left, *ack]
            case Leave():
                target = self._target(event.room)
                self.rooms.remove(target)
                self.watched.discard(target)
                return [Exit(target), *ack]
            case History():
                self._may_read(event.room)
                return [FetchHistory(event.room, event.before, event.limit, event.ref)]
            case Ping():
                return [Reply(Pong()), *ack]

    def _may_read(self, room: str) -> None:
        if self.identity is not None and not self.identity.may_join(room):
            raise Refusal(ErrorCode.UNAUTHORIZED, "")

    def _target(self, room: str | None, posting: bool = False) -> str:
        """The room an event is for; one only watched is no room to post or type in."""
        if room is not None:
            if room not in self.rooms:
                raise Refusal(ErrorCode.NOT_IN_ROOM, "")
            target = room
        elif not self.rooms:
            raise Refusal(ErrorCode.NOT_IN_ROOM, "")
        elif len(self.rooms) > 1:
            raise Refusal(ErrorCode.INVALID_FIELD, "")
        else:
            target = self.rooms[0]
        if posting and target in self.watched:
            raise Refusal(ErrorCode.NOT_IN_ROOM, "")
        return target

    def _guest(self) -> str:
        self.guests += 1
        return f"User-{self.guests - 1:08x}"


def make_session(limits: Limits, identity: Identity | None) -> Session:
    guests = (f"User-{n:08x}" for n in itertools.count())
    limiter = RateLimiter(limits.rate, limits.burst, limits.abuse_limit)
    return Session(limiter, lambda: next(guests), identity, limits.max_rooms)


def without_messages(actions: list[Action]) -> list[Action]:
    """Error and close texts are for humans; the model compares codes, refs and order."""
    plain: list[Action] = []
    for action in actions:
        if isinstance(action, Reply) and isinstance(action.event, Error):
            assert action.event.message, "an error says what was wrong"
            event = action.event
            plain.append(Reply(Error(event.code, "", event.ref, event.retry_after)))
        elif isinstance(action, Close):
            assert action.reason
            plain.append(Close(action.code, ""))
        else:
            plain.append(action)
    return plain


def answers(actions: list[Action], ref: Ref) -> list[Action]:
    """The actions that answer the event's ref: its ack or error, or the action that will."""
    found: list[Action] = []
    for action in actions:
        match action:
            case Reply(Ack(ref=answered)) | Reply(Error(ref=answered)) if answered == ref:
                found.append(action)
            case Enter(ref=answered) | Publish(ref=answered) | FetchHistory(ref=answered):
                if answered == ref:
                    found.append(action)
    return found


@FUZZ
@given(limits=limits, identity=identities, steps=steps)
def test_session_follows_the_model(
    limits: Limits, identity: Identity | None, steps: list[tuple[int, Command | Refusal]]
) -> None:
    session = make_session(limits, identity)
    model = Model(limits, identity)
    now = 0.0
    for eighths, event in steps:
        now += eighths / 8
        expected = model.expect(event, now)
        actual = session.handle(event, now)
        assert without_messages(actual) == expected, (event, now)
        assert list(session.rooms) == model.rooms
        assert {room for room, watched in session.rooms.items() if watched} == model.watched
        assert session.username == model.username


@FUZZ
@given(limits=limits, identity=identities, steps=steps)
def test_session_invariants(
    limits: Limits, identity: Identity | None, steps: list[tuple[int, Command | Refusal]]
) -> None:
    """Stated on their own, without the model: what any correct session does."""
    session = make_session(limits, identity)
    now = 0.0
    named_as: str | None = session.username
    for eighths, event in steps:
        now += eighths / 8
        before = list(session.rooms)
        actions = session.handle(event, now)
        after = list(session.rooms)
        entered = {action.room for action in actions if isinstance(action, Enter)}
        exited = {action.room for action in actions if isinstance(action, Exit)}
        # Membership changes only with the action that tells the server to make it.
        assert set(after) - set(before) <= entered
        assert set(before) - set(after) == exited
        assert entered <= set(after)
        # Nothing is published, announced or fetched for a room the session may not use.
        for action in actions:
            match action:
                case Publish(room=room) | Notify(room=room):
                    assert room in after
                    assert room in before
                    assert not session.rooms[room], "a watcher neither posts nor types"
                case Enter(room=room, username=username):
                    assert username == session.username
                    if identity is not None:
                        assert identity.may_join(room)
                        assert username == identity.username
                case FetchHistory(room=room):
                    assert identity is None or identity.may_join(room)
                case Reply(Error(code=code)):
                    assert code in DOCUMENTED
        assert len(after) <= limits.max_rooms
        # The first name sticks.
        if named_as is not None:
            assert session.username == named_as
        named_as = session.username
        # Exactly one answer for an event with a ref, and no ack without one.
        if event.ref is not None:
            assert len(answers(actions, event.ref)) == 1, (event, actions)
        else:
            assert not any(isinstance(a, Reply) and isinstance(a.event, Ack) for a in actions)
        # A refused or rate-limited event changes nothing.
        refused = [a for a in actions if isinstance(a, Reply) and isinstance(a.event, Error)]
        if refused:
            assert len(refused) == 1
            assert after == before
            assert all(isinstance(a, Reply | Close) for a in actions)
        if any(isinstance(a, Close) for a in actions):
            [error] = refused
            assert isinstance(error.event, Error)
            assert error.event.code is ErrorCode.RATE_LIMITED


@FUZZ
@given(
    rate=st.sampled_from([1.0, 2.0, 4.0]),
    burst=st.integers(1, 10),
    gaps=st.lists(st.integers(0, 8), min_size=1, max_size=80),
)
def test_rate_limited_only_when_the_bucket_is_empty(
    rate: float, burst: int, gaps: list[int]
) -> None:
    """Counted directly: by time t a connection may have had at most burst + rate*t events
    accepted, and is refused only when it has used all of them."""
    session = make_session(Limits(rate, burst, 1000, 5), None)
    now = 0.0
    accepted_times: list[float] = []
    for gap in gaps:
        now += gap / 8
        actions = session.handle(Ping(ref="p"), now)
        first = actions[0]
        limited = (
            isinstance(first, Reply)
            and isinstance(first.event, Error)
            and first.event.code is ErrorCode.RATE_LIMITED
        )
        # Tokens left, recomputed from the accepted history alone.
        tokens = float(burst)
        last: float | None = None
        for moment in accepted_times:
            if last is not None:
                tokens = min(burst, tokens + (moment - last) * rate)
            tokens -= 1
            last = moment
        if last is not None:
            tokens = min(burst, tokens + (now - last) * rate)
        assert limited == (tokens < 1), (accepted_times, now, tokens)
        if limited:
            assert isinstance(first, Reply)
            assert isinstance(first.event, Error)
            assert first.event.retry_after == math.ceil((1 - tokens) / rate * 1000) / 1000
            assert first.event.retry_after > 0
        if not limited:
            assert actions == [Reply(Pong()), Reply(Ack("p"))]
            accepted_times.append(now)
        assert len(accepted_times) <= burst + rate * now
