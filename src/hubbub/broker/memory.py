"""The in-process broker: the nodes of one process, joined by a `Bus`.

The default for a single node, where the bus has no other node and `publish`
costs one dictionary lookup. Several `Node`s sharing a bus form a cluster in
one event loop, which is how the fan-out path is tested without a network.
"""

import asyncio
from collections.abc import Callable

from hubbub.broker.base import Subscriber
from hubbub.protocol.envelope import Envelope


class Bus:
    """Which node of this process receives which room's events."""

    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, Callable[[Envelope], None]]] = {}


class InProcessBroker:
    def __init__(self, bus: Bus | None = None) -> None:
        self._bus = bus if bus is not None else Bus()
        self._node = ""
        self._subscriber: Subscriber | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribed: set[str] = set()

    async def start(self, node_id: str, subscriber: Subscriber) -> None:
        self._node, self._subscriber = node_id, subscriber
        self._loop = asyncio.get_running_loop()

    def subscribe(self, room: str) -> None:
        assert self._subscriber is not None, "subscribe before start"
        self._subscribed.add(room)
        self._bus.rooms.setdefault(room, {})[self._node] = self._received

    async def ready(self) -> None:
        """Subscriptions are in force at once."""

    def unsubscribe(self, room: str) -> None:
        self._subscribed.discard(room)
        nodes = self._bus.rooms.get(room)
        if nodes is not None:
            nodes.pop(self._node, None)
            if not nodes:
                del self._bus.rooms[room]

    def publish(self, envelope: Envelope) -> None:
        nodes = self._bus.rooms.get(envelope.room)
        if not nodes or self._loop is None:
            return
        for node, deliver in nodes.items():
            if node != self._node:
                self._loop.call_soon(deliver, envelope)

    def _received(self, envelope: Envelope) -> None:
        """Deliver unless the room was left since the event was sent."""
        if self._subscriber is not None and envelope.room in self._subscribed:
            self._subscriber.deliver(envelope)

    def healthy(self) -> bool:
        return True

    async def close(self) -> None:
        for room in list(self._subscribed):
            self.unsubscribe(room)
        self._subscriber = None
