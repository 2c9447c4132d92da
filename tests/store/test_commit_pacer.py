"""The commit pacer's timing, on a real event loop: who goes at once, who waits, for how long."""

import asyncio

from hubbub.store.commit_pacer import CommitPacer

BOUND = 5.0
"""Seconds any awaited hand-over may take before the test fails."""


class Recorder:
    """Collects hand-overs with the loop time of each."""

    def __init__(self) -> None:
        self.groups: list[tuple[float, list[str]]] = []
        self._arrived = asyncio.Event()

    def __call__(self, items: list[str]) -> None:
        self.groups.append((asyncio.get_running_loop().time(), items))
        self._arrived.set()

    async def next_group(self) -> tuple[float, list[str]]:
        seen = len(self.groups)
        async with asyncio.timeout(BOUND):
            while len(self.groups) == seen:
                self._arrived.clear()
                await self._arrived.wait()
        return self.groups[seen]


async def test_after_a_quiet_spell_items_go_at_the_end_of_the_turn_together() -> None:
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=10.0)
    started = asyncio.get_running_loop().time()
    pacer.add("a")
    pacer.add("b")
    assert recorder.groups == []
    at, items = await recorder.next_group()
    assert items == ["a", "b"]
    assert at - started < 1.0


async def test_items_within_the_delay_of_a_hand_over_wait_for_it_and_go_together() -> None:
    delay = 0.3
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=delay)
    pacer.add("first")
    handed_at, _ = await recorder.next_group()
    pacer.add("second")
    await asyncio.sleep(0)
    pacer.add("third")
    at, items = await recorder.next_group()
    assert items == ["second", "third"]
    assert at - handed_at >= delay
    assert len(recorder.groups) == 2


async def test_an_item_after_the_delay_has_passed_goes_at_once() -> None:
    delay = 0.05
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=delay)
    pacer.add("first")
    await recorder.next_group()
    loop = asyncio.get_running_loop()
    await asyncio.sleep(delay * 2)
    added_at = loop.time()
    pacer.add("later")
    at, items = await recorder.next_group()
    assert items == ["later"]
    assert at - added_at < delay


async def test_flush_hands_over_the_waiting_items_now_and_only_once() -> None:
    recorder = Recorder()
    pacer = CommitPacer(recorder, delay=0.2)
    pacer.add("first")
    await recorder.next_group()
    pacer.add("waiting")
    pacer.flush()
    assert recorder.groups[-1][1] == ["waiting"]
    pacer.add("after")
    _, items = await recorder.next_group()
    assert items == ["after"]
    assert [items for _, items in recorder.groups] == [["first"], ["waiting"], ["after"]]
