"""Composition root: Settings in, a ready aiohttp application out.

The only module that picks concrete implementations (store, later broker).
"""

from pathlib import Path

from aiohttp import web

from hubbub.broker.base import Broker
from hubbub.broker.redis import RedisBroker
from hubbub.config import Settings, is_postgres_url
from hubbub.core.admission import Admission
from hubbub.core.api_keys import ApiKeys
from hubbub.core.origins import OriginPolicy
from hubbub.presence.base import Presence
from hubbub.presence.redis import RedisPresence
from hubbub.server import headers, http, publish
from hubbub.server.connection import GOING_AWAY
from hubbub.server.keys import ADMISSION, API_KEYS, NODE, ORIGINS
from hubbub.server.node import Node
from hubbub.server.websocket import websocket_endpoint
from hubbub.server.ws_protocol import CLOSE_GRACE_SECONDS
from hubbub.store.base import MessageStore
from hubbub.store.memory import MemoryStore
from hubbub.store.postgres import PostgresStore
from hubbub.store.sqlite import SqliteStore


def build_store(settings: Settings) -> MessageStore:
    if settings.store == "memory":
        return MemoryStore()
    if is_postgres_url(settings.store):
        return PostgresStore(settings.store)
    return SqliteStore(
        Path(settings.data_dir) / "hubbub.db",
        busy_timeout_ms=int(settings.sqlite_busy_timeout * 1000),
        commit_delay=settings.sqlite_commit_delay,
        synchronous=settings.sqlite_synchronous.upper(),
    )


def build_cluster(settings: Settings) -> tuple[Broker | None, Presence | None]:
    """Redis's broker and presence when the node is one of a cluster; else the defaults."""
    if not settings.redis_url:
        return None, None
    return (
        RedisBroker(settings.redis_url, settings.redis_prefix),
        RedisPresence(settings.redis_url, settings.redis_prefix),
    )


def build_app(settings: Settings, store: MessageStore | None = None) -> web.Application:
    app = web.Application()
    broker, presence = build_cluster(settings)
    node = Node(settings, store if store is not None else build_store(settings), broker, presence)
    app[NODE] = node
    app[ADMISSION] = Admission(settings.max_connections, settings.max_connections_per_ip)
    app[ORIGINS] = OriginPolicy(settings.allowed_origins)
    app[API_KEYS] = ApiKeys(settings.api_key)
    app.router.add_get("/", http.index)
    app.router.add_get("/ws", websocket_endpoint)
    for path, handler in (
        ("/rooms", http.rooms),
        ("/rooms/{name}/messages", http.room_messages),
        ("/stats", http.stats),
        ("/api/rooms", http.seed_rooms),
        ("/api/stats", http.seed_stats),
    ):
        app.router.add_get(path, headers.cors(handler))
        app.router.add_route("OPTIONS", path, headers.preflight)
    # A page of an allowed origin may import the client, as it may open the socket.
    app.router.add_get("/client.js", headers.cors(http.client_module))
    app.router.add_post("/rooms/{name}/messages", publish.publish_message)
    app.router.add_get("/healthz", http.healthz)
    app.router.add_get("/metrics", http.metrics)
    app.router.add_get("/openapi.json", headers.cors(http.openapi))
    app.router.add_static("/static/", http.STATIC_DIR)
    app.on_response_prepare.append(headers.no_sniffing)
    app.on_response_prepare.append(headers.revalidate_static)
    app.on_startup.append(_start_node)
    app.on_shutdown.append(_close_connections)
    app.on_cleanup.append(_stop_node)
    return app


async def _start_node(app: web.Application) -> None:
    await app[NODE].start()


async def _close_connections(app: web.Application) -> None:
    node = app[NODE]
    node.close_all(GOING_AWAY, "server shutting down")
    # aiohttp no longer holds WebSocket connections, so its own shutdown would not wait.
    await node.wait_closed(CLOSE_GRACE_SECONDS + 1.0)


async def _stop_node(app: web.Application) -> None:
    await app[NODE].stop()
