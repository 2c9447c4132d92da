"""When the Flusher writes: at the end of the turn, or when a busy connection's window closes."""

import asyncio
import logging

import pytest

from hubbub.server.flusher import AFTER_DELAY, AT_TURN_END, NOT_SCHEDULED, QUIET_GAP, Flusher

DELAY = 0.1
WAIT = 5.0


class Recorder:
    """A connection that counts the frames queued on it and notes each write the flusher asks for.

    Like `Connection`, it marks itself when the first frame arrives after a write."""

    def __init__(self, flusher: Flusher, name: str = "", log: list[str] | None = None) -> None:
        self._flusher = flusher
        self.name = name
        self.log = log if log is not None else []
        self.flushed_at = 0.0
        self.frame_gap = QUIET_GAP
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


async def make_busy(connection: Recorder) -> int:
    """Give `connection` frames in quick succession until one is held; how many were not."""
    loop = asyncio.get_running_loop()
    immediate = 0
    while True:
        marked = loop.time()
        connection.add()
        written, _ = await connection.written()
        if written - marked >= DELAY / 2:
            return immediate
        immediate += 1


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


async def test_frames_further_apart_than_the_delay_are_written_in_the_same_turn() -> None:
    flusher = Flusher(DELAY)
    connection = Recorder(flusher)
    connection.frame_gap = 1.5 * DELAY  # as if it had kept this pace for long
    loop = asyncio.get_running_loop()
    for _ in range(4):
        marked = loop.time()
        connection.add()
        written, _ = await connection.written()
        assert written - marked < DELAY / 2
        # Quiet: more than the delay between frames (but less than twice it).
        await asyncio.sleep(1.5 * DELAY)


async def test_a_busy_connection_holds_its_first_frame_for_the_delay_and_gathers_the_rest() -> None:
    flusher = Flusher(DELAY)
    connection = Recorder(flusher)
    # It becomes busy after a few writes in quick succession.
    assert 3 <= await make_busy(connection) <= 15
    # Some time after that write: a limit of one write per delay would write sooner.
    await asyncio.sleep(DELAY / 2)
    loop = asyncio.get_running_loop()
    opened = loop.time()
    connection.add()
    await asyncio.sleep(DELAY / 2)
    connection.add()
    written, frames = await connection.written()
    # Measured from the first frame of the window, not from the last write.
    assert written - opened >= DELAY * 0.99
    assert frames == 2


async def test_the_gap_counts_frames_not_writes() -> None:
    """Writes more than the delay apart still make a connection busy when each carries
    enough frames that they come less than the delay apart."""
    flusher = Flusher(DELAY)
    connection = Recorder(flusher)
    connection.frame_gap = 2 * DELAY
    loop = asyncio.get_running_loop()
    immediate = 0
    while True:
        marked = loop.time()
        connection.add(4)
        written, frames = await connection.written()
        assert frames == 4
        if written - marked >= DELAY / 2:
            break
        immediate += 1
        assert immediate < 20, "never held"
        await asyncio.sleep(1.5 * DELAY)
    assert immediate >= 2


async def test_windows_opened_apart_close_apart_and_one_turns_close_together() -> None:
    flusher = Flusher(DELAY)
    first, second, third = Recorder(flusher), Recorder(flusher), Recorder(flusher)
    for connection in (first, second, third):
        connection.frame_gap = 0.0
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
    flusher = Flusher(DELAY)
    connection = Recorder(flusher)
    connection.frame_gap = 0.0
    connection.add()
    assert connection.scheduled == AFTER_DELAY
    marked = asyncio.get_running_loop().time()
    assert flusher.mark_now(connection) == AT_TURN_END
    written, frames = await connection.written()
    assert written - marked < DELAY / 2
    assert frames == 1


@pytest.mark.parametrize("delay", [0.0, DELAY])
async def test_a_connection_that_fails_to_write_is_cut_and_the_rest_are_written(
    delay: float, caplog: pytest.LogCaptureFixture
) -> None:
    flusher = Flusher(delay)
    order: list[str] = []
    broken, after = Recorder(flusher, "broken", order), Recorder(flusher, "after", order)
    broken.fails = True
    for connection in (broken, after):
        connection.frame_gap = 0.0
    with caplog.at_level(logging.ERROR, "hubbub.server.flusher"):
        broken.add()
        after.add()
        await after.written()
    assert order == ["after"]
    assert broken.dropped == "write failed"
    assert "writing to a connection failed" in caplog.text
