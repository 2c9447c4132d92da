"""The plain HTTP routes: the page, room and stats JSON, health and metrics."""

from importlib.resources import files
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hubbub.core.auth import InvalidToken, check_may_read, verify_token
from hubbub.presence.base import PresenceUnavailable
from hubbub.protocol.errors import HTTP_STATUS, ErrorCode, Refusal
from hubbub.protocol.validation import (
    DEFAULT_HISTORY_LIMIT,
    MAX_HISTORY_LIMIT,
    MAX_ID,
    valid_room,
)
from hubbub.server.headers import page_headers
from hubbub.server.history import read_page
from hubbub.server.keys import NODE
from hubbub.server.openapi import document

STATIC_DIR = Path(str(files("hubbub") / "static"))


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache", **page_headers(request)}
    )


async def client_module(request: web.Request) -> web.FileResponse:
    """The browser client (an ES module) at a stable address for other front-ends to import;
    the same file as `/static/client.js`, served the same way (validators, no max-age),
    as `text/javascript` (RFC 9239) whatever the host's MIME table says."""
    return web.FileResponse(
        STATIC_DIR / "client.js", headers={"Content-Type": "text/javascript; charset=utf-8"}
    )


async def rooms(request: web.Request) -> web.Response:
    try:
        counts = await request.app[NODE].presence.rooms()
    except PresenceUnavailable:
        return _presence_unavailable()
    listed = [{"name": name, "count": count} for name, count in sorted(counts.items())]
    return web.json_response({"rooms": listed, "total": len(listed)})


def _presence_unavailable() -> web.Response:
    return web.json_response(
        {"error": "unavailable", "message": "presence unavailable; retry"}, status=503
    )


async def room_messages(request: web.Request) -> web.Response:
    """A page of a room's stored messages, oldest first: the newest ones (below `before`),
    or with `after` the oldest ones above it, for a backend that pages forward; with
    both, those between the two."""
    try:
        room = valid_room(request.match_info["name"])
        before = _int_query(request, "before", None, 0, MAX_ID)
        after = _int_query(request, "after", None, 0, MAX_ID)
        limit = _int_query(request, "limit", DEFAULT_HISTORY_LIMIT, 1, MAX_HISTORY_LIMIT)
        assert limit is not None
    except Refusal as refusal:
        return _refused(refusal)
    node = request.app[NODE]
    try:
        if node.settings.auth_secret:
            check_may_read(verify_token(_bearer(request), node.settings.auth_secret), room)
        page = await read_page(node.store, room, before, after, limit)
    except InvalidToken as error:
        return web.json_response({"error": "unauthorized", "message": str(error)}, status=401)
    except Refusal as refusal:
        return _refused(refusal)
    body: dict[str, object] = {
        "room": room,
        "messages": [message.to_wire() for message in page.messages],
        "has_more": page.has_more,
    }
    if after is not None:
        body["truncated"] = page.truncated
    return web.json_response(body)


def _refused(refusal: Refusal) -> web.Response:
    return web.json_response(
        {"error": refusal.code, "message": refusal.message}, status=HTTP_STATUS[refusal.code]
    )


def _bearer(request: web.Request) -> str | None:
    """The token from `Authorization: Bearer ...`, or the `token` query parameter."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return request.query.get("token")


def _int_query(
    request: web.Request, name: str, default: int | None, low: int, high: int | None
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise Refusal(ErrorCode.INVALID_FIELD, f"{name} must be an integer {bounds}")
    return value


async def stats(request: web.Request) -> web.Response:
    try:
        return web.json_response(await request.app[NODE].stats())
    except PresenceUnavailable:
        return _presence_unavailable()


async def seed_rooms(request: web.Request) -> web.Response:
    """The seed's `/api/rooms` shape, for its existing clients."""
    try:
        counts = await request.app[NODE].presence.rooms()
    except PresenceUnavailable:
        return _presence_unavailable()
    listed = [{"name": name, "users": count} for name, count in counts.items()]
    return web.json_response({"success": True, "rooms": listed})


async def seed_stats(request: web.Request) -> web.Response:
    """The seed's `/api/stats` shape, for its existing clients."""
    try:
        stats = await request.app[NODE].stats()
    except PresenceUnavailable:
        return _presence_unavailable()
    return web.json_response(
        {"success": True, "total_clients": stats["connections"], "total_rooms": stats["rooms"]}
    )


async def healthz(request: web.Request) -> web.Response:
    """200, or 503 naming each part that is unusable now (`store`, `broker`)."""
    problems = await request.app[NODE].health()
    if not problems:
        return web.json_response({"status": "ok"})
    return web.json_response({"status": "unavailable", **problems}, status=503)


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[NODE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
