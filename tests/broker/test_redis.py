"""The Redis broker through a Redis outage: it says so, recovers by itself, and tells
the node to catch up. Each test runs a `redis-server` of its own that it kills."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hubbub.broker.redis import DEAD_AFTER, BrokerUnavailable, RedisBroker
from hubbub.protocol.envelope import Envelope
from hubbub.protocol.events import ChatMessage
from tests.services import free_port, private_redis

pytestmark = pytest.mark.redis


class Node:
    def __init__(self) -> None:
        self.received: asyncio.Queue[Envelope] = asyncio.Queue()
        self.resumes = 0
        self.resumed_event = asyncio.Event()

    def deliver(self, envelope: Envelope) -> None:
        self.received.put_nowait(envelope)

    def resumed(self) -> None:
        self.resumes += 1
        self.resumed_event.set()


async def received_id(node: Node) -> int:
    envelope = await asyncio.wait_for(node.received.get(), 5)
    assert isinstance(envelope.event, ChatMessage)
    return envelope.event.id


def message(message_id: int) -> Envelope:
    return Envelope("r", ChatMessage(message_id, "r", "ann", "hi", 0), "a")


async def until(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until `condition` held (polled: health has no event to await)."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (health is a state, with no event to await)
            await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_an_unreachable_redis_is_refused_at_start() -> None:
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerUnavailable, match="cannot reach Redis"):
        await broker.start("a", Node())


async def test_a_redis_outage_turns_health_off_then_resumes_and_carries_again(
    tmp_path: Path,
) -> None:
    with private_redis(tmp_path) as redis:
        a, b, b_node = RedisBroker(redis.url), RedisBroker(redis.url), Node()
        await a.start("a", Node())
        await b.start("b", b_node)
        try:
            b.subscribe("r")
            await b.ready()
            a.publish(message(1))
            assert await received_id(b_node) == 1
            assert a.healthy()
            assert b.healthy()

            redis.stop()
            await until(lambda: not b.healthy(), DEAD_AFTER + 2)
            a.publish(message(2))  # carried late, or lost if b was not back yet; never raises
            await until(lambda: not a.healthy(), DEAD_AFTER + 2)
            assert b_node.resumes == 0

            redis.start()
            async with asyncio.timeout(5):
                await b_node.resumed_event.wait()
            await until(lambda: a.healthy() and b.healthy(), 5)
            a.publish(message(3))
            after = [await received_id(b_node)]
            if after == [2]:  # published during the outage and carried late: allowed
                after.append(await received_id(b_node))
            assert after[-1] == 3
            assert b_node.resumes == 1
        finally:
            await a.close()
            await b.close()
