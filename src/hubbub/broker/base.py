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
- A node not subscribed to a room gets none of its events; once `ready`
  returns, it gets every event published afterwards in the rooms it had
  subscribed to (while the broker is healthy).
- `publish`, `subscribe` and `unsubscribe` never block and never raise: an
  event that cannot be carried now may be carried late (after an outage, or
  twice), or lost, and `healthy` turns false until the broker can carry events
  again. Nodes drop message ids they have delivered, and fill gaps from the store.
- The subscriber is called on the node's event loop, never during `publish`.
- After an outage (events may have been lost), once the broker carries events
  again it calls `Subscriber.resumed`, so the node can catch up from the store.
"""

from typing import Protocol

from hubbub.protocol.envelope import Envelope


class Subscriber(Protocol):
    """The node, as the broker sees it."""

    def deliver(self, envelope: Envelope) -> None:
        """An event another node published in a room this node subscribed to."""

    def resumed(self) -> None:
        """The broker carries events again after an outage; some may have been lost."""


class Broker(Protocol):
    async def start(self, node_id: str, subscriber: Subscriber) -> None:
        """Connect as `node_id`; events for this node's subscriptions go to `subscriber`."""
        ...

    def subscribe(self, room: str) -> None:
        """Receive the room's events (the node has a member there now)."""
        ...

    async def ready(self) -> None:
        """Wait until every `subscribe` made so far is in force: events published by
        other nodes from now on reach this node."""
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
