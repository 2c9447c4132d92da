"""Reading a room's stored messages every way a client can: shared by the tests that
show what is stored (contents, `data`) comes back the same on each."""

from typing import Any

import aiohttp
import orjson

from hubbub.client import ChatClient
from hubbub.server.runner import RunningServer


async def every_read_path(server: RunningServer, room: str) -> dict[str, list[dict[str, Any]]]:
    """The room's stored messages as each way of reading them gives them: the `history`
    event, replay with `since`, and `GET /rooms/{name}/messages` (decoded keeping the key
    order, which `data` must keep)."""
    async with await ChatClient.connect(server.ws_url) as reader, aiohttp.ClientSession() as http:
        await reader.send({"type": "history", "room": room})
        page = await reader.expect("history")
        ack = await reader.join(room, "reader", since=0)
        replayed = [e for e in reader.received if e["type"] == "message"]
        assert len(replayed) == ack["replayed"]
        async with http.get(f"{server.url}/rooms/{room}/messages") as response:
            assert response.status == 200
            listed = await response.json(loads=orjson.loads)
    return {"history": page["messages"], "replay": replayed, "http": listed["messages"]}
