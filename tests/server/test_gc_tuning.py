"""Garbage-collector tuning: the served process freezes start-up, and pauses are measured."""

import gc

import aiohttp
from prometheus_client import CollectorRegistry

from hubbub.server.gc_tuning import GcPauses
from tests.conftest import SpawnServer, metric


def test_every_collection_is_counted_under_its_generation_until_stopped() -> None:
    pauses = GcPauses()
    registry = CollectorRegistry()
    registry.register(pauses)

    def count(generation: int) -> float:
        labels = {"generation": str(generation)}
        value = registry.get_sample_value("hubbub_gc_pause_seconds_count", labels)
        assert value is not None
        return value

    assert count(2) == 0
    pauses.watch()
    try:
        gc.collect(2)
        gc.collect(2)
        gc.collect(0)
        assert count(2) >= 2
        assert count(0) >= 1
        infinite = {"generation": "2", "le": "+Inf"}
        assert registry.get_sample_value("hubbub_gc_pause_seconds_bucket", infinite) == count(2)
    finally:
        pauses.stop()
    stopped_at = count(2)
    gc.collect(2)
    assert count(2) == stopped_at


async def test_a_served_process_freezes_what_start_up_left(spawn_server: SpawnServer) -> None:
    server = await spawn_server("--store", "memory")
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/metrics") as response:
        text = await response.text()
    assert metric(text, "hubbub_gc_frozen_objects") > 1000
    assert metric(text, 'hubbub_gc_pause_seconds_count{generation="2"}') >= 1
