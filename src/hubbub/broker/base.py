"""The `Broker` interface and the guarantees every implementation gives.

A node delivers a room event to its own members itself, then hands it to the
broker for the other nodes ("handle locally, publish with a node id"): local
members never wait for a round trip, and keep chatting while the broker is
away. The broker is the fast path only. Chat messages carry contiguous
per-room ids from the store, so a node that misses some fills the gap from the
store; presence and typing are superseded by the next ones.

Guarantees (checked by tests/contract/test_broker.py for every broker):
- An event a node publishes reaches every *other* started node subscribed to
  its room, once; never the publishing node itself.
- Events published by one node arrive at each other node in the order they
  were published.
- A node not subscribed to a room gets none of its events.
- `publish`, `subscribe` and `unsubscribe` never block and never raise: an
  event that cannot be carried now is dropped (at most once), and `healthy`
  turns false until the broker can carry events again.
- `deliver` is called on the node's event loop, never during `publish`.
"""

from collections.abc import Callable
from typing import Protocol

from hubbub.protocol.envelope import Envelope

Deliver = Callable[[Envelope], None]
"""Called with each event another node published in a room this node subscribed to."""


class Broker(Protocol):
    async def start(self, node_id: str, deliver: Deliver) -> None:
        """Connect as `node_id`; events for this node's subscriptions go to `deliver`."""
        ...

    def subscribe(self, room: str) -> None:
        """Receive the room's events (the node has a member there now)."""
        ...

    def unsubscribe(self, room: str) -> None:
        """Stop receiving the room's events (the node's last member left)."""
        ...

    def publish(self, envelope: Envelope) -> None:
        """Send a room event to the other nodes; returns at once."""
        ...

    def healthy(self) -> bool:
        """True while events can be carried."""
        ...

    async def close(self) -> None: ...
