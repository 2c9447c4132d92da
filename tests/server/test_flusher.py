"""When the Flusher writes: at the end of the turn, or, for a busy connection, after the delay."""

import asyncio

from hubbub.server.flusher import AFTER_DELAY, AT_TURN_END, QUIET_GAP, Flusher

DELAY = 0.1
WAIT = 5.0


class Recorder:
    """A connection that notes the loop time of each write the flusher asks for."""

    def __init__(self, name: str = "", log: list[str] | None = None) -> None:
        self.name = name
        self.log = log if log is not None else []
        self.flushed_at = 0.0
        self.write_gap = QUIET_GAP
        self.writes: list[float] = []
        self._wrote = asyncio.Event()

    def flush(self) -> bool:
        self.log.append(self.name)
        self.writes.append(asyncio.get_running_loop().time())
        self._wrote.set()
        return True

    async def written(self) -> float:
        """Wait for the next write; the loop time it happened at."""
        async with asyncio.timeout(WAIT):
            await self._wrote.wait()
        self._wrote.clear()
        return self.writes[-1]


async def test_without_a_delay_the_turns_marks_are_written_at_its_end_in_order() -> None:
    flusher = Flusher()
    order: list[str] = []
    first, second = Recorder("first", order), Recorder("second", order)
    flusher.mark(first)
    flusher.mark(second)
    assert order == []
    await asyncio.sleep(0)
    assert order == ["first", "second"]


async def test_a_quiet_connection_is_written_in_the_same_turn_despite_a_delay() -> None:
    flusher = Flusher(DELAY)
    connection = Recorder()
    loop = asyncio.get_running_loop()
    for _ in range(3):
        marked = loop.time()
        flusher.mark(connection)
        assert await connection.written() - marked < DELAY / 2
        # Quiet: more than twice the delay between writes.
        await asyncio.sleep(2.5 * DELAY)


async def test_a_busy_connection_waits_out_the_delay_with_the_others_marked_meanwhile() -> None:
    flusher = Flusher(DELAY)
    busy, other = Recorder(), Recorder()
    loop = asyncio.get_running_loop()
    immediate = 0
    while True:
        marked = loop.time()
        flusher.mark(busy)
        previous = busy.flushed_at
        written = await busy.written()
        if written - marked >= DELAY / 2:
            break
        immediate += 1
    # It became busy after a few writes in quick succession, then waited for the delay.
    assert 3 <= immediate <= 10
    assert written - previous >= DELAY * 0.99
    other.write_gap = busy.write_gap
    other.flushed_at = busy.flushed_at
    flusher.mark(busy)
    flusher.mark(other)
    # One timer writes both, however the two would have been due.
    assert abs(await busy.written() - await other.written()) < DELAY / 10
    assert busy.writes[-1] - busy.writes[-2] >= DELAY * 0.99


async def test_a_busy_connection_is_written_at_once_when_the_delay_has_passed() -> None:
    flusher = Flusher(DELAY)
    connection = Recorder()
    connection.write_gap = 0.0
    loop = asyncio.get_running_loop()
    connection.flushed_at = loop.time() - DELAY
    marked = loop.time()
    flusher.mark(connection)
    assert await connection.written() - marked < DELAY / 2


async def test_a_waiting_connection_marked_now_is_written_at_the_end_of_the_turn() -> None:
    flusher = Flusher(DELAY)
    connection = Recorder()
    connection.write_gap = 0.0
    loop = asyncio.get_running_loop()
    connection.flushed_at = loop.time()
    assert flusher.mark(connection) == AFTER_DELAY
    marked = loop.time()
    assert flusher.mark_now(connection) == AT_TURN_END
    assert await connection.written() - marked < DELAY / 2
