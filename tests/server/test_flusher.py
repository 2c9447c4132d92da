"""When the Flusher writes: at the end of the turn, or, while the loop is loaded, when the
turn's window closes."""

import asyncio
import logging
import math
import time

import pytest

from hubbub.core.autocork import HORIZON
from hubbub.server.flusher import ACTIVE, AFTER_DELAY, AT_TURN_END, NOT_SCHEDULED, Flusher

DELAY = 0.1
WAIT = 5.0


class Clock:
    """The clock the flusher times its write passes with: it moves only when a write says
    it took time, so the load is whatever the test's writes make it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A connection that counts the frames queued on it and notes each write the flusher asks for.

    Like `Connection`, it marks itself when the first frame arrives after a write. Each
    write that carries frames takes `cost` seconds of the test's clock."""

    def __init__(
        self,
        flusher: Flusher,
        name: str = "",
        log: list[str] | None = None,
        clock: Clock | None = None,
        cost: float = 0.0,
    ) -> None:
        self._flusher = flusher
        self.name = name
        self.log = log if log is not None else []
        self.clock = clock
        self.cost = cost
        self.flushed_at = -math.inf
        self.pending = 0
        self.scheduled = NOT_SCHEDULED
        self.writes: list[tuple[float, int]] = []
        """Loop time and number of frames of each write."""
        self._wrote = asyncio.Event()
        self.fails = False
        self.dropped: str | None = None

    def add(self, frames: int = 1) -> None:
        self.pending += frames
        if self.scheduled == NOT_SCHEDULED:
            self.scheduled = self._flusher.mark(self)

    def flush(self) -> int:
        self.scheduled = NOT_SCHEDULED
        if self.fails:
            raise OSError("broken")
        count, self.pending = self.pending, 0
        if count:
            self.log.append(self.name)
            self.writes.append((asyncio.get_running_loop().time(), count))
            if self.clock is not None:
                self.clock.now += self.cost
            self._wrote.set()
        return count

    def drop(self, reason: str) -> None:
        self.dropped = reason

    async def written(self) -> tuple[float, int]:
        """Wait for the next write: the loop time it happened at, and its frames."""
        async with asyncio.timeout(WAIT):
            await self._wrote.wait()
        self._wrote.clear()
        return self.writes[-1]


async def load_fully(flusher: Flusher, clock: Clock) -> None:
    """One write pass as long as the load's horizon, on a loop that was quiet until then:
    the loop counts as fully loaded afterwards (until the clock moves on)."""
    heavy = Recorder(flusher, clock=clock, cost=HORIZON)
    heavy.add()
    await heavy.written()


async def active(*connections: Recorder) -> None:
    """Write each once: connections written lately are the ones a window may hold."""
    for connection in connections:
        connection.add()
        await connection.written()


async def test_without_a_delay_the_turns_marks_are_written_at_its_end_in_order() -> None:
    flusher = Flusher()
    order: list[str] = []
    first, second = Recorder(flusher, "first", order), Recorder(flusher, "second", order)
    first.add()
    second.add()
    first.add()
    assert order == []
    await asyncio.sleep(0)
    assert order == ["first", "second"]
    assert first.writes[0][1] == 2


async def test_on_a_quiet_loop_frames_in_quick_succession_leave_at_the_end_of_their_turn() -> None:
    """What the old rule held for the delay (frames less than the delay apart) is
    written at once while the loop has time to spare."""
    clock = Clock()
    flusher = Flusher(DELAY, clock)
    connection = Recorder(flusher, clock=clock, cost=0.0001)
    loop = asyncio.get_running_loop()
    for _ in range(30):
        marked = loop.time()
        connection.add()
        assert connection.scheduled == AT_TURN_END
        written, frames = await connection.written()
        assert written - marked < DELAY / 2
        assert frames == 1


async def test_on_a_loaded_loop_the_first_frame_waits_for_the_delay_and_gathers_the_rest() -> None:
    clock = Clock()
    flusher = Flusher(DELAY, clock)
    await load_fully(flusher, clock)
    connection = Recorder(flusher)
    await active(connection)
    loop = asyncio.get_running_loop()
    opened = loop.time()
    connection.add()
    assert connection.scheduled == AFTER_DELAY
    # Frames of later turns join the window rather than opening their own.
    await asyncio.sleep(0)
    connection.add(2)
    written, frames = await connection.written()
    # Measured from the first frame of the window.
    assert written - opened >= DELAY * 0.99
    assert frames == 3


async def test_the_loop_that_runs_out_of_work_writes_at_the_end_of_the_turn_again() -> None:
    clock = Clock()
    flusher = Flusher(DELAY, clock)
    await load_fully(flusher, clock)
    connection = Recorder(flusher)
    await active(connection)
    connection.add()
    assert connection.scheduled == AFTER_DELAY
    await connection.written()
    # Three horizons with no write: the load has decayed.
    clock.now += 3 * HORIZON
    loop = asyncio.get_running_loop()
    marked = loop.time()
    connection.add()
    assert connection.scheduled == AT_TURN_END
    written, _ = await connection.written()
    assert written - marked < DELAY / 2


async def test_on_a_loaded_loop_a_connection_not_written_lately_is_not_held() -> None:
    """A member of a quiet room gains nothing from a window while another room loads the
    loop: its frame leaves at the end of the turn."""
    clock = Clock()
    flusher = Flusher(DELAY, clock)
    quiet, busy = Recorder(flusher), Recorder(flusher)
    await active(quiet)
    clock.now += ACTIVE * 1.5
    await load_fully(flusher, clock)
    await active(busy)
    loop = asyncio.get_running_loop()
    marked = loop.time()
    busy.add()
    quiet.add()
    assert busy.scheduled == AFTER_DELAY
    assert quiet.scheduled == AT_TURN_END
    written, _ = await quiet.written()
    assert written - marked < DELAY / 2


async def test_writes_that_take_most_of_the_time_load_the_loop() -> None:
    """The flusher times its own passes: expensive writes, one after another, make the
    next turn's frames wait, with no other hint of load."""
    clock = Clock()
    flusher = Flusher(DELAY, clock)
    connection = Recorder(flusher, clock=clock, cost=HORIZON / 4)
    immediate = 0
    while True:
        connection.add()
        if connection.scheduled == AFTER_DELAY:
            break
        await connection.written()
        immediate += 1
        assert immediate < 10, "never held"
    assert immediate >= 1


async def test_windows_opened_apart_close_apart_and_one_turns_close_together() -> None:
    clock = Clock()
    flusher = Flusher(DELAY, clock)
    await load_fully(flusher, clock)
    first, second, third = Recorder(flusher), Recorder(flusher), Recorder(flusher)
    await active(first, second, third)
    loop = asyncio.get_running_loop()
    first_opened = loop.time()
    first.add()
    second.add()
    await asyncio.sleep(DELAY / 2)
    third_opened = loop.time()
    third.add()
    (first_written, _), (second_written, _) = await first.written(), await second.written()
    assert first_written - first_opened >= DELAY * 0.99
    assert abs(first_written - second_written) < DELAY / 10
    # The later window is not cut short by the earlier one's timer.
    third_written, _ = await third.written()
    assert third_written - third_opened >= DELAY * 0.99


async def test_a_waiting_connection_marked_now_is_written_at_the_end_of_the_turn() -> None:
    clock = Clock()
    flusher = Flusher(DELAY, clock)
    await load_fully(flusher, clock)
    connection = Recorder(flusher)
    await active(connection)
    connection.add()
    assert connection.scheduled == AFTER_DELAY
    marked = asyncio.get_running_loop().time()
    assert flusher.mark_now(connection) == AT_TURN_END
    written, frames = await connection.written()
    assert written - marked < DELAY / 2
    assert frames == 1


@pytest.mark.parametrize("loaded", [False, True])
@pytest.mark.parametrize("delay", [0.0, DELAY])
async def test_a_connection_that_fails_to_write_is_cut_and_the_rest_are_written(
    delay: float, loaded: bool, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    flusher = Flusher(delay, clock)
    if loaded:
        await load_fully(flusher, clock)
    order: list[str] = []
    broken, after = Recorder(flusher, "broken", order), Recorder(flusher, "after", order)
    await active(broken, after)
    order.clear()
    broken.fails = True
    with caplog.at_level(logging.ERROR, "hubbub.server.flusher"):
        broken.add()
        after.add()
        await after.written()
    assert order == ["after"]
    assert broken.dropped == "write failed"
    assert "writing to a connection failed" in caplog.text


async def test_stopping_writes_nothing_more() -> None:
    clock = Clock()
    flusher = Flusher(DELAY, clock)
    await load_fully(flusher, clock)
    waiting, at_turn_end = Recorder(flusher), Recorder(flusher)
    await active(waiting)
    waiting.writes.clear()
    waiting.add()
    assert waiting.scheduled == AFTER_DELAY
    flusher.mark_now(at_turn_end)
    at_turn_end.pending = 1
    flusher.stop()
    await asyncio.sleep(DELAY * 1.5)
    assert waiting.writes == at_turn_end.writes == []


def test_a_mark_after_its_turns_window_closed_is_still_written() -> None:
    """On uvloop, due timers run before the callbacks queued for the next turn: a turn
    that outlasts its window sees the window written before the turn's end, and a mark
    queued ahead of that end must open a window of its own rather than join the one
    already written (its frames would never leave)."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        clock = Clock()
        flusher = Flusher(DELAY, clock)
        await load_fully(flusher, clock)
        first, second = Recorder(flusher), Recorder(flusher)
        await active(first, second)
        loop = asyncio.get_running_loop()

        def long_turn() -> None:
            loop.call_soon(second.add)  # queued ahead of the turn's end
            first.add()
            assert first.scheduled == AFTER_DELAY
            time.sleep(DELAY * 1.5)  # the turn outlasts the window it opened

        loop.call_soon(long_turn)
        await first.written()
        _, frames = await second.written()
        assert frames == 1

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.close()
