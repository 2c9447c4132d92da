"""The HTTP routes: page, rooms, messages, stats, seed shapes, health and metrics."""

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hubbub.client import ChatClient
from hubbub.server.runner import RunningServer
from tests.conftest import Connect, StartServer, metric


async def get(server: RunningServer, path: str) -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as http, http.get(server.url + path) as response:
        body = await response.text()
        is_json = response.content_type == "application/json"
        return response.status, (await response.json() if is_json else body), response.content_type


async def test_chat_page_is_served(server: RunningServer) -> None:
    status, body, kind = await get(server, "/")
    assert status == 200
    assert kind == "text/html"
    assert "<html" in body.lower()


@pytest.mark.parametrize("path", ["/client.js", "/static/client.js", "/static/style.css"])
async def test_the_pages_files_are_revalidated_before_use(server: RunningServer, path: str) -> None:
    """A release changes them: a browser must ask (and gets 304 while they are the same)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + path) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-cache"
            etag = response.headers["ETag"]
        async with http.get(server.url + path, headers={"If-None-Match": etag}) as again:
            assert again.status == 304


async def test_rooms_lists_occupied_rooms_with_distinct_users(
    server: RunningServer, connect: Connect
) -> None:
    assert (await get(server, "/rooms"))[1] == {"rooms": [], "total": 0}
    tab1, tab2, bob = await connect(), await connect(), await connect()
    await tab1.join("general", "ann")
    await tab2.join("general", "ann")
    await bob.join("general", "bob")
    await bob.join("random", "bob")
    status, body, _ = await get(server, "/rooms")
    assert status == 200
    assert body == {
        "rooms": [{"name": "general", "count": 2}, {"name": "random", "count": 1}],
        "total": 2,
    }
    await bob.leave("random")
    assert (await get(server, "/rooms"))[1]["total"] == 1


async def test_seed_api_shapes(server: RunningServer, connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("general", "ann")
    await bob.join("general", "bob")
    _, rooms, _ = await get(server, "/api/rooms")
    assert rooms == {"success": True, "rooms": [{"name": "general", "users": 2}]}
    _, stats, _ = await get(server, "/api/stats")
    assert stats == {"success": True, "total_clients": 2, "total_rooms": 1}


async def test_stats_counts_connections_rooms_users_and_messages(
    server: RunningServer, connect: Connect
) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("a", "ann")
    await bob.join("b", "bob")
    await ann.say("one")
    await ann.say("two")
    _, stats, _ = await get(server, "/stats")
    assert stats["connections"] == 2
    assert stats["rooms"] == 2
    assert stats["users"] == 2
    assert stats["messages_total"] == 2
    assert stats["messages_per_second"] > 0
    assert stats["uptime_seconds"] >= 0
    assert stats["node"] == server.node.id


async def test_room_messages_pages_like_history(server: RunningServer, connect: Connect) -> None:
    ann = await connect()
    await ann.join("r", "ann")
    ids = [await ann.say(f"m{n}") for n in range(5)]
    _, page, _ = await get(server, "/rooms/r/messages?limit=2")
    assert [m["id"] for m in page["messages"]] == ids[-2:]
    assert page["has_more"] is True
    assert page["messages"][0]["from"] == "ann"
    _, older, _ = await get(server, f"/rooms/r/messages?before={ids[1]}")
    assert [m["content"] for m in older["messages"]] == ["m0"]
    assert older["has_more"] is False
    _, empty, _ = await get(server, "/rooms/quiet/messages")
    assert empty == {"room": "quiet", "messages": [], "has_more": False}


@pytest.mark.parametrize(
    "path",
    [
        "/rooms/r/messages?limit=0",
        "/rooms/r/messages?limit=x",
        "/rooms/r/messages?before=-2",
        "/rooms/r/messages?after=-1",
        "/rooms/r/messages?after=x",
        f"/rooms/r/messages?after={2**63}",
    ],
)
async def test_room_messages_rejects_bad_queries(server: RunningServer, path: str) -> None:
    status, body, _ = await get(server, path)
    assert status == 400
    assert body["error"] == "invalid_field"


async def test_room_messages_rejects_bad_room_names(server: RunningServer) -> None:
    status, body, _ = await get(server, "/rooms/" + "x" * 65 + "/messages")
    assert status == 400
    assert body["error"] == "invalid_field"


async def test_healthz_is_ok(server: RunningServer) -> None:
    status, body, _ = await get(server, "/healthz")
    assert status == 200
    assert body == {"status": "ok"}


async def test_metrics_in_prometheus_text(server: RunningServer, connect: Connect) -> None:
    ann = await connect()
    await ann.join("r", "ann")
    await ann.say("counted")
    status, body, kind = await get(server, "/metrics")
    assert status == 200
    assert kind == "text/plain"
    assert "hubbub_messages_total 1.0" in body
    assert "hubbub_connections 1.0" in body
    assert "hubbub_rooms 1.0" in body


async def test_metrics_include_the_process(server: RunningServer, connect: Connect) -> None:
    _, before, _ = await get(server, "/metrics")
    clients = [await connect() for _ in range(3)]
    for client in clients:
        await client.join("r")
    _, after, _ = await get(server, "/metrics")
    # Client and server share this process: each connection is two descriptors.
    opened = metric(after, "process_open_fds") - metric(before, "process_open_fds")
    assert opened >= 2 * len(clients)
    assert metric(after, "process_max_fds") >= metric(after, "process_open_fds")
    assert metric(after, "process_resident_memory_bytes") > 1024 * 1024
    assert metric(after, "process_virtual_memory_bytes") >= metric(
        after, "process_resident_memory_bytes"
    )
    assert metric(after, "process_cpu_seconds_total") > 0
    assert metric(after, "process_start_time_seconds") <= time.time()


async def test_room_messages_page_forward_after_an_id(
    server: RunningServer, connect: Connect
) -> None:
    ann = await connect()
    await ann.join("r", "ann")
    ids = [await ann.say(f"m{n}") for n in range(5)]
    _, first, _ = await get(server, "/rooms/r/messages?after=0&limit=2")
    assert [m["content"] for m in first["messages"]] == ["m0", "m1"]
    assert first["has_more"] is True
    assert first["truncated"] is False
    _, second, _ = await get(server, f"/rooms/r/messages?after={ids[1]}&limit=2")
    assert [m["id"] for m in second["messages"]] == ids[2:4]
    assert second["has_more"] is True
    _, last, _ = await get(server, f"/rooms/r/messages?after={ids[3]}&limit=2")
    assert [m["id"] for m in last["messages"]] == ids[4:]
    assert last["has_more"] is False
    _, beyond, _ = await get(server, f"/rooms/r/messages?after={ids[4]}")
    assert beyond == {"room": "r", "messages": [], "has_more": False, "truncated": False}


async def test_room_messages_between_after_and_before(
    server: RunningServer, connect: Connect
) -> None:
    ann = await connect()
    await ann.join("r", "ann")
    ids = [await ann.say(f"m{n}") for n in range(6)]
    path = f"/rooms/r/messages?after={ids[0]}&before={ids[5]}"
    _, between, _ = await get(server, f"{path}&limit=3")
    assert [m["id"] for m in between["messages"]] == ids[1:4]
    assert between["has_more"] is True
    _, rest, _ = await get(server, f"/rooms/r/messages?after={ids[3]}&before={ids[5]}")
    assert [m["id"] for m in rest["messages"]] == [ids[4]]
    assert rest["has_more"] is False
    _, crossed, _ = await get(server, f"/rooms/r/messages?after={ids[4]}&before={ids[2]}")
    assert crossed["messages"] == []
    assert crossed["has_more"] is False


async def test_room_messages_after_says_when_retention_removed_some(
    start_server: StartServer, tmp_path: Path
) -> None:
    first = await start_server(store="sqlite", data_dir=str(tmp_path))
    async with await ChatClient.connect(first.ws_url) as ann:
        await ann.join("r", "ann")
        ids = [await ann.say(f"m{n}") for n in range(4)]
    await first.stop()
    # Retention runs when a server starts.
    second = await start_server(store="sqlite", data_dir=str(tmp_path), history_max_per_room=2)
    _, page, _ = await get(second, "/rooms/r/messages?after=0")
    assert [m["id"] for m in page["messages"]] == ids[2:]
    assert page["truncated"] is True
    _, kept, _ = await get(second, f"/rooms/r/messages?after={ids[1]}")
    assert kept["truncated"] is False


async def test_metrics_time_the_stores_writes(start_server: StartServer, tmp_path: Path) -> None:
    """Each message is delivered once written: its write's time is in /metrics."""
    server = await start_server(store="sqlite", data_dir=str(tmp_path))
    _, before, _ = await get(server, "/metrics")
    assert metric(before, "hubbub_store_write_seconds_count") == 0
    async with await ChatClient.connect(server.ws_url) as ann:
        await ann.join("r", "ann")
        for n in range(3):
            await ann.say(f"stored {n}")
    _, after, _ = await get(server, "/metrics")
    written = metric(after, "hubbub_store_written_messages_total")
    assert written == 3
    writes = metric(after, "hubbub_store_write_seconds_count")
    assert 1 <= writes <= written
    assert metric(after, 'hubbub_store_write_seconds_bucket{le="+Inf"}') == writes
    assert metric(after, "hubbub_store_write_seconds_sum") > 0
