"""The Redis broker: room events over Redis pub/sub, one channel per room.

A node keeps one pub/sub connection, subscribed to a room's channel only while
the node has members there, and publishes over a second connection, in order,
one pipeline per loop turn. Each event is encoded once per node
(`protocol.envelope`), whatever the number of members.

Pub/sub delivers at most once: what is published while a node's subscription
is down is lost to that node. The broker finds out within `DEAD_AFTER` seconds
(it pings its subscription every `PING_INTERVAL` and expects the answers),
reconnects with backoff, subscribes again, and once Redis has confirmed the
subscriptions it calls `Subscriber.resumed`, so the node can catch its rooms
up from the store. Redis itself keeps nothing: it needs no persistence.

redis-py's own retries are turned off for the subscription: a connection it
re-established by itself would resubscribe silently, and the node would never
learn that events had been lost in between. Publishing keeps a retry, so that
a pooled connection left stale by a Redis restart does not cost the first
event after it (an event published twice is harmless: nodes drop message ids
they have delivered).
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hubbub.broker.base import Subscriber
from hubbub.protocol.envelope import BadEnvelope, Envelope, decode, encode

log = logging.getLogger("hubbub.broker")

PING_INTERVAL = 1.0
DEAD_AFTER = 3.0
"""Seconds without an answer on the subscription before it is taken for dead."""
RECONNECT_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)
"""Waits between attempts to reconnect; the last one repeats."""
PIPELINE_LIMIT = 1000
OUTBOX_LIMIT = 100_000
"""Events waiting to be published (also while Redis is away); beyond it the newest are
dropped, and the other nodes fill the gap from the store when they see it."""
CLOSE_TIMEOUT = 2.0
_READY = b"hubbub-ready"
_SYNC = "hubbub-sync-"


def where(url: str) -> str:
    """Host and port of a Redis URL, for messages: never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


class BrokerUnavailable(Exception):
    """Redis could not be reached at start."""


class _Deaf(Exception):
    """The subscription stopped answering pings."""


class RedisBroker:
    def __init__(self, url: str, prefix: str = "hubbub:") -> None:
        self._url = url
        self._prefix = prefix
        self._node = ""
        self._subscriber: Subscriber | None = None
        self._rooms: set[str] = set()
        self._redis: Redis | None = None
        """Publishes (and answers `ping`s at start)."""
        self._listener: Redis | None = None
        """Makes the subscription's connections."""
        self._pubsub: PubSub | None = None
        self._listening = False
        """The subscription is confirmed and answers pings."""
        self._publishing = True
        """The last pipeline of publishes went through."""
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._syncs: dict[int, asyncio.Future[None]] = {}
        """`ready` calls waiting for the answer to their ping, by its number."""
        self._sync_number = 0
        self.dropped = 0
        """Events dropped because too many waited to be published."""

    def _channel(self, room: str) -> str:
        return f"{self._prefix}room:{room}"

    async def start(self, node_id: str, subscriber: Subscriber) -> None:
        self._node, self._subscriber = node_id, subscriber
        self._redis = self._client(retries=2)
        self._listener = self._client(retries=0)
        try:
            await self._redis.ping()
        except (RedisError, OSError) as error:
            await self.close()
            raise BrokerUnavailable(f"cannot reach Redis at {where(self._url)}: {error}") from error
        first = asyncio.get_running_loop().create_future()
        self._spawn(self._listen_forever(first))
        self._spawn(self._publish_forever())
        await first

    def _client(self, retries: int) -> Redis:
        return Redis.from_url(
            self._url,
            retry=Retry(NoBackoff(), retries),
            socket_connect_timeout=DEAD_AFTER,
            socket_timeout=DEAD_AFTER,
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- subscribing -----------------------------------------------------------------

    def subscribe(self, room: str) -> None:
        if room in self._rooms:
            return
        self._rooms.add(room)
        if self._pubsub is not None:
            self._spawn(self._quietly(self._pubsub.subscribe(self._channel(room))))

    async def ready(self) -> None:
        """Redis answers commands on a connection in order: the answer to a ping sent
        after the SUBSCRIBEs says they are in force."""
        self._sync_number += 1
        number = self._sync_number
        waiter = self._syncs[number] = asyncio.get_running_loop().create_future()
        if self._pubsub is not None and self._listening:
            self._spawn(self._quietly(self._pubsub.ping(f"{_SYNC}{number}")))
        await waiter

    def _synced(self, up_to: int | None) -> None:
        """Release the `ready` calls up to that number (all of them when None)."""
        for number in [n for n in self._syncs if up_to is None or n <= up_to]:
            waiter = self._syncs.pop(number)
            if not waiter.done():
                waiter.set_result(None)

    def unsubscribe(self, room: str) -> None:
        if room not in self._rooms:
            return
        self._rooms.discard(room)
        if self._pubsub is not None:
            self._spawn(self._quietly(self._pubsub.unsubscribe(self._channel(room))))

    @staticmethod
    async def _quietly(command: Awaitable[object]) -> None:
        """A command on the subscription; its failure is the listener's to notice."""
        with contextlib.suppress(RedisError, OSError):
            await command

    async def _listen_forever(self, first: asyncio.Future[None]) -> None:
        attempt = 0
        while True:
            assert self._listener is not None
            pubsub = self._listener.pubsub()
            try:
                await self._listen(pubsub, first)
            except (RedisError, OSError, _Deaf) as error:
                if self._listening:
                    log.warning("Redis subscription lost (%s); reconnecting", error or "no answer")
                self._listening = False
            finally:
                self._pubsub = None
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt = 0 if self._listening else attempt + 1

    async def _listen(self, pubsub: PubSub, first: asyncio.Future[None]) -> None:
        """Subscribe to every room, then read until the connection fails or goes deaf."""
        loop = asyncio.get_running_loop()
        self._pubsub = pubsub
        channels = [self._channel(room) for room in self._rooms]
        if channels:
            await pubsub.subscribe(*channels)
        await pubsub.ping(_READY)
        heard = pinged = loop.time()
        while True:
            message = await pubsub.get_message(timeout=PING_INTERVAL)
            now = loop.time()
            if message is not None:
                heard = now
                kind = message["type"]
                if kind == "message":
                    self._received(message["data"])
                elif kind == "pong":
                    self._ponged(message["data"], first)
            if now - pinged >= PING_INTERVAL:
                await pubsub.ping()
                pinged = now
            if now - heard > DEAD_AFTER:
                raise _Deaf()

    def _ponged(self, data: bytes, first: asyncio.Future[None]) -> None:
        if data == _READY:
            self._ready(first)
        elif data.startswith(_SYNC.encode()):
            self._synced(int(data[len(_SYNC) :]))

    def _ready(self, first: asyncio.Future[None]) -> None:
        """Redis answered the ping sent after the subscriptions: they are in force."""
        self._listening = True
        self._synced(None)
        if not first.done():
            first.set_result(None)
            return
        log.info("Redis subscription back")
        assert self._subscriber is not None
        self._subscriber.resumed()

    def _received(self, data: bytes) -> None:
        try:
            envelope = decode(data)
        except BadEnvelope as error:
            log.error("dropped an event from the broker that this node cannot read: %s", error)
            return
        if envelope.origin == self._node or envelope.room not in self._rooms:
            return
        assert self._subscriber is not None
        self._subscriber.deliver(envelope)

    # --- publishing ------------------------------------------------------------------

    def publish(self, envelope: Envelope) -> None:
        if len(self._outbox) >= OUTBOX_LIMIT:
            self.dropped += 1
            return
        self._outbox.append((self._channel(envelope.room), encode(envelope)))
        self._wake.set()

    async def _publish_forever(self) -> None:
        """Publish what is waiting, in order, a pipeline at a time. A pipeline that fails
        is dropped (at most once: the receivers fill gaps in messages from the store)."""
        outbox = self._outbox
        while True:
            await self._wake.wait()
            self._wake.clear()
            while outbox:
                batch = [outbox.popleft() for _ in range(min(len(outbox), PIPELINE_LIMIT))]
                try:
                    assert self._redis is not None
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                except (RedisError, OSError) as error:
                    # Kept and sent again once Redis answers: a node whose link to Redis
                    # broke must not leave the others without its messages until the
                    # next one shows them a gap. (A batch Redis took before failing goes
                    # twice; nodes drop message ids they have delivered.)
                    log.warning("publishing to Redis failed (%s); will send again", error)
                    outbox.extendleft(reversed(batch))
                    self._publishing = False
                    await self._until_reachable()
                    self._publishing = True

    async def _until_reachable(self) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
            attempt += 1
            try:
                assert self._redis is not None
                await self._redis.ping()
            except (RedisError, OSError):
                continue
            return

    def healthy(self) -> bool:
        return self._listening and self._publishing

    async def close(self) -> None:
        """Stop, within `CLOSE_TIMEOUT` even when Redis does not answer."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        for client in (self._redis, self._listener):
            if client is not None:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(CLOSE_TIMEOUT):
                        await client.aclose()
