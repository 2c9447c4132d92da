"""The commit pacer's timing, on a real event loop: who goes at once, who waits, for how long."""

import asyncio

from hubbub.store.commit_pacer import CommitPacer

BOUND = 5.0
"""Seconds any awaited hand-over may take before the test fails."""


class Recorder:
    """Collects hand-overs with the loop time of each; `next_group` reads them in turn."""

    def __init__(self) -> None:
        self.groups: list[tuple[float, list[str]]] = []
        self._read = 0
        self._arrived = asyncio.Event()

    def __call__(self, items: list[str]) -> None:
        self.groups.append((asyncio.get_running_loop().time(), items))
        self._arrived.set()

    async def next_group(self) -> tuple[float, list[str]]:
        async with asyncio.timeout(BOUND):
            while len(self.groups) == self._read:
                self._arrived.clear()
                await self._arrived.wait()
        self._read += 1
        return self.groups[self._read - 1]


async def test_a_quiet_rooms_message_is_handed_over_at_once() -> None:
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=10.0)
    pacer.add("a", "a1")
    pacer.add("b", "b1")
    assert [items for _, items in recorder.groups] == [["a1"], ["b1"]]


async def test_without_a_delay_every_message_is_handed_over_at_once() -> None:
    recorder = Recorder()
    pacer = CommitPacer(recorder)
    pacer.add("r", "m1")
    pacer.add("r", "m2")
    assert [items for _, items in recorder.groups] == [["m1"], ["m2"]]


async def test_a_busy_room_waits_for_the_delay_since_the_hand_over_and_goes_together() -> None:
    delay = 0.3
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=delay)
    pacer.add("r", "first")
    handed_at, _ = await recorder.next_group()
    pacer.add("r", "second")
    await asyncio.sleep(0)
    pacer.add("r", "third")
    at, items = await recorder.next_group()
    assert items == ["second", "third"]
    assert at - handed_at >= delay
    assert len(recorder.groups) == 2


async def test_a_quiet_room_takes_a_busy_rooms_waiting_messages_along_in_order() -> None:
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=10.0)
    pacer.add("busy", "b1")
    pacer.add("busy", "b2")
    assert [items for _, items in recorder.groups] == [["b1"]]
    pacer.add("quiet", "q1")
    assert [items for _, items in recorder.groups] == [["b1"], ["b2", "q1"]]


async def test_a_room_is_quiet_again_once_the_delay_has_passed() -> None:
    delay = 0.05
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=delay)
    pacer.add("r", "first")
    await recorder.next_group()
    loop = asyncio.get_running_loop()
    await asyncio.sleep(delay * 2)
    added_at = loop.time()
    pacer.add("r", "later")
    at, items = await recorder.next_group()
    assert items == ["later"]
    assert at - added_at < delay


async def test_rooms_quiet_for_the_delay_are_forgotten() -> None:
    delay = 0.05
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=delay)
    for n in range(100):
        pacer.add(f"room{n}", f"m{n}")
    await recorder.next_group()
    await asyncio.sleep(delay * 2)
    pacer.add("another", "m")
    await recorder.next_group()
    assert list(pacer._last_seen) == ["another"]


async def test_flush_hands_over_the_waiting_items_now_and_only_once() -> None:
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=0.2)
    pacer.add("r", "first")
    await recorder.next_group()
    pacer.add("r", "waiting")
    pacer.flush()
    assert recorder.groups[-1][1] == ["waiting"]
    await recorder.next_group()
    pacer.add("r", "after")
    _, items = await recorder.next_group()
    assert items == ["after"]
    assert [items for _, items in recorder.groups] == [["first"], ["waiting"], ["after"]]
