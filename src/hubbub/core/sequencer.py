"""Per room, chat messages in id order with no gap and no duplicate, however they arrive.

In a cluster a node gets a room's messages from two places: its own store
callbacks and the broker. Either may deliver them out of order (two nodes'
publishes race through Redis) or not at all (Redis was away). Ids are
contiguous per room (the store assigns them gap-free), so a gap is visible:
a message past the next expected id is held back; if the gap is still open
after `hold` seconds the node reads the missing ids from the store (`Fill`)
and hands them to `filled`. A duplicate (an id already delivered) is dropped.

Pure and clock-injected, like the heartbeat wheel: the node passes `now`.
"""

from dataclasses import dataclass, field

from hubbub.protocol.events import ChatMessage


@dataclass(frozen=True, slots=True)
class Fill:
    """Read `room`'s messages with `after < id < before` from the store (`before` None:
    everything after)."""

    room: str
    after: int
    before: int | None


@dataclass(slots=True)
class _Room:
    delivered: int | None
    """The last id delivered to the room's members (None: not known yet, see `start_at`)."""
    held: dict[int, ChatMessage] = field(default_factory=dict)
    from_first: bool = False
    """No position could be read: start from the first message that comes."""
    gap_since: float | None = None
    """When the oldest open gap was first seen."""
    filling: bool = False


class Sequencer:
    def __init__(self, hold: float) -> None:
        self._hold = hold
        self._rooms: dict[str, _Room] = {}

    def track(self, room: str, last_id: int | None = None) -> None:
        """Start following `room` from `last_id`: later ids are delivered, earlier ones
        are not this node's to send. Without it, messages are held until `start_at`."""
        if room not in self._rooms:
            self._rooms[room] = _Room(last_id)

    def start_at(self, room: str, last_id: int | None) -> list[ChatMessage]:
        """The position of a room tracked without one: the store's newest id, read after
        the broker's subscription was in force (None when the store could not say: then
        from the first message held). What can be delivered now, in order."""
        state = self._rooms.get(room)
        if state is None or state.delivered is not None:
            return []
        if last_id is None:
            if not state.held:
                state.from_first = True
                return []
            last_id = min(state.held) - 1
        state.delivered = last_id
        for message_id in [n for n in state.held if n <= last_id]:
            del state.held[message_id]
        return self._release(state)

    def forget(self, room: str) -> None:
        self._rooms.pop(room, None)

    def tracking(self, room: str) -> bool:
        return room in self._rooms

    def last(self, room: str) -> int | None:
        state = self._rooms.get(room)
        return None if state is None else state.delivered

    def offer(self, message: ChatMessage, now: float) -> list[ChatMessage]:
        """A message from the store or the broker: what can be delivered now, in order."""
        state = self._rooms.get(message.room)
        if state is None:
            return []
        if state.delivered is None:
            if not state.from_first:
                state.held.setdefault(message.id, message)
                return []
            state.delivered = message.id - 1
        if message.id <= state.delivered or message.id in state.held:
            return []
        if message.id == state.delivered + 1 and not state.held:
            state.delivered = message.id
            return [message]
        state.held[message.id] = message
        ready = self._release(state)
        if state.held and state.gap_since is None:
            state.gap_since = now
        return ready

    def due(self, now: float) -> list[Fill]:
        """Gaps open for `hold` or longer, to be filled from the store (once each until
        `filled` is called for them)."""
        fills = []
        for name, state in self._rooms.items():
            if state.filling or state.gap_since is None or now - state.gap_since < self._hold:
                continue
            assert state.delivered is not None
            state.filling = True
            fills.append(Fill(name, state.delivered, min(state.held)))
        return fills

    def next_due(self) -> float | None:
        """When the earliest open gap becomes due (loop time), if any is open."""
        starts = [
            state.gap_since
            for state in self._rooms.values()
            if state.gap_since is not None and not state.filling
        ]
        return min(starts) + self._hold if starts else None

    def catch_up(self) -> list[Fill]:
        """After a broker outage: read every followed room from its last delivered id."""
        fills = []
        for name, state in self._rooms.items():
            if state.delivered is not None:
                state.filling = True
                fills.append(Fill(name, state.delivered, None))
        return fills

    def filled(self, fill: Fill, messages: list[ChatMessage], now: float) -> list[ChatMessage]:
        """Every message the store has for `fill` (oldest first): what can be delivered
        now, in order. Ids of the fill's range that the store no longer has (retention
        removed them) are skipped rather than waited for."""
        state = self._rooms.get(fill.room)
        if state is None or state.delivered is None:
            return []
        state.filling = False
        for message in messages:
            if message.id > state.delivered:
                state.held.setdefault(message.id, message)
        ready = self._release(state)
        while fill.before is not None and state.held and state.delivered < fill.before - 1:
            state.delivered = min(state.held) - 1
            ready += self._release(state)
        state.gap_since = (state.gap_since or now) if state.held else None
        return ready

    @staticmethod
    def _release(state: _Room) -> list[ChatMessage]:
        ready: list[ChatMessage] = []
        if state.delivered is None:
            return ready
        while (message := state.held.pop(state.delivered + 1, None)) is not None:
            ready.append(message)
            state.delivered = message.id
        if not state.held:
            state.gap_since = None
        return ready
