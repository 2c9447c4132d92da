"""One contract for every `Broker`: the guarantees written on the interface."""

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hubbub.broker.base import Broker
from hubbub.broker.memory import Bus, InProcessBroker
from hubbub.broker.redis import RedisBroker
from hubbub.protocol.envelope import Envelope
from hubbub.protocol.events import ChatMessage, TypingNotice
from tests.services import shared_redis_url

WAIT = 5.0


class Inbox:
    """What one node received, awaited with a bound."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Envelope] = asyncio.Queue()

    def deliver(self, envelope: Envelope) -> None:
        self.queue.put_nowait(envelope)

    def resumed(self) -> None:
        pass

    async def next(self) -> Envelope:
        async with asyncio.timeout(WAIT):
            return await self.queue.get()

    def empty(self) -> bool:
        return self.queue.empty()


StartNode = Callable[[str], Awaitable[tuple[Broker, Inbox]]]


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
async def start_node(request: pytest.FixtureRequest) -> AsyncIterator[StartNode]:
    """Starts brokers of one kind that reach each other (one cluster). Redis brokers get
    a key prefix of the test's own: pub/sub channels are shared by every database."""
    bus = Bus()
    prefix = f"hubbub-test-{secrets.token_hex(4)}:"
    url = shared_redis_url() if request.param == "redis" else ""
    started: list[Broker] = []

    async def start(node_id: str) -> tuple[Broker, Inbox]:
        broker: Broker = InProcessBroker(bus) if not url else RedisBroker(url, prefix)
        inbox = Inbox()
        await broker.start(node_id, inbox)
        started.append(broker)
        return broker, inbox

    yield start
    for broker in started:
        await broker.close()


def message(room: str, message_id: int, content: str = "hi") -> Envelope:
    return Envelope(room, ChatMessage(message_id, room, "ann", content, 0), "a")


async def test_an_event_reaches_the_other_subscribed_nodes_not_the_publisher(
    start_node: StartNode,
) -> None:
    a, a_inbox = await start_node("a")
    b, b_inbox = await start_node("b")
    c, c_inbox = await start_node("c")
    for broker in (a, b, c):
        broker.subscribe("r")
    await b.ready()
    await c.ready()
    envelope = message("r", 1)
    a.publish(envelope)
    assert await b_inbox.next() == envelope
    assert await c_inbox.next() == envelope
    a.publish(sentinel := message("r", 2))
    assert await b_inbox.next() == sentinel
    assert a_inbox.empty()


async def test_events_arrive_in_the_order_one_node_published_them(
    start_node: StartNode,
) -> None:
    a, _ = await start_node("a")
    b, b_inbox = await start_node("b")
    b.subscribe("r")
    b.subscribe("s")
    await b.ready()
    sent = [message("r" if n % 3 else "s", n) for n in range(1, 501)]
    for envelope in sent:
        a.publish(envelope)
    assert [await b_inbox.next() for _ in sent] == sent


async def test_a_node_gets_only_the_rooms_it_subscribed_to(start_node: StartNode) -> None:
    a, _ = await start_node("a")
    b, b_inbox = await start_node("b")
    b.subscribe("mine")
    await b.ready()
    a.publish(message("other", 1))
    a.publish(last := message("mine", 1))
    assert await b_inbox.next() == last
    assert b_inbox.empty()


async def test_after_unsubscribing_nothing_more_arrives(start_node: StartNode) -> None:
    a, _ = await start_node("a")
    b, b_inbox = await start_node("b")
    b.subscribe("r")
    b.subscribe("still")
    await b.ready()
    a.publish(first := message("r", 1))
    assert await b_inbox.next() == first
    b.unsubscribe("r")
    await b.ready()
    a.publish(message("r", 2))
    a.publish(typing := Envelope("still", TypingNotice("ann", "still"), "a", exclude="c1"))
    assert await b_inbox.next() == typing
    assert b_inbox.empty()


async def test_publish_does_not_deliver_during_the_call(start_node: StartNode) -> None:
    a, _ = await start_node("a")
    b, b_inbox = await start_node("b")
    b.subscribe("r")
    await b.ready()
    a.publish(message("r", 1))
    assert b_inbox.empty()
    assert (await b_inbox.next()).event == message("r", 1).event


async def test_a_started_broker_is_healthy(start_node: StartNode) -> None:
    a, _ = await start_node("a")
    assert a.healthy()
