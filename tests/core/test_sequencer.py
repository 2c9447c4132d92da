"""The sequencer: each room's messages once and in id order, whatever way they arrive."""

from hypothesis import given
from hypothesis import strategies as st

from hubbub.core.sequencer import Fill, Sequencer
from hubbub.protocol.events import ChatMessage

HOLD = 0.05


def m(message_id: int, room: str = "r") -> ChatMessage:
    return ChatMessage(message_id, room, "ann", f"#{message_id}", 0)


def ids(messages: list[ChatMessage]) -> list[int]:
    return [message.id for message in messages]


def following(room: str = "r", last: int = 0) -> Sequencer:
    sequencer = Sequencer(HOLD)
    sequencer.track(room, last)
    return sequencer


def test_in_order_messages_pass_at_once() -> None:
    sequencer = following()
    assert [ids(sequencer.offer(m(n), 0.0)) for n in (1, 2, 3)] == [[1], [2], [3]]
    assert sequencer.due(10.0) == []


def test_an_untracked_room_and_ids_before_tracking_are_not_delivered() -> None:
    sequencer = following(last=5)
    assert sequencer.offer(m(5), 0.0) == []
    assert sequencer.offer(m(1, room="other"), 0.0) == []
    assert ids(sequencer.offer(m(6), 0.0)) == [6]


def test_duplicates_are_dropped() -> None:
    sequencer = following()
    assert ids(sequencer.offer(m(1), 0.0)) == [1]
    assert sequencer.offer(m(1), 0.0) == []
    assert sequencer.offer(m(3), 0.0) == []
    assert sequencer.offer(m(3), 0.0) == []
    assert ids(sequencer.offer(m(2), 0.0)) == [2, 3]


def test_a_message_past_a_gap_waits_for_the_missing_one() -> None:
    sequencer = following()
    assert sequencer.offer(m(2), 1.0) == []
    assert sequencer.offer(m(3), 1.01) == []
    assert sequencer.due(1.0 + HOLD / 2) == []
    assert ids(sequencer.offer(m(1), 1.02)) == [1, 2, 3]
    assert sequencer.next_due() is None
    assert sequencer.due(5.0) == []


def test_a_gap_open_for_the_hold_is_filled_from_the_store_once() -> None:
    sequencer = following(last=4)
    sequencer.offer(m(7), 1.0)
    assert sequencer.next_due() == 1.0 + HOLD
    fill = Fill("r", 4, 7)
    assert sequencer.due(1.0 + HOLD) == [fill]
    assert sequencer.due(2.0) == []
    assert ids(sequencer.filled(fill, [m(5), m(6)], 2.0)) == [5, 6, 7]
    assert sequencer.next_due() is None


def test_ids_the_store_no_longer_has_are_skipped_after_a_fill() -> None:
    sequencer = following()
    sequencer.offer(m(4), 1.0)
    (fill,) = sequencer.due(1.0 + HOLD)
    assert ids(sequencer.filled(fill, [m(2)], 2.0)) == [2, 4]
    assert ids(sequencer.offer(m(5), 2.0)) == [5]


def test_a_gap_that_opens_during_a_fill_waits_its_own_turn() -> None:
    sequencer = following()
    sequencer.offer(m(3), 1.0)
    (fill,) = sequencer.due(1.0 + HOLD)
    sequencer.offer(m(6), 1.1)
    assert ids(sequencer.filled(fill, [m(1), m(2)], 1.2)) == [1, 2, 3]
    assert sequencer.due(1.2 + HOLD) == [Fill("r", 3, 6)]


def test_catch_up_reads_every_room_from_its_last_delivered_id() -> None:
    sequencer = following("a", 3)
    sequencer.track("b", 0)
    fills = sequencer.catch_up()
    assert sorted(fills, key=lambda fill: fill.room) == [Fill("a", 3, None), Fill("b", 0, None)]
    assert ids(sequencer.filled(fills[0], [m(4, "a"), m(5, "a")], 1.0)) == [4, 5]
    assert sequencer.last("a") == 5


def test_a_forgotten_room_delivers_nothing() -> None:
    sequencer = following()
    sequencer.forget("r")
    assert not sequencer.tracking("r")
    assert sequencer.offer(m(1), 0.0) == []


@given(
    st.lists(st.integers(min_value=1, max_value=40), max_size=120),
    st.integers(min_value=1, max_value=40),
)
def test_whatever_arrives_every_id_is_delivered_once_in_order(
    arrivals: list[int], newest: int
) -> None:
    """Arrivals in any order, repeated or missing; the store has 1..newest. Offers and
    fills interleaved as a node would: at the end, exactly 1..newest in order."""
    store = {n: m(n) for n in range(1, newest + 1)}
    sequencer = following()
    delivered: list[int] = []
    now = 0.0
    for n in arrivals:
        now += 0.01
        if n in store:
            delivered += ids(sequencer.offer(store[n], now))
        for fill in sequencer.due(now):
            upper = fill.before if fill.before is not None else newest + 1
            found = [store[i] for i in range(fill.after + 1, upper) if i in store]
            delivered += ids(sequencer.filled(fill, found, now))
    for fill in sequencer.catch_up():
        found = [store[i] for i in range(fill.after + 1, newest + 1)]
        delivered += ids(sequencer.filled(fill, found, now))
    assert delivered == list(range(1, newest + 1))


def test_a_room_tracked_before_its_position_is_known_holds_then_starts_there() -> None:
    sequencer = Sequencer(HOLD)
    sequencer.track("r")
    assert sequencer.offer(m(4), 0.0) == []
    assert sequencer.offer(m(6), 0.0) == []
    assert ids(sequencer.start_at("r", 4)) == []
    assert ids(sequencer.offer(m(5), 0.0)) == [5, 6]


def test_without_a_known_position_a_room_starts_from_the_first_message_held() -> None:
    sequencer = Sequencer(HOLD)
    sequencer.track("r")
    assert sequencer.start_at("r", None) == []
    assert ids(sequencer.offer(m(8), 0.0)) == [8]
    assert ids(sequencer.offer(m(9), 0.0)) == [9]
    sequencer.track("s")
    sequencer.offer(m(3, "s"), 0.0)
    assert ids(sequencer.start_at("s", None)) == [3]
