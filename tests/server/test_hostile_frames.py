"""Thousands of hostile frames at one connection while another one keeps chatting, unharmed.

The hostile side is a raw WebSocket client (the handshake written by hand,
frames built with `struct` and masked as a client must) so that it can send
what no library would: invalid UTF-8, broken fragmentation, reserved bits and
opcodes, oversized lengths, control frames out of the rules, bad close frames,
corrupt compression. What each frame must cause is known when it is built:

- a well-formed frame carrying a bad event gets exactly one `error` with the
  documented code (with the event's `ref` when the ref was valid), and the
  connection stays open;
- a frame RFC 6455 says to fail on closes *that* connection with its close
  code (1002 protocol error, 1007 invalid UTF-8, 1009 too big), and the
  hostile client reconnects and goes on.

Every few frames the hostile client sends a `ping` with a fresh ref and, once
it is answered, checks that everything sent since got exactly its answer.
"""

import asyncio
import contextlib
import itertools
import random
import string
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack
import orjson
import pytest

from hubbub.client import ChatClient
from hubbub.protocol.codecs import JSON, Codec
from hubbub.protocol.errors import ErrorCode
from hubbub.server.runner import RunningServer
from tests.conftest import StartServer
from tests.rawsocket import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    RSV1,
    RSV2,
    RSV3,
    TEXT,
    WAIT,
    RawWebSocket,
    encode_frame,
)

LIMIT = 64 * 1024
"""The server's default max_message_size."""
PROTOCOL_ERROR, INVALID_TEXT, TOO_BIG, POLICY = 1002, 1007, 1009, 1008
SERVER_EVENTS = frozenset(
    {"welcome", "message", "user_joined", "user_left", "typing", "online_users"}
    | {"ack", "history", "error", "pong"}
)
DOCUMENTED_CODES = frozenset(code.value for code in ErrorCode)
HONEST_ROOM, HONEST_NAME = "lobby", "honest"


# --- frames ------------------------------------------------------------------------------


def declared_header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """The header of a masked frame claiming `length` bytes (none of which are sent)."""
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | 127]) + struct.pack("!Q", length) + b"mask"


def padded_ping(codec: Codec, ref: object, size: int) -> bytes:
    """A `ping` event padded to exactly `size` encoded bytes."""
    pad = size - len(codec.encode({"type": "ping", "ref": ref, "pad": ""}))
    while True:
        payload = codec.encode({"type": "ping", "ref": ref, "pad": "p" * pad})
        if len(payload) == size:
            return payload
        pad -= len(payload) - size


def deflate(payload: bytes) -> bytes:
    """permessage-deflate of one message, without context takeover."""
    compressor = zlib.compressobj(wbits=-15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return data.removesuffix(b"\x00\x00\xff\xff")


# --- the raw client ----------------------------------------------------------------------


# --- what to throw -----------------------------------------------------------------------


@dataclass
class Expected:
    """What the frames sent since the last check must have caused."""

    refs: dict[object, bool] = field(default_factory=dict)
    """Refs to be answered exactly once, with whether the event was a `ping`."""
    refless_codes: Counter[str] = field(default_factory=Counter)
    refless_pings: int = 0
    """`ping` events without a ref: each gets a `pong` (or is rate limited)."""
    pong_payloads: list[bytes] = field(default_factory=list)
    """Payloads of control pings, to come back in pongs in order."""


@dataclass
class Move:
    """Bytes to write, and either what they add to the expectations or the close they cause."""

    data: bytes
    frames: int
    label: str
    closes_with: frozenset[int] | None = None
    refs: dict[object, bool] = field(default_factory=dict)
    refless_code: str | None = None
    refless_ping: bool = False
    pong_payloads: list[bytes] = field(default_factory=list)


ROOMS = [HONEST_ROOM, HONEST_ROOM, "x", "y", "r.2", "a" * 64]
BAD_ROOMS: list[object] = ["", "a" * 65, "has space", "\u00e9t\u00e9", "a/b", 7, None, ["x"]]
UNICODE = "h\u00e9llo \u2603 \U0001f600 \u202e\u0000\u200b \u4e2d\u6587 \ufeff"
BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x80"]
CLOSE_CODES_REFUSED = [0, 999, 1004, 1005, 1015, 1016, 2000, 2999]
"""(1006 is also reserved, RFC 6455 7.4.1, but aiohttp accepts it.)"""
CLOSE_CODES_ACCEPTED = [1000, 1001, 3000, 4999]


class Hostile:
    """Builds random moves for one connection; refs are unique for the whole run."""

    def __init__(
        self, rng: random.Random, codec: Codec, deflate: bool, refs: Iterator[int]
    ) -> None:
        self.rng = rng
        self.codec = codec
        self.deflate = deflate
        self._refs = refs

    def fresh_ref(self) -> object:
        """A string or an int, never used before in the run."""
        number = next(self._refs)
        if self.rng.random() < 0.3:
            return number
        return f"h{number}-" + "".join(self.rng.choices(string.ascii_letters, k=5))

    def encode_any(self, value: object) -> bytes:
        return msgpack.packb(value) if self.codec.binary else orjson.dumps(value)

    # events

    def text(self, longest: int = 40) -> str:
        pool = string.printable + UNICODE
        return "".join(self.rng.choices(pool, k=self.rng.randrange(longest)))

    def value(self) -> object:
        return self.rng.choice(
            [
                None,
                True,
                -1,
                0,
                2**63 - 1,
                2**63,
                2**64 - 1,
                -(2**63),
                1.5,
                "",
                self.text(),
                [1, [2, [3]]],
                {"nested": {"deeper": [None]}},
            ]
        )

    def event(self) -> dict[str, Any]:
        """A near-valid event: mostly right, with a wrong field now and then."""
        rng = self.rng
        kind = rng.choice(["join", "join", "message", "message", "message", "leave", "typing"])
        kind = rng.choice([kind, kind, kind, "history", "ping", "ping", "nope", ""])
        event: dict[str, Any] = {"type": kind}
        if rng.random() < 0.9:
            event["room"] = rng.choice(ROOMS)
        if kind == "join":
            event["username"] = rng.choice(["mallory", " eve ", "", "x" * 40, "bell\x07", 5])
            if rng.random() < 0.3:
                event["since"] = rng.choice([0, 1, 10**6, 2**63 - 1, 2**63, -1, "1"])
        if kind == "message":
            event["content"] = rng.choice(
                [self.text(), UNICODE, " \n ", "x" * 4000, " y" * 2001, self.text(200)]
            )
        if kind == "history":
            event["before"] = rng.choice([None, 0, 5, 2**63 - 1, 2**64 - 1, -3, 1.0])
            event["limit"] = rng.choice([None, 1, 50, 100, 0, 101, True])
        for _ in range(rng.randrange(3)):
            name = rng.choice(["room", "content", "username", "since", "limit", "extra", "type"])
            event[name] = rng.choice([self.value(), rng.choice(BAD_ROOMS)])
        return event

    def encode(self, event: dict[str, Any]) -> bytes:
        return self.codec.encode(event)

    def message(self) -> tuple[bytes, bool, Move]:
        """(payload, as a text frame, its effect): an event or undecodable bytes."""
        rng = self.rng
        text_frame = not self.codec.binary
        roll = rng.random()
        effect = Move(b"", 0, "event")
        if roll < 0.62:
            event = self.event()
            ref = self.fresh_ref()
            event["ref"] = ref
            effect.refs[ref] = event["type"] == "ping"
            effect.label = f"event {event['type']!r}"
        elif roll < 0.67:
            event = {"type": "ping"}
            effect.refless_ping = True
            effect.label = "ping without ref"
        elif roll < 0.74:
            event = self.event()
            event["ref"] = rng.choice(["r" * 65, "\u00e9" * 65, 1.5, True, [1], {"r": 1}])
            effect.refless_code = ErrorCode.INVALID_FIELD
            effect.label = "invalid ref"
        elif roll < 0.80:
            payload = self.encode_any(rng.choice([[1, 2], "event", 42, None, 1.5, []]))
            effect.label = "not an object"
            effect.refless_code = self.codec.not_an_object
            return payload, text_frame, effect
        elif roll < 0.92:
            effect.refless_code = (
                ErrorCode.BAD_ENCODING if self.codec.binary else ErrorCode.BAD_JSON
            )
            effect.label = "undecodable"
            whole = self.encode(self.event())
            garbage = rng.choice(
                [
                    whole[:-1],
                    whole[: rng.randrange(1, len(whole))],
                    (b"\xc1" if self.codec.binary else b"{") + whole,
                    whole + (b"\x01" if self.codec.binary else b" x"),
                    b"" if not self.codec.binary else b"\xdd\xff\xff\xff\xff",
                    b"[" if not self.codec.binary else b"\x81\x91\x01\x01",  # key: a list
                    b"{}}" if not self.codec.binary else b"\x81\x80\xc0",  # key: a map
                ]
            )
            if not self.codec.binary:
                garbage = garbage.decode("utf-8", errors="ignore").encode()
            return garbage, text_frame, effect
        else:
            effect.refless_code = ErrorCode.BAD_ENCODING
            effect.label = "wrong frame kind"
            # (JSON in the text frames sent to a MessagePack connection: valid UTF-8.)
            return orjson.dumps(self.event()), not text_frame, effect
        return self.encode(event), text_frame, effect

    def frames_of(self, payload: bytes, text_frame: bool, move: Move) -> None:
        """Frame one message: whole or fragmented, compressed or not, pings in between."""
        rng = self.rng
        rsv = 0
        if self.deflate and rng.random() < 0.5:
            payload, rsv = deflate(payload), RSV1
            move.label += " compressed"
        opcode = TEXT if text_frame else BINARY
        if rng.random() < 0.7:
            move.data += encode_frame(opcode, payload, rsv=rsv)
            move.frames += 1
            return
        cuts = sorted(rng.randrange(len(payload) + 1) for _ in range(rng.randrange(1, 5)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            move.data += encode_frame(
                opcode if index == 0 else CONTINUATION,
                piece,
                fin=last,
                rsv=rsv if index == 0 else 0,
            )
            move.frames += 1
            if not last and rng.random() < 0.3:
                ping = rng.randbytes(rng.randrange(126))
                move.data += encode_frame(PING, ping)
                move.pong_payloads.append(ping)
                move.frames += 1
        move.label += f" in {len(pieces)} fragments"

    def harmless(self) -> Move:
        rng = self.rng
        roll = rng.random()
        if roll < 0.08:
            payload = rng.randbytes(rng.randrange(126))
            return Move(encode_frame(PING, payload), 1, "ping frame", pong_payloads=[payload])
        if roll < 0.12:
            return Move(encode_frame(PONG, rng.randbytes(rng.randrange(126))), 1, "pong frame")
        if roll < 0.125:
            ref = self.fresh_ref()
            payload = padded_ping(self.codec, ref, LIMIT)
            opcode = BINARY if self.codec.binary else TEXT
            return Move(
                encode_frame(opcode, payload), 1, "exactly the size limit", refs={ref: True}
            )
        payload, text_frame, move = self.message()
        self.frames_of(payload, text_frame, move)
        return move

    def fatal(self) -> Move:
        """A frame RFC 6455 says to fail the connection on, and the close it must get."""
        rng = self.rng
        ping = encode_frame(PING, b"")
        start = encode_frame(TEXT, b'{"type":', fin=False)
        echoed = rng.choice(CLOSE_CODES_ACCEPTED)
        cases: list[tuple[str, bytes, int]] = [
            (
                "invalid UTF-8",
                encode_frame(TEXT, b'{"type":"' + rng.choice(BAD_UTF8) + b'"}'),
                1007,
            ),
            (
                "invalid UTF-8 across fragments",
                start
                + encode_frame(CONTINUATION, b'"ping", "x": "\xe2\x82', fin=False)
                + encode_frame(CONTINUATION, b'"}'),
                INVALID_TEXT,
            ),
            ("reserved bit", encode_frame(TEXT, b"{}", rsv=rng.choice([RSV2, RSV3])), 1002),
            ("reserved opcode", encode_frame(rng.choice([3, 4, 5, 6, 7, 11, 12, 15]), b"x"), 1002),
            ("continuation without a start", encode_frame(CONTINUATION, b"x"), 1002),
            ("fragmented control frame", encode_frame(PING, b"x", fin=False), 1002),
            (
                "control frame over 125 bytes",
                encode_frame(rng.choice([PING, PONG]), b"p" * 126),
                1002,
            ),
            ("data frame inside a fragmented one", start + encode_frame(TEXT, b"{}"), 1002),
            ("close with a reserved code", self.close(rng.choice(CLOSE_CODES_REFUSED)), 1002),
            ("close with a one-byte payload", encode_frame(CLOSE, b"\x03"), 1002),
            ("close with invalid UTF-8", self.close(1000, b"\xff"), INVALID_TEXT),
            # RFC 6455 5.5.1: the answer to a close echoes its code.
            ("close", self.close(echoed, b"bye"), echoed),
            ("declared length of 2^63-1", declared_header(TEXT, 2**63 - 1), TOO_BIG),
            ("one byte over the limit", declared_header(BINARY, LIMIT + 1), TOO_BIG),
            (
                "fragments over the limit together",
                encode_frame(TEXT, b"p" * (LIMIT // 2), fin=False)
                + ping
                + declared_header(CONTINUATION, LIMIT // 2 + 1),
                TOO_BIG,
            ),
        ]
        if self.deflate:
            bomb = deflate(b'{"type":"ping","pad":"' + b"a" * (4 * LIMIT) + b'"}')
            cases.append(("deflate bomb", encode_frame(TEXT, bomb, rsv=RSV1), TOO_BIG))
            continuation_rsv1 = start + encode_frame(CONTINUATION, b'"ping"}', rsv=RSV1)
            cases.append(("RSV1 on a continuation", continuation_rsv1, PROTOCOL_ERROR))
        else:
            cases.append(("RSV1 without deflate", encode_frame(TEXT, b"{}", rsv=RSV1), 1002))
        label, data, code = rng.choice(cases)
        return Move(data, 1, label, closes_with=frozenset({code}))

    @staticmethod
    def close(code: int, reason: bytes = b"") -> bytes:
        return encode_frame(CLOSE, struct.pack("!H", code) + reason)


# --- the run -----------------------------------------------------------------------------


@dataclass
class HostileReport:
    frames: int = 0
    moves: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    close_codes: Counter[int] = field(default_factory=Counter)
    connections: int = 0
    checks: int = 0


class HostileRun:
    def __init__(self, server: RunningServer, seed: int, rate_limited: bool) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.rate_limited = rate_limited
        self.report = HostileReport()
        self.ws: RawWebSocket | None = None
        self.refs = itertools.count(1)
        self.hostile = Hostile(self.rng, JSON, False, self.refs)
        self.expected = Expected()
        self.checked_up_to = 0

    async def run(self, frames: int, fatal_share: float, until: asyncio.Event) -> HostileReport:
        """Throw at least `frames` frames, and go on until `until` is set."""
        try:
            while self.report.frames < frames or not until.is_set():
                ws = self.ws or await self.reconnect()
                if self.rng.random() < fatal_share:
                    await self.check(ws)
                    if self.ws is not None:
                        await self.fail_with(ws, self.hostile.fatal())
                    continue
                move = self.hostile.harmless()
                self.expect(move)
                ws.write(move.data)
                self.report.frames += move.frames
                self.report.moves[move.label.split(" in ")[0]] += 1
                if self.rng.random() < 0.05:
                    await self.check(ws)
            if self.ws is not None:
                await self.check(self.ws)
        finally:
            if self.ws is not None:
                await self.ws.close()
        return self.report

    async def reconnect(self) -> RawWebSocket:
        binary, compressed = self.rng.random() < 0.4, self.rng.random() < 0.3
        self.ws = await RawWebSocket.connect(self.server.port, msgpack=binary, deflate=compressed)
        self.hostile = Hostile(self.rng, self.ws.codec, compressed, self.refs)
        self.report.connections += 1
        self.expected = Expected()
        self.checked_up_to = 0
        return self.ws

    def expect(self, move: Move) -> None:
        self.expected.refs.update(move.refs)
        if move.refless_code is not None:
            self.expected.refless_codes[move.refless_code] += 1
        self.expected.refless_pings += move.refless_ping
        self.expected.pong_payloads += move.pong_payloads

    async def fail_with(self, ws: RawWebSocket, move: Move) -> None:
        assert move.closes_with is not None
        ws.write(move.data)
        await ws.drain()
        code = await ws.wait_closed()
        # The rate limiter may have closed it first (after answering the last check).
        allowed = move.closes_with | ({POLICY} if self.rate_limited else set())
        assert code in allowed, f"{move.label}: closed with {code}"
        self.report.frames += move.frames
        self.report.moves[f"fatal: {move.label}"] += 1
        self.report.close_codes[code] += 1
        await ws.close()
        self.ws = None

    async def check(self, ws: RawWebSocket) -> None:
        """Send a sync ping; once answered, everything sent before it has had its answer."""
        ref = f"sync-{self.report.checks}"
        self.report.checks += 1
        sync = ws.codec.encode({"type": "ping", "ref": ref})
        ws.write(encode_frame(BINARY if ws.codec.binary else TEXT, sync))
        self.expected.refs[ref] = True
        await ws.drain()
        try:
            await ws.wait_for(lambda event: event.get("ref") == ref, self.checked_up_to)
        except ConnectionError:
            # Only the rate limiter's 1008 may close a connection that sent nothing fatal.
            assert self.rate_limited, f"closed with {ws.close_code} without a fatal frame"
            assert ws.close_code == POLICY
            self.report.close_codes[POLICY] += 1
            await ws.close()
            self.ws = None
            return
        self.settle(ws)

    def settle(self, ws: RawWebSocket) -> None:
        events = ws.events[self.checked_up_to :]
        self.checked_up_to = len(ws.events)
        expected, self.expected = self.expected, Expected()
        answered: Counter[object] = Counter()
        acked_pings = pongs = 0
        refless: Counter[str] = Counter()
        for event in events:
            kind = event.get("type")
            assert kind in SERVER_EVENTS, event
            if kind == "error":
                assert event["code"] in DOCUMENTED_CODES, event
                assert isinstance(event["message"], str)
                assert event["message"]
                self.report.error_codes[event["code"]] += 1
            if kind == "pong":
                pongs += 1
            if kind in ("ack", "error") and "ref" in event:
                ref = event["ref"]
                assert ref in expected.refs, f"answer to a ref never sent: {event}"
                answered[ref] += 1
                acked_pings += kind == "ack" and expected.refs[ref]
            elif kind == "error":
                refless[event["code"]] += 1
        assert set(answered) == set(expected.refs), "every ref is answered"
        assert all(count == 1 for count in answered.values()), "exactly once"
        assert ws.pongs == expected.pong_payloads, "every ping frame is ponged, in order"
        ws.pongs.clear()
        refless_pongs = pongs - acked_pings
        if not self.rate_limited:
            assert refless == expected.refless_codes
            assert refless_pongs == expected.refless_pings
        else:
            limited = refless.pop(ErrorCode.RATE_LIMITED, 0)
            assert not refless - expected.refless_codes
            assert refless.total() + limited + refless_pongs == (
                expected.refless_codes.total() + expected.refless_pings
            )


@dataclass
class Honest:
    """A client that chats correctly the whole time and must notice nothing."""

    client: ChatClient
    pace: float
    minimum: int
    sent: list[tuple[int, str]] = field(default_factory=list)
    enough: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once `minimum` messages were sent: the hostile side may stop."""

    async def chat(self, done: asyncio.Event) -> None:
        number = 0
        while not done.is_set():
            if number >= self.minimum:
                self.enough.set()
            number += 1
            content = f"honest message {number} \u2713"
            self.sent.append((await self.client.say(content, room=HONEST_ROOM), content))
            if number % 10 == 0:
                await self.client.request({"type": "typing", "room": HONEST_ROOM})
                await self.client.request({"type": "history", "room": HONEST_ROOM, "limit": 5})
            if self.pace:
                await asyncio.sleep(self.pace)  # stays under the default rate of 20/s


async def room_history(server: RunningServer, room: str) -> list[dict[str, Any]]:
    """Every stored message of `room`, oldest first, paging back with `before`."""
    messages: list[dict[str, Any]] = []
    before = ""
    async with aiohttp.ClientSession() as http:
        while True:
            url = f"{server.url}/rooms/{room}/messages?limit=100{before}"
            async with http.get(url) as response:
                assert response.status == 200
                page = await response.json()
            messages = page["messages"] + messages
            if not page["has_more"]:
                return messages
            before = f"&before={page['messages'][0]['id']}"


async def healthz(server: RunningServer) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/healthz") as response:
        return response.status


@dataclass
class Plan:
    frames: int
    seed: int
    rate_limited: bool
    fatal_share: float
    """Of the moves, how many are fatal frames (each costs a reconnection)."""
    honest_pace: float
    honest_minimum: int


async def hostile_with_honest(server: RunningServer, plan: Plan) -> tuple[HostileReport, Honest]:
    client = await ChatClient.connect(server.ws_url)
    try:
        await client.join(HONEST_ROOM, HONEST_NAME)
        honest = Honest(client, plan.honest_pace, plan.honest_minimum)
        done = asyncio.Event()
        chatting = asyncio.create_task(honest.chat(done))
        try:
            run = HostileRun(server, plan.seed, plan.rate_limited)
            report = await run.run(plan.frames, plan.fatal_share, honest.enough)
        finally:
            done.set()
            await chatting
        await assert_unharmed(server, honest)
    finally:
        await client.close()
    return report, honest


async def assert_unharmed(server: RunningServer, honest: Honest) -> None:
    client = honest.client
    history = await room_history(server, HONEST_ROOM)
    last = history[-1]["id"]
    if not any(e.get("type") == "message" and e["id"] == last for e in client.received):
        await client.expect("message", timeout=WAIT, id=last)
    seen = [e for e in client.received if e.get("type") == "message"]
    assert [e["id"] for e in seen] == [m["id"] for m in history], "no gap, no duplicate"
    assert [e["id"] for e in seen] == list(range(1, len(seen) + 1))
    assert [e["content"] for e in seen] == [m["content"] for m in history]
    by_id = {e["id"]: e for e in seen}
    assert [message_id for message_id, _ in honest.sent] == sorted(i for i, _ in honest.sent)
    for message_id, content in honest.sent:
        assert by_id[message_id]["content"] == content
        assert by_id[message_id]["from"] == HONEST_NAME
    assert not [e for e in client.received if e.get("type") == "error"]
    assert client.close_code is None
    assert not client.ws.closed
    assert await healthz(server) == 200


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_thousands_of_hostile_frames_leave_an_honest_client_unharmed(
    start_server: StartServer,
) -> None:
    server = await start_server(rate=100_000, rate_burst=100_000)
    plan = Plan(
        3000, seed=6, rate_limited=False, fatal_share=0.03, honest_pace=0, honest_minimum=50
    )
    report, honest = await hostile_with_honest(server, plan)
    assert report.frames >= 3000
    assert report.connections > 20, "fatal frames closed connections and the client came back"
    assert set(report.close_codes) <= {PROTOCOL_ERROR, INVALID_TEXT, TOO_BIG, *CLOSE_CODES_ACCEPTED}
    assert {PROTOCOL_ERROR, INVALID_TEXT, TOO_BIG} <= set(report.close_codes)
    expected_codes = {"bad_json", "bad_encoding", "unknown_type", "invalid_field", "not_in_room"}
    assert expected_codes <= set(report.error_codes)
    assert "rate_limited" not in report.error_codes
    assert "internal" not in report.error_codes
    assert len(honest.sent) > 20


@pytest.mark.slow
async def test_hostile_frames_at_the_default_rate_are_rate_limited(
    start_server: StartServer,
) -> None:
    server = await start_server()
    plan = Plan(
        1500, seed=7, rate_limited=True, fatal_share=0.01, honest_pace=0.05, honest_minimum=30
    )
    report, honest = await hostile_with_honest(server, plan)
    assert report.error_codes["rate_limited"] > 100
    assert report.close_codes[POLICY] >= 1, "persistent flooding is closed with 1008"
    assert set(report.close_codes) <= {
        PROTOCOL_ERROR,
        INVALID_TEXT,
        TOO_BIG,
        POLICY,
        *CLOSE_CODES_ACCEPTED,
    }
    assert "internal" not in report.error_codes
    assert len(honest.sent) > 5


# --- one case at a time ------------------------------------------------------------------


FATAL_CASES = [
    ("invalid UTF-8", encode_frame(TEXT, b'{"type":"\xff"}'), INVALID_TEXT),
    ("reserved opcode", encode_frame(3, b"x"), PROTOCOL_ERROR),
    ("RSV2", encode_frame(TEXT, b"{}", rsv=RSV2), PROTOCOL_ERROR),
    ("RSV1 without deflate", encode_frame(TEXT, b"{}", rsv=RSV1), PROTOCOL_ERROR),
    ("continuation without start", encode_frame(CONTINUATION, b"x"), PROTOCOL_ERROR),
    ("fragmented ping", encode_frame(PING, b"x", fin=False), PROTOCOL_ERROR),
    ("ping of 126 bytes", encode_frame(PING, b"x" * 126), PROTOCOL_ERROR),
    ("close code 1005", Hostile.close(1005), PROTOCOL_ERROR),
    ("too big", declared_header(TEXT, LIMIT + 1), TOO_BIG),
]


@pytest.mark.parametrize(("label", "data", "code"), FATAL_CASES, ids=[c[0] for c in FATAL_CASES])
async def test_a_protocol_violation_closes_only_that_connection(
    start_server: StartServer, label: str, data: bytes, code: int
) -> None:
    server = await start_server()
    async with await ChatClient.connect(server.ws_url) as bystander:
        await bystander.join(HONEST_ROOM, HONEST_NAME)
        raw = await RawWebSocket.connect(server.port)
        raw.write(encode_frame(TEXT, b'{"type":"join","room":"lobby","username":"mallory"}'))
        await bystander.expect("user_joined", username="mallory")
        raw.write(data)
        assert await raw.wait_closed() == code
        await raw.close()
        await bystander.expect("user_left", username="mallory")
        assert await bystander.say("still here", room=HONEST_ROOM) == 1
        assert bystander.close_code is None


async def test_an_unmasked_frame_closes_with_1002(start_server: StartServer) -> None:
    server = await start_server()
    raw = await RawWebSocket.connect(server.port)
    try:
        raw.write(encode_frame(TEXT, b'{"type":"ping"}', masked=False))
        raw.write(encode_frame(TEXT, b'{"type":"ping","ref":"after"}'))
        with contextlib.suppress(ConnectionError):
            await raw.wait_for(lambda event: event.get("ref") == "after")
        assert raw.closed.is_set(), "the frame after the unmasked one was answered"
        assert raw.close_code == PROTOCOL_ERROR
    finally:
        await raw.close()


async def test_a_corrupt_compressed_frame_closes_with_an_error_code(
    start_server: StartServer,
) -> None:
    server = await start_server()
    raw = await RawWebSocket.connect(server.port, deflate=True)
    try:
        raw.write(encode_frame(TEXT, b"\xff\xfe\xfd not deflate at all", rsv=RSV1))
        assert await raw.wait_closed() in (PROTOCOL_ERROR, INVALID_TEXT)
    finally:
        await raw.close()
