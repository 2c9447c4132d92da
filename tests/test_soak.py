"""The soak of `tests/soak.py`, short enough for every run: 60 connections, 3 rooms, 8 s;
and its `--cluster` form: 40 connections over two nodes for 14 s, through a Redis
restart and a SIGKILLed node.

The full ones (500 connections, 5 rooms, 60 s) are `python -m tests.soak --spawn` and
`python -m tests.soak --spawn --cluster`.
"""

import asyncio
import contextlib
from pathlib import Path

import pytest

from hubbub.client import ChatClient
from tests.conftest import SpawnServer, StartServer
from tests.services import PrivateRedis, require
from tests.soak import (
    SOAK_SERVER_ARGS,
    ServerLog,
    SoakReport,
    run_cluster_soak,
    run_soak,
    soak_database,
)

RSS_RATIO = 2.0
"""Relaxed from the full soak's 1.5x, which compares 20 s in with 60 s in. Here the mark is
3 s in and the end 8 s in: the server is still warming up (SQLite's page cache and the
allocator's arenas grow with the first thousands of messages and reconnections), so 1.5x
would be judging warm-up. 2x still fails a leak that grows with traffic at this rate
(the server's RSS is about 60 MiB here and grew by about 1% in runs while writing this)."""


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_short_soak_has_no_gap_no_duplicate_and_stays_healthy(
    spawn_server: SpawnServer, tmp_path: Path
) -> None:
    server = await spawn_server(*SOAK_SERVER_ARGS, "--data-dir", str(tmp_path))
    assert server.process.stderr is not None
    log = ServerLog()
    drain = asyncio.create_task(log.drain(server.process.stderr))
    try:
        report = await run_soak(
            server.url,
            connections=60,
            rooms=3,
            duration=8.0,
            pid=server.process.pid,
            think=0.5,
            rss_at=3.0,
            rss_ratio=RSS_RATIO,
            seed=6,
        )
    finally:
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
    print(report.summary())
    assert not report.problem_kinds, report.summary()
    assert report.gaps == 0
    assert report.messages_acked == report.messages_sent > 150
    assert report.stored == report.messages_sent
    assert report.messages_delivered > 10 * report.messages_sent, "each reaches its room"
    assert report.disconnects > 10, "clients dropped their connections and came back"
    assert report.reconnects >= report.disconnects
    assert report.resends > 0, "messages cut off before their ack were sent again"
    assert report.leaves > 10
    assert report.replayed > 0, "rejoining with since replayed what was missed"
    assert report.typing_sent > 0
    assert report.history_requests > 0
    assert report.health_checks >= 8
    assert report.health_failures == 0
    assert report.rss_at_mark_kib is not None
    assert report.rss_end_kib is not None
    assert not log.errors, log.errors[:5]


async def cluster_soak(redis: PrivateRedis) -> SoakReport:
    async with soak_database() as store:
        return await run_cluster_soak(
            store, redis, connections=40, rooms=2, duration=14.0, think=0.5, seed=16
        )


@pytest.fixture(scope="module")
def cluster_report(tmp_path_factory: pytest.TempPathFactory) -> SoakReport:
    """One short `--cluster` soak (about 25 s), judged by the two tests below. Run on a
    loop of its own: the chaos is the same for both, and paid for once."""
    require("PostgreSQL", "127.0.0.1", 5432)
    redis = PrivateRedis(tmp_path_factory.mktemp("redis"))
    redis.start()
    try:
        report = asyncio.run(cluster_soak(redis))
    finally:
        redis.stop()
    print(report.summary())
    return report


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cluster_soak_goes_through_its_chaos_and_stores_every_acked_message_once(
    cluster_report: SoakReport,
) -> None:
    report = cluster_report
    assert len(report.chaos) == 2, report.summary()  # Redis restarted; a node killed, replaced
    assert set(report.problem_kinds) <= {"gap", "duplicate", "lost"}, report.summary()
    assert report.nodes == 2
    assert report.messages_acked == report.messages_sent > 150
    assert report.stored == report.messages_sent
    assert report.acked_unstored == 0
    assert report.unavailable > 0, "the nodes refused while Redis was down"
    assert report.server_closes[1006] > 0, "the killed node's clients lost their connection"
    assert report.health_failures > 0, "the nodes said they were unhealthy"
    assert report.reconnects > report.disconnects, "clients came back after the chaos too"
    assert report.resends > 0
    assert report.replayed > 0


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_cluster_soak_delivers_every_message_once_in_order_to_every_member(
    cluster_report: SoakReport,
) -> None:
    report = cluster_report
    assert not report.problem_kinds, report.summary()
    assert report.gaps == report.duplicates == 0
    assert not report.acked_undelivered


async def post_without_waiting(client: ChatClient, name: str, stop: asyncio.Event) -> None:
    """Pipeline posts (acks are not awaited, except now and then to bound the backlog)."""
    await client.join("r", name)
    number = 0
    while not stop.is_set():
        number += 1
        await client.send({"type": "message", "room": "r", "content": f"{name} {number}"})
        if number % 20 == 0:
            await client.request({"type": "ping"})


async def test_rejoin_with_since_while_others_post_delivers_each_id_once(
    start_server: StartServer, tmp_path: Path
) -> None:
    """PROTOCOL.md: `since` replays stored messages "before live ones"; the connection
    must then see every id once. Found by the soak; this reproduces it in milliseconds."""
    server = await start_server(
        store="sqlite", data_dir=str(tmp_path), rate=1_000_000, rate_burst=1_000_000
    )
    stop = asyncio.Event()
    posters = [await ChatClient.connect(server.ws_url) for _ in range(4)]
    tasks = [
        asyncio.create_task(post_without_waiting(poster, f"p{n}", stop))
        for n, poster in enumerate(posters)
    ]
    try:
        async with await ChatClient.connect(server.ws_url) as joiner:
            await joiner.join("r", "joiner")
            deadline = asyncio.get_running_loop().time() + 5.0
            while asyncio.get_running_loop().time() < deadline:  # it fails in well under that
                await joiner.leave("r")
                ids = [e["id"] for e in joiner.received if e.get("type") == "message"]
                await joiner.join("r", since=max(ids, default=0))
                ids = [e["id"] for e in joiner.received if e.get("type") == "message"]
                assert len(ids) == len(set(ids)), "a message was delivered twice"
                assert ids == sorted(ids)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for poster in posters:
            await poster.close()
