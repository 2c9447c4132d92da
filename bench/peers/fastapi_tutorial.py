"""FastAPI peer: the `ConnectionManager` of the usual FastAPI WebSocket tutorial, with rooms.

Deliberately naive, as the tutorial is: a list of sockets per room and
`for connection in members: await connection.send_text(message)`, so one slow member
holds up the whole broadcast. It speaks the benchmark's subset of PROTOCOL.md.

Run: `python -m bench.peers.fastapi_tutorial --port 8080 [--compress]` (needs
uvicorn with a WebSocket implementation: the `websockets` package).
"""

import argparse
import json
import os
import random
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
STARTED = time.monotonic()


class ConnectionManager:
    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []
        self.rooms: dict[str, list[WebSocket]] = {}
        self.usernames: dict[WebSocket, str] = {}
        self.memberships: dict[WebSocket, list[str]] = {}
        self.next_id: dict[str, int] = {}
        self.messages_total = 0
        self.connections_made = 0

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)
        self.memberships[websocket] = []
        self.connections_made += 1
        await self.send_personal_message(
            {
                "type": "welcome",
                "message": "Connected to server",
                "connection_id": f"c{self.connections_made}",
                "protocol": 1,
            },
            websocket,
        )

    async def disconnect(self, websocket: WebSocket) -> None:
        self.active_connections.remove(websocket)
        for room in list(self.memberships.get(websocket, [])):
            await self.leave(websocket, room)
        self.memberships.pop(websocket, None)
        self.usernames.pop(websocket, None)

    async def send_personal_message(self, event: dict[str, Any], websocket: WebSocket) -> None:
        await websocket.send_text(json.dumps(event))

    async def broadcast(
        self, room: str, event: dict[str, Any], exclude: WebSocket | None = None
    ) -> None:
        message = json.dumps(event)
        for connection in list(self.rooms.get(room, [])):
            if connection is not exclude:
                await connection.send_text(message)

    async def join(self, websocket: WebSocket, room: str, username: str | None) -> None:
        if websocket not in self.usernames:
            self.usernames[websocket] = username or f"User-{random.getrandbits(32):08x}"
        if room in self.memberships[websocket]:
            return
        self.rooms.setdefault(room, []).append(websocket)
        self.memberships[websocket].append(room)
        name = self.usernames[websocket]
        await self.broadcast(room, {"type": "user_joined", "username": name, "room": room})
        await self.broadcast(room, self.online_users(room))

    async def leave(self, websocket: WebSocket, room: str) -> None:
        self.memberships[websocket].remove(room)
        members = self.rooms[room]
        members.remove(websocket)
        if not members:
            del self.rooms[room]
            return
        name = self.usernames[websocket]
        await self.broadcast(room, {"type": "user_left", "username": name, "room": room})
        await self.broadcast(room, self.online_users(room))

    def online_users(self, room: str) -> dict[str, Any]:
        users = sorted({self.usernames[ws] for ws in self.rooms.get(room, [])})
        return {"type": "online_users", "users": users, "count": len(users), "room": room}

    def room_of(self, websocket: WebSocket, room: str | None) -> str | None:
        joined = self.memberships[websocket]
        if room:
            return room if room in joined else None
        return joined[0] if len(joined) == 1 else None


manager = ConnectionManager()


@app.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    await manager.connect(websocket)
    try:
        while True:
            data = await websocket.receive_text()
            try:
                event = json.loads(data)
            except ValueError:
                continue
            await handle(websocket, event)
    except WebSocketDisconnect:
        await manager.disconnect(websocket)


async def handle(websocket: WebSocket, event: dict[str, Any]) -> None:
    kind = event.get("type")
    if kind == "join" and event.get("room"):
        await manager.join(websocket, event["room"], event.get("username"))
    elif kind == "message":
        room = manager.room_of(websocket, event.get("room"))
        if room and event.get("content"):
            manager.next_id[room] = manager.next_id.get(room, 0) + 1
            manager.messages_total += 1
            now = datetime.now(UTC)
            message = {
                "type": "message",
                "from": manager.usernames[websocket],
                "content": event["content"],
                "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
                "room": room,
                "id": manager.next_id[room],
            }
            await manager.broadcast(room, message)
    elif kind == "typing":
        room = manager.room_of(websocket, event.get("room"))
        if room:
            name = manager.usernames[websocket]
            typing = {"type": "typing", "username": name, "room": room}
            await manager.broadcast(room, typing, exclude=websocket)
    elif kind == "leave":
        rooms = [event["room"]] if event.get("room") else list(manager.memberships[websocket])
        for room in rooms:
            if room in manager.memberships[websocket]:
                await manager.leave(websocket, room)


@app.get("/stats")
async def stats() -> dict[str, Any]:
    uptime = time.monotonic() - STARTED
    return {
        "connections": len(manager.active_connections),
        "rooms": len(manager.rooms),
        "users": len(set(manager.usernames.values())),
        "messages_total": manager.messages_total,
        "messages_per_second": manager.messages_total / uptime,
        "uptime_seconds": uptime,
        "node": "fastapi-peer",
    }


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--compress", action="store_true", help="allow permessage-deflate")
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ws_per_message_deflate=args.compress,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
